"""`python -m intrada.synthetic` keeps working: the scene generator now lives in
intrada/demo/synthetic/ (`python -m intrada.demo.synthetic`)."""
import sys

from intrada.demo.synthetic.cli import main

if __name__ == '__main__':
    sys.exit(main())
