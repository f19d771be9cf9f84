"""Snapshot selection in best mode (SPEC 11, TEST.SELECTION): which snapshot a criterion picks.

- `miou`: the highest val mIoU (the original's rule; needs a label on every val item);
- `entropy`: the lowest mean prediction entropy on the val images: the mean over images of
  stage 2's score without normalisation (SPEC 9), the main head at TEST.INPUT_SIZE_TARGET;
- `im` (information maximisation): the highest H(p_mean) - mean(H(p)) over every pixel of
  every val image, H normalised by ln(NUM_CLASSES): confident predictions that still use
  many classes (plain entropy also rewards a model that collapses onto a few);
- `last`: the last snapshot.
Ties go to the earlier snapshot. The label-free scores come from the evaluation's own
forward pass (LabelFreeScores) and are cached beside the mIoU in all_res.json.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from advent.utils.func import prob_2_entropy

CRITERIA = ('miou', 'entropy', 'im', 'last')
LABEL_FREE = ('entropy', 'im')


class LabelFreeScores:
    """Accumulates one snapshot's `entropy` and `im` over a pass through the val set. The sums
    stay on the device, so the evaluation loop never waits for it.

    Every image has the same number of pixels (TEST.INPUT_SIZE_TARGET), so the mean of the
    pixels' normalised entropies H(p) is NUM_CLASSES times the `entropy` score (a mean over
    classes too): im = H(p_mean) - NUM_CLASSES * entropy."""

    def __init__(self, input_size, num_classes, device):
        width, height = input_size
        self.upsample = nn.Upsample(size=(height, width), mode='bilinear', align_corners=True)
        self.num_classes = num_classes
        self.entropy_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.probability_sum = torch.zeros(num_classes, dtype=torch.float64, device=device)
        self.images = 0

    def add(self, scores):
        """scores: the main head of a batch (N, C, h, w), already upsampled by self.upsample."""
        probability = F.softmax(scores, dim=1)
        # stage 2's score of each image (SPEC 9, without normalisation)
        self.entropy_sum += prob_2_entropy(probability).mean(dim=(1, 2, 3)).sum(dtype=torch.float64)
        self.probability_sum += probability.sum(dim=(0, 2, 3)).double()
        self.images += len(probability)

    def result(self):
        """{'entropy': float, 'im': float}."""
        entropy = self.entropy_sum.item() / self.images
        p_mean = self.probability_sum / self.probability_sum.sum()
        entropy_of_mean = -(p_mean * torch.log(p_mean + 1e-30)).sum().item() / math.log(self.num_classes)
        return {'entropy': entropy, 'im': entropy_of_mean - self.num_classes * entropy}


def pick(criterion, candidates, mious, label_free):
    """The iteration `criterion` picks among `candidates` (iterations), or None when none of
    them has the score it needs. mious: {iteration: mIoU percent}; label_free: {iteration:
    {'entropy', 'im'}}. Ties go to the earlier snapshot."""
    if criterion == 'last':
        return max(candidates, default=None)
    if criterion == 'miou':
        key, lower_is_better = mious.get, False
    else:
        key, lower_is_better = (lambda i: label_free.get(i, {}).get(criterion)), criterion == 'entropy'
    best = None
    for i_iter in sorted(candidates):
        value = key(i_iter)
        if value is None:
            continue
        if best is None or (value < best[1] if lower_is_better else value > best[1]):
            best = (i_iter, value)
    return None if best is None else best[0]


def selected(criterion, candidates, mious, label_free):
    """(iteration, what is known of it, e.g. ['entropy 0.012345', 'mIoU 40.1']) that `criterion`
    picks among `candidates`, as pick; None when none of them has the score it needs."""
    i_iter = pick(criterion, candidates, mious, label_free)
    return None if i_iter is None else (i_iter, score_texts(criterion, i_iter, mious, label_free))


def score_texts(criterion, i_iter, mious, label_free):
    """What is known of a pick, e.g. ['entropy 0.012345', 'mIoU 40.1']."""
    texts = [f'{criterion} {label_free[i_iter][criterion]:.6f}'] if criterion in LABEL_FREE else []
    return texts + ([f'mIoU {mious[i_iter]}'] if i_iter in mious else [])


def print_picks(selection, candidates, mious, label_free):
    """One line per criterion that can pick among `candidates`: the snapshot it picks."""
    print(f'Snapshot selection (TEST.SELECTION: {selection}):')
    for criterion in CRITERIA:
        i_iter = pick(criterion, candidates, mious, label_free)
        if i_iter is not None:
            print(f'\t{criterion}: iteration {i_iter}'
                  + ''.join(f', {text}' for text in score_texts(criterion, i_iter, mious, label_free)))
