import sys

from intrada.demo.synthetic.scene import main

sys.exit(main())
