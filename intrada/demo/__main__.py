import sys

from intrada.demo.stages import main

sys.exit(main())
