"""Small functions shared by the training loop, the evaluation and the ranking."""
import numpy as np
import torch
import torch.nn as nn

from advent.utils.loss import cross_entropy_2d


def bce_loss(y_pred, y_label):
    """BCE-with-logits of y_pred against a tensor filled with y_label (0 source, 1 target)."""
    y_truth_tensor = torch.empty_like(y_pred).fill_(y_label)
    return nn.BCEWithLogitsLoss()(y_pred, y_truth_tensor)


def prob_2_entropy(prob):
    """Per-class weighted self-information maps, normalised by log2(C)."""
    n, c, h, w = prob.size()
    return -torch.mul(prob, torch.log2(prob + 1e-30)) / np.log2(c)


def entropy_map(prob):
    """Per-pixel entropy of softmax maps (N, C, H, W) -> (N, H, W), normalised by log2(C) to
    [0, 1]: prob_2_entropy summed over the classes."""
    return prob_2_entropy(prob).sum(1)


def loss_calc(pred, label, device):
    """Segmentation cross-entropy; label (n, h, w) is moved to pred's device as int64."""
    label = label.long().to(device)
    return cross_entropy_2d(pred, label)


def lr_poly(base_lr, iter, max_iter, power):
    """Poly learning-rate decay."""
    return base_lr * ((1 - float(iter) / max_iter) ** power)


def _adjust_learning_rate(optimizer, i_iter, cfg, learning_rate):
    lr = lr_poly(learning_rate, i_iter, cfg.TRAIN.MAX_ITERS, cfg.TRAIN.POWER)
    optimizer.param_groups[0]['lr'] = lr
    if len(optimizer.param_groups) > 1:
        optimizer.param_groups[1]['lr'] = lr * 10


def adjust_learning_rate(optimizer, i_iter, cfg):
    """Segmenter: backbone at the poly rate, heads at ten times it."""
    _adjust_learning_rate(optimizer, i_iter, cfg, cfg.TRAIN.LEARNING_RATE)


def adjust_learning_rate_discriminator(optimizer, i_iter, cfg):
    _adjust_learning_rate(optimizer, i_iter, cfg, cfg.TRAIN.LEARNING_RATE_D)


def fast_hist(a, b, n):
    """n x n confusion matrix; rows are labels a (pixels outside [0, n) ignored), columns predictions b."""
    a = np.asarray(a)
    b = np.asarray(b)
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k].astype(int), minlength=n ** 2).reshape(n, n)


def per_class_iu(hist):
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
