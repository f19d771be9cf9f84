"""Segmentation of images with one model or a weighted ensemble (as TEST.MODEL_WEIGHT in
the evaluation): per image the prediction (argmax train ids) and the entropy map, at any
output size. Used by the prediction command, stage 2's overview figure and the demo."""
import torch
import torch.nn.functional as F

from advent.domain_adaptation.eval_UDA import argmax_channels, load_for_evaluation, weighted_sum
from advent.utils.func import entropy_map


def load_segmenters(names, multi_levels, checkpoints, num_classes, device):
    """One evaluation-ready model per checkpoint (model variant names and multi-level flags
    as TEST.MODEL / TEST.MULTI_LEVEL); a missing or unsuitable checkpoint is a CheckpointError."""
    from advent.domain_adaptation.experiment import build_segmenter
    models = []
    for name, multi_level, checkpoint in zip(names, multi_levels, checkpoints):
        model = build_segmenter(name, num_classes, multi_level)
        load_for_evaluation(model, checkpoint, device)
        models.append(model)
    return models


def segment(models, weights, images, sizes):
    """Predict a batch of network inputs (N, 3, h, w), on the models' device.

    sizes: per image its output size (width, height). Each model's main output is upsampled
    to that size (bilinear, align_corners=True), weighted and summed as in the evaluation;
    then softmax, argmax and the entropy map (entropy_map, in [0, 1]). Returns per image
    (prediction uint8 (H, W), entropy float32 (H, W)), tensors on the device."""
    results = []
    with torch.no_grad():
        outputs = [model(images)[1] for model in models]
        for index, (width, height) in enumerate(sizes):
            def upsample(scores):
                return F.interpolate(scores, size=(height, width), mode='bilinear', align_corners=True)
            scores = weighted_sum((output[index:index + 1] for output in outputs), weights, upsample)
            entropy = entropy_map(F.softmax(scores, dim=1))[0]
            results.append((argmax_channels(scores)[0].to(torch.uint8), entropy))
            del scores
    return results
