import numpy as np
import torch
import torch.nn.functional as F


def cross_entropy_2d(predict, target):
    """Mean cross-entropy over the pixels whose label is >= 0 and != 255.

    predict: (n, c, h, w) logits, target: (n, h, w) class ids. Zero when no pixel is valid.
    """
    assert not target.requires_grad
    assert predict.dim() == 4 and target.dim() == 3
    assert predict.shape[0] == target.shape[0] and predict.shape[2:] == target.shape[1:], \
        f'prediction {tuple(predict.shape)} and labels {tuple(target.shape)} differ in size'
    valid = (target >= 0) & (target != 255)
    if not valid.any():
        return predict.sum() * 0.0
    num_classes = predict.shape[1]
    pixels = predict.permute(0, 2, 3, 1)[valid].view(-1, num_classes)
    return F.cross_entropy(pixels, target[valid])


def entropy_loss(v):
    """Entropy of softmax probabilities v (n, c, h, w), normalised by log2(c), averaged."""
    assert v.dim() == 4
    n, c, h, w = v.size()
    return -torch.sum(torch.mul(v, torch.log2(v + 1e-30))) / (n * h * w * np.log2(c))
