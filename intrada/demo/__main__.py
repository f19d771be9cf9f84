import sys

from intrada.demo.cli import main

sys.exit(main())
