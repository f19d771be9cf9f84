import sys

from intrada.demo.synthetic.cli import main

sys.exit(main())
