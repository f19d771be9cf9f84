"""Stage 3 (IntraDA) evaluation, the same loop as stage 1 on the easy -> hard splits:
python intrada/test.py --cfg configs/intrada.yml"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs without installing, from any folder

from advent.cli import test_main  # noqa: E402

if __name__ == '__main__':
    sys.exit(test_main(description='Stage 3 (IntraDA) evaluation'))
