"""Stage 1 (ADVENT) training: python advent/scripts/train.py --cfg configs/advent.yml"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # runs without installing, from any folder

from advent.cli import train_main  # noqa: E402

if __name__ == '__main__':
    sys.exit(train_main())
