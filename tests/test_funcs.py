"""advent.utils.func, advent.utils.loss and advent.utils.viz_segmask against hand-computed values."""
import json
import math

import numpy as np
import pytest
import torch
from easydict import EasyDict
from PIL import Image

from advent.utils.func import (adjust_learning_rate, adjust_learning_rate_discriminator, bce_loss, fast_hist,
                               loss_calc, lr_poly, per_class_iu, prob_2_entropy)
from advent.utils.loss import cross_entropy_2d, entropy_loss
from advent.utils.viz_segmask import colorize_mask


def _probs(*pixels):
    """(1, C, 1, P) probability map from P per-pixel lists of C probabilities."""
    return torch.tensor(pixels, dtype=torch.float32).t().reshape(1, len(pixels[0]), 1, len(pixels))


# ---------------------------------------------------------------- entropy

def test_prob_2_entropy_values():
    p = _probs([0.5, 0.5], [1.0, 0.0], [0.25, 0.75])
    e = prob_2_entropy(p)
    assert e.shape == p.shape
    expected = torch.tensor([[0.5, 0.0, -0.25 * math.log2(0.25)],
                             [0.5, 0.0, -0.75 * math.log2(0.75)]]).reshape(1, 2, 1, 3)
    assert torch.allclose(e, expected, atol=1e-6)


def test_prob_2_entropy_normalised_by_log2_classes():
    p = torch.full((2, 4, 3, 5), 0.25)
    e = prob_2_entropy(p)
    # each class: -0.25 * log2(0.25) / log2(4) = 0.25; the sum over classes is 1
    assert torch.allclose(e, torch.full_like(e, 0.25))
    assert torch.allclose(e.sum(1), torch.ones(2, 3, 5))


def test_entropy_loss_values():
    assert float(entropy_loss(torch.full((2, 5, 3, 4), 0.2))) == pytest.approx(1.0, rel=1e-6)
    one_hot = torch.zeros(1, 3, 2, 2)
    one_hot[:, 1] = 1
    assert float(entropy_loss(one_hot)) == pytest.approx(0.0, abs=1e-7)
    # one pixel of entropy 1, one of entropy 0 -> mean 0.5
    assert float(entropy_loss(_probs([0.5, 0.5], [1.0, 0.0]))) == pytest.approx(0.5, rel=1e-6)
    # C = 3: -sum p log2 p / log2 3, averaged over N * H * W = 2 pixels
    p = _probs([0.2, 0.3, 0.5], [0.1, 0.1, 0.8])
    h = [-sum(q * math.log2(q) for q in pix) / math.log2(3) for pix in ([0.2, 0.3, 0.5], [0.1, 0.1, 0.8])]
    assert float(entropy_loss(p)) == pytest.approx(sum(h) / 2, rel=1e-5)


def test_entropy_loss_averages_over_batch():
    p1 = _probs([0.5, 0.5], [0.5, 0.5])
    p0 = _probs([1.0, 0.0], [0.0, 1.0])
    assert float(entropy_loss(torch.cat([p1, p0]))) == pytest.approx(0.5, rel=1e-6)


# ---------------------------------------------------------------- bce

def test_bce_loss_zero_and_one():
    x = torch.tensor([-2.0, 0.0, 3.0, 0.5]).reshape(1, 1, 2, 2)
    v = [-2.0, 0.0, 3.0, 0.5]
    exp0 = sum(math.log(1 + math.exp(t)) for t in v) / 4   # target 0
    exp1 = sum(math.log(1 + math.exp(-t)) for t in v) / 4  # target 1
    assert float(bce_loss(x, 0)) == pytest.approx(exp0, rel=1e-6)
    assert float(bce_loss(x, 1)) == pytest.approx(exp1, rel=1e-6)
    z = torch.zeros(2, 1, 3, 3)
    assert float(bce_loss(z, 0)) == pytest.approx(math.log(2), rel=1e-6)
    assert float(bce_loss(z, 1)) == pytest.approx(math.log(2), rel=1e-6)


def test_bce_loss_has_gradient():
    x = torch.tensor([[[[1.0, -1.0]]]], requires_grad=True)
    bce_loss(x, 1).backward()
    # d/dx mean(log(1 + e^-x)) = -(1 - sigmoid(x)) / n
    expected = -(1 - torch.sigmoid(x.detach())) / 2
    assert torch.allclose(x.grad, expected, atol=1e-6)


# ---------------------------------------------------------------- cross-entropy

def _manual_ce(logits, target):
    n, c, h, w = logits.shape
    total, count = 0.0, 0
    for b in range(n):
        for i in range(h):
            for j in range(w):
                t = int(target[b, i, j])
                if t < 0 or t == 255:
                    continue
                row = [float(logits[b, k, i, j]) for k in range(c)]
                lse = math.log(sum(math.exp(r) for r in row))
                total += lse - row[t]
                count += 1
    return total / count


def test_cross_entropy_2d_ignores_255_and_negative():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 3, generator=g)
    target = torch.tensor([[[0, 1, 255], [3, -1, 2], [255, 255, 1]],
                           [[-5, 2, 2], [0, 3, 255], [1, 1, -1]]])
    got = float(cross_entropy_2d(logits, target))
    assert got == pytest.approx(_manual_ce(logits, target), rel=1e-5)
    # the ignored pixels really are ignored: changing their logits changes nothing
    logits2 = logits.clone()
    logits2[0, :, 0, 2] += torch.tensor([50.0, -3.0, 7.0, 1.0])
    logits2[1, :, 0, 0] -= 20
    assert float(cross_entropy_2d(logits2, target)) == pytest.approx(got, rel=1e-6)


