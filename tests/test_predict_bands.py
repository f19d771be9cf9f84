"""Prediction in bounded memory: the banded computation equals the full-size one, and
images above --max-pixels are refused before they are decoded.

- upsample_rows: bands of output rows (a height the bands do not divide) equal the rows of
  one full F.interpolate, up to float rounding (on the CPU, so far, bit for bit); on the CPU
  and, where there is one, a GPU (its own code path).
- segment (one model and a weighted ensemble): the argmax equals the full-size path's pixel
  for pixel wherever the two best classes differ by more than float rounding (the
  multiply-adds may round differently; a pixel whose two best scores tie to within 1e-5
  may go either way), the entropy within float rounding.
- the pictures made in bands (entropy heat map, overlay) equal the whole-array formulas.
- the command on a 1023x577 photo against the full-size computation done here.
- a decompression bomb next to a good image: one line naming the file, its size and
  --max-pixels, exit status 1, nothing written for it, the good image written, and no
  warning from PIL.
"""
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from advent.domain_adaptation import inference
from advent.domain_adaptation.eval_UDA import argmax_channels, weighted_sum
from advent.domain_adaptation.inference import segment, upsample_rows
from advent.utils import viz_segmask
from advent.utils.func import entropy_map
from devices import DEVICES
from stage_utils import TINY, load_bgr_image, tiny_model
from test_fast_paths import random_model

C = 19
SCORE_SIZE = (65, 129)      # the score map (height, width), as the network gives for 1024x512
OUTPUT_SIZE = (577, 1023)   # (height, width)
WEIGHTS = (0.3, 0.7)
NEAR_TIE = 1e-5             # top-two score gaps within float rounding of these scores (|s| < 20)


def full_size(score_maps, weights, size):
    """The path without bands: every score map upsampled to the full size at once."""
    def upsample(scores):
        return F.interpolate(scores, size=size, mode='bilinear', align_corners=True)
    scores = weighted_sum(score_maps, weights, upsample)
    top_two = scores.topk(2, dim=1).values[0]
    return argmax_channels(scores)[0], entropy_map(F.softmax(scores, dim=1))[0], top_two[0] - top_two[1]


def assert_same_prediction(prediction, entropy, reference):
    expected, expected_entropy, gap = reference
    differs = prediction.long() != expected
    assert not differs[gap > NEAR_TIE].any(), f'{int(differs.sum())} pixels differ'
    assert int(differs.sum()) <= 2   # near ties are rare: here none or next to none
    assert len(expected.unique()) >= 5
    torch.testing.assert_close(entropy, expected_entropy, atol=1e-5, rtol=0)


class FixedScores(torch.nn.Module):
    """A 'model' whose main output is a given score map, whatever the input."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def forward(self, images):
        return None, self.scores.expand(len(images), -1, -1, -1)


def smooth_scores(seed):
    """Random class scores that vary smoothly over the map, as a network's do."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, C, 9, 17, generator=generator) * 4
    fine = torch.randn(1, C, *SCORE_SIZE, generator=generator)
    return F.interpolate(coarse, size=SCORE_SIZE, mode='bilinear', align_corners=True) + fine


@pytest.mark.parametrize('device', DEVICES)
def test_bands_of_rows_equal_the_full_upsampling(device):
    scores = smooth_scores(0).to(device)
    full = F.interpolate(scores, size=OUTPUT_SIZE, mode='bilinear', align_corners=True)
    bands = [upsample_rows(scores, OUTPUT_SIZE, start, min(start + 100, OUTPUT_SIZE[0]))
             for start in range(0, OUTPUT_SIZE[0], 100)]          # 577 = 5 x 100 + 77
    torch.testing.assert_close(torch.cat(bands, dim=2), full, atol=1e-5, rtol=0)
    one_row = upsample_rows(scores, OUTPUT_SIZE, 576, 577)        # the last row alone: the last input row
    torch.testing.assert_close(one_row, full[:, :, 576:], atol=1e-5, rtol=0)
    tiny = upsample_rows(scores, (1, 1), 0, 1)                    # a one-pixel output: the corner, as PyTorch
    torch.testing.assert_close(tiny, F.interpolate(scores, size=(1, 1), mode='bilinear', align_corners=True))


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('weights', [(1.0,), WEIGHTS], ids=['one model', 'ensemble'])
def test_segment_in_bands_equals_the_full_size_path(weights, device):
    score_maps = [smooth_scores(seed).to(device) for seed in range(1, len(weights) + 1)]
    models = [FixedScores(scores) for scores in score_maps]
    images = torch.zeros(2, 3, 8, 8, device=device)              # a batch of two: both get their own size
    sizes = [OUTPUT_SIZE[::-1], (130, 70)]                       # (width, height)
    band_elements = 37 * C * OUTPUT_SIZE[1]                      # 37 rows a band for the first: 577 = 15 x 37 + 22
    results = segment(models, weights, images, sizes, band_elements=band_elements)
    for (prediction, entropy), (width, height) in zip(results, sizes):
        assert prediction.shape == entropy.shape == (height, width) and prediction.dtype == torch.uint8
        assert_same_prediction(prediction, entropy, full_size(score_maps, weights, (height, width)))


