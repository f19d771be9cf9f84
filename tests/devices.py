"""The devices a test can be parametrised over: the CPU always, 'cuda' marked `cuda`
(deselected by conftest.py where no GPU is present, and counted as such in pytest's summary;
`pytest -m cuda` runs only those cases on a GPU machine)."""
import pytest

DEVICES = [pytest.param('cpu', id='cpu'), pytest.param('cuda', id='cuda', marks=pytest.mark.cuda)]


def gpu_id(device):
    """The GPU_ID config value that runs on `device` ('cpu' or 'cuda')."""
    return -1 if device == 'cpu' else 0