def test_cross_entropy_2d_simple_value():
    logits = torch.zeros(1, 4, 1, 2)
    target = torch.tensor([[[2, 255]]])
    assert float(cross_entropy_2d(logits, target)) == pytest.approx(math.log(4), rel=1e-6)


def test_cross_entropy_2d_zero_without_valid_pixels():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    target = torch.tensor([[[255, -1], [255, 255]]])
    loss = cross_entropy_2d(logits, target)
    assert float(loss.detach()) == 0.0
    loss.backward()  # still a graph node, so a training step does not crash
    assert torch.count_nonzero(logits.grad) == 0


def test_loss_calc_matches_cross_entropy_2d():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 5, 2, 3, generator=g)
    label = torch.tensor([[[0.0, 4.0, 255.0], [2.0, 1.0, 3.0]]])  # float labels, as GTA5 gives them
    got = float(loss_calc(logits, label, torch.device('cpu')))
    assert got == pytest.approx(_manual_ce(logits, label.long()), rel=1e-5)


# ---------------------------------------------------------------- learning rates

def test_lr_poly():
    assert lr_poly(1.0, 5, 10, 1.0) == pytest.approx(0.5)
    assert lr_poly(2.5e-4, 0, 100, 0.9) == pytest.approx(2.5e-4)
    assert lr_poly(0.01, 50, 100, 0.9) == pytest.approx(0.01 * 0.5 ** 0.9)
    assert lr_poly(2.5e-4, 120000, 250000, 0.9) == pytest.approx(2.5e-4 * (1 - 0.48) ** 0.9)
    assert lr_poly(1.0, 10, 10, 0.9) == pytest.approx(0.0)


def _cfg(lr=2.5e-4, lr_d=1e-4, max_iters=100, power=0.9):
    return EasyDict({'TRAIN': {'LEARNING_RATE': lr, 'LEARNING_RATE_D': lr_d, 'MAX_ITERS': max_iters,
                               'POWER': power}})


def test_adjust_learning_rate_two_groups():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{'params': [a], 'lr': 1.0}, {'params': [b], 'lr': 1.0}], lr=1.0)
    cfg = _cfg()
    for i in (0, 30, 99):
        adjust_learning_rate(opt, i, cfg)
        base = 2.5e-4 * (1 - i / 100) ** 0.9
        assert opt.param_groups[0]['lr'] == pytest.approx(base)
        assert opt.param_groups[1]['lr'] == pytest.approx(10 * base)


def test_adjust_learning_rate_discriminator():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=1.0, betas=(0.9, 0.99))
    adjust_learning_rate_discriminator(opt, 25, _cfg(max_iters=50, power=1.0))
    assert len(opt.param_groups) == 1
    assert opt.param_groups[0]['lr'] == pytest.approx(1e-4 * 0.5)


# ---------------------------------------------------------------- confusion matrix and IoU

def test_fast_hist_rows_are_labels_and_out_of_range_ignored():
    a = np.array([0, 1, 2, 255, -1, 3, 1, 1])
    b = np.array([0, 2, 2, 1, 1, 0, 1, 2])
    h = fast_hist(a, b, 3)
    expected = np.zeros((3, 3), np.int64)
    expected[0, 0] = 1
    expected[1, 2] = 2   # label 1 predicted as 2: row 1, column 2
    expected[2, 2] = 1
    expected[1, 1] = 1
    assert h.shape == (3, 3)
    np.testing.assert_array_equal(h, expected)
    assert h.sum() == 5  # 255, -1 and 3 (>= n) are not counted


def test_fast_hist_all_pairs():
    n = 4
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing='ij')
    h = fast_hist(a.ravel(), b.ravel(), n)
    np.testing.assert_array_equal(h, np.ones((n, n)))


def test_per_class_iu():
    hist = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    iu = per_class_iu(hist)
    assert iu[0] == pytest.approx(3 / (4 + 5 - 3))
    assert iu[1] == pytest.approx(4 / (6 + 5 - 4))
    assert np.isnan(iu[2])  # a class absent from labels and predictions
    assert np.nanmean(iu) == pytest.approx((0.5 + 4 / 7) / 2)
    # predicted but never labelled: IoU 0, not nan
    assert per_class_iu(np.array([[1, 1], [0, 0]]))[1] == 0


# ---------------------------------------------------------------- colour masks

CITYSCAPES_PALETTE = {0: (128, 64, 128), 1: (244, 35, 232), 2: (70, 70, 70), 8: (107, 142, 35),
                      10: (70, 130, 180), 11: (220, 20, 60), 13: (0, 0, 142), 18: (119, 11, 32)}


def test_colorize_mask_palette():
    ids = list(CITYSCAPES_PALETTE) + [255]
    mask = np.array([ids], dtype=np.int64)
    img = colorize_mask(mask)
    assert isinstance(img, Image.Image) and img.mode == 'P'
    assert img.size == (len(ids), 1)
    np.testing.assert_array_equal(np.asarray(img), np.array([ids], np.uint8))  # indices kept
    rgb = np.asarray(img.convert('RGB'))
    for x, i in enumerate(ids):
        expected = CITYSCAPES_PALETTE.get(i, (0, 0, 0))
        assert tuple(int(v) for v in rgb[0, x]) == expected, i


def test_colorize_mask_uses_info_json_palette():
    from advent.domain_adaptation.config import DATASET_DIR
    with open(DATASET_DIR / 'cityscapes_list' / 'info.json') as f:
        palette = json.load(f)['palette']
    assert len(palette) >= 19  # the original's info.json has a 20th (black) entry
    mask = np.arange(19, dtype=np.uint8)[None]
    rgb = np.asarray(colorize_mask(mask).convert('RGB'))[0]
    np.testing.assert_array_equal(rgb, np.array(palette[:19], np.uint8))