def test_pictures_in_bands_equal_the_whole_array_formulas(monkeypatch):
    monkeypatch.setattr(viz_segmask, 'BAND_PIXELS', 7 * OUTPUT_SIZE[1])   # 7 rows a band: 577 = 82 x 7 + 3
    rng = np.random.default_rng(0)
    entropy = rng.random(OUTPUT_SIZE, dtype=np.float32) * 1.1 - 0.05     # a little outside [0, 1]: clipped
    mask = rng.integers(0, C, size=OUTPUT_SIZE).astype(np.uint8)
    mask[:3] = 255
    photo = rng.integers(0, 256, size=OUTPUT_SIZE + (3,), dtype=np.uint8)
    e = np.clip(entropy, 0, 1)[..., None]
    heat = (255 * np.concatenate([np.sqrt(e), e, e ** 3 * 0.3], axis=2)).astype(np.uint8)
    np.testing.assert_array_equal(viz_segmask.entropy_heatmap(entropy), heat)
    colour = np.asarray(viz_segmask.colorize_mask(mask).convert('RGB'))
    blended = np.rint(0.5 * photo.astype(np.float32) + 0.5 * colour).astype(np.uint8)
    np.testing.assert_array_equal(viz_segmask.overlay(photo, mask), blended)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp('bands')
    paths = []
    for seed in (1, 2):
        paths.append(root / f'model_{seed}.pth')
        torch.save(random_model(seed).state_dict(), paths[-1])
    return paths


def command(images, checkpoints, out, *extra):
    """intrada.predict's exit status (a command-line mistake exits from the parser)."""
    from intrada.predict import main
    try:
            return main([*map(str, images), '--checkpoint', *map(str, checkpoints), '--model', TINY,
                     '--input-size', '64', '32', '--device', 'cpu', '--out-dir', str(out), *extra])
    except SystemExit as e:
        return e.code


def test_command_on_a_large_photo_equals_the_full_size_computation(checkpoints, tmp_path, monkeypatch,
                                                                   one_torch_thread):
    monkeypatch.setattr(inference, 'BAND_ELEMENTS', 50 * C * OUTPUT_SIZE[1])   # 577 = 11 x 50 + 27
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, size=OUTPUT_SIZE + (3,), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / 'large.png')
    assert command([tmp_path / 'large.png'], checkpoints, tmp_path / 'out', '--weight', *map(str, WEIGHTS)) == 0

    score_maps = []
    for checkpoint in checkpoints:
        model = tiny_model(0)
        model.load_state_dict(torch.load(checkpoint, map_location='cpu', weights_only=True))
        with torch.no_grad():
            score_maps.append(model.eval()(load_bgr_image(tmp_path / 'large.png', (64, 32)))[1])
    with torch.no_grad():
        expected, expected_entropy, gap = full_size(score_maps, WEIGHTS, OUTPUT_SIZE)
    written = torch.from_numpy(np.array(Image.open(tmp_path / 'out' / 'large_trainIds.png')))
    assert written.shape == OUTPUT_SIZE
    differs = written.long() != expected
    assert not differs[gap > NEAR_TIE].any() and int(differs.sum()) <= 2
    heat = np.asarray(Image.open(tmp_path / 'out' / 'large_entropy.png'), np.int32)
    expected_heat = viz_segmask.entropy_heatmap(expected_entropy.numpy()).astype(np.int32)
    assert np.abs(heat - expected_heat).max() <= 1   # uint8 truncation of values equal up to rounding


def test_a_bomb_is_refused_in_one_line_and_the_good_image_written(checkpoints, tmp_path, capsys, monkeypatch,
                                                                  one_torch_thread):
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 256, size=(65, 129, 3), dtype=np.uint8)).save(images / 'good.png')
    Image.new('RGB', (300, 200)).save(images / 'bomb.png')   # 60,000 pixels: a bomb under --max-pixels 1e4
    # PIL's own limit far below both images: without our control PIL would warn on good.png
    # and refuse bomb.png with its own error
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)
    out = tmp_path / 'out'
    with warnings.catch_warnings():
        warnings.simplefilter('error', Image.DecompressionBombWarning)
        status = command([images], checkpoints[:1], out, '--max-pixels', '1e4')
    assert status == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, errors
    assert 'bomb.png' in errors[0] and '300x200' in errors[0] and '--max-pixels' in errors[0]
    assert sorted(p.name for p in out.iterdir()) == sorted(f'good_{kind}.png' for kind in
                                                            ('trainIds', 'color', 'entropy', 'overlay'))
    assert Image.MAX_IMAGE_PIXELS == 1000   # PIL's limit is put back

    # the limit is inclusive
    assert command([images], checkpoints[:1], tmp_path / 'out2', '--max-pixels', '60000') == 0


@pytest.mark.parametrize('value', ['many', '0', 'inf'])
def test_a_bad_max_pixels_is_one_line(checkpoints, tmp_path, capsys, value):
    image = tmp_path / 'a.png'
    Image.new('RGB', (8, 8)).save(image)
    assert command([image], checkpoints[:1], tmp_path / 'out', '--max-pixels', value) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error:') and '--max-pixels' in err[0], err
    assert not (tmp_path / 'out').exists()
