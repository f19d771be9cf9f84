"""Stage 3 (IntraDA) training, the same loop as stage 1 on the easy -> hard splits:
python intrada/train.py --cfg configs/intrada.yml"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs without installing, from any folder

from advent.cli import train_main  # noqa: E402

if __name__ == '__main__':
    sys.exit(train_main(description='Stage 3 (IntraDA) training'))
