"""Segmentation of images with one model or a weighted ensemble (as TEST.MODEL_WEIGHT in
the evaluation): per image the prediction (argmax train ids) and the entropy map, at any
output size. Used by the prediction command, stage 2's overview figure and the demo.

The score maps are upsampled, summed, arg-maxed and turned into entropy in horizontal
bands of the output, so that memory does not grow with classes x output pixels (a 96 MP
photo's full score map is 7.3 GB for 19 classes): bilinear interpolation with
align_corners=True is separable, and a band of output rows needs only the input rows
that bracket it (upsample_rows)."""
import torch
import torch.nn.functional as F

from advent.domain_adaptation.eval_UDA import argmax_channels, load_for_evaluation, weighted_sum
from advent.utils.func import entropy_map

BAND_ELEMENTS = 2 ** 23   # score values (classes x band rows x width) in one band: 32 MB in fp32


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


def source_rows(input_size, output_size, start, stop, dtype=torch.float32):
    """For output rows [start, stop) of a bilinear, align_corners=True resize from
    `input_size` to `output_size` rows: (upper input row, lower input row, upper weight,
    lower weight), computed as PyTorch's kernels do (scale (in - 1) / (out - 1) in fp32,
    or in fp64 for fp64 scores)."""
    if output_size > 1:
        scale = torch.tensor(input_size - 1, dtype=dtype) / (output_size - 1)
    else:
        scale = torch.tensor(0.0, dtype=dtype)
    position = torch.arange(start, stop, dtype=dtype) * scale
    upper = position.floor().long().clamp(max=input_size - 1)
    lower_weight = (position - upper).clamp(0, 1)
    lower = (upper + 1).clamp(max=input_size - 1)
    return upper, lower, 1 - lower_weight, lower_weight


def upsample_rows(scores, size, start, stop):
    """Rows [start, stop) of F.interpolate(scores, size=size (height, width), mode='bilinear',
    align_corners=True), from only the input rows they need: equal to those rows up to
    float rounding (in the tests, on the CPU, bit for bit)."""
    height, width = size
    upper, lower, upper_weight, lower_weight = source_rows(
        scores.shape[2], height, start, stop, torch.float64 if scores.dtype == torch.float64 else torch.float32)
    top, bottom = int(upper[0]), int(lower[-1]) + 1
    # along the width first, on the rows needed (the height left as it is: weights 1 and 0)
    rows = F.interpolate(scores[:, :, top:bottom], size=(bottom - top, width), mode='bilinear', align_corners=True)
    if scores.device.type == 'cpu':
        # then down the height as a product with the (band rows x input rows) weights, the
        # fastest way on the CPU (gathering rows is several times slower); with the rows in
        # reverse order the two products add in the order PyTorch's kernel adds them
        band_rows = torch.arange(stop - start)
        row_weights = torch.zeros(stop - start, bottom - top, dtype=rows.dtype)
        row_weights.index_put_((band_rows, bottom - 1 - upper), upper_weight.to(rows.dtype), accumulate=True)
        row_weights.index_put_((band_rows, bottom - 1 - lower), lower_weight.to(rows.dtype), accumulate=True)
        return torch.matmul(row_weights, rows.flip(2))
    # on a GPU gathering rows is fast (and a matrix product might run in TF32)
    upper_weight, lower_weight = upper_weight.to(scores.device), lower_weight.to(scores.device)
    band = rows.index_select(2, (upper - top).to(scores.device)) * upper_weight[:, None]
    band += rows.index_select(2, (lower - top).to(scores.device)) * lower_weight[:, None]
    return band


def band_height(num_classes, width, band_elements=BAND_ELEMENTS):
    """Output rows in one band: at least one."""
    return max(1, band_elements // (num_classes * width))


def segment(models, weights, images, sizes, band_elements=BAND_ELEMENTS):
    """Predict a batch of network inputs (N, 3, h, w), on the models' device.

    sizes: per image its output size (width, height). Each model's main output is upsampled
    to that size (bilinear, align_corners=True), weighted and summed as in the evaluation;
    then softmax, argmax and the entropy map (entropy_map, in [0, 1]), all in bands of about
    `band_elements` score values. Returns per image (prediction uint8 (H, W), entropy
    float32 (H, W)), tensors on the device."""
    results = []
    with torch.no_grad():
        outputs = [model(images)[1] for model in models]
        num_classes = outputs[0].shape[1]
        for index, (width, height) in enumerate(sizes):
            prediction = torch.empty((height, width), dtype=torch.uint8, device=images.device)
            entropy = torch.empty((height, width), dtype=torch.float32, device=images.device)
            rows = band_height(num_classes, width, band_elements)
            for start in range(0, height, rows):
                stop = min(start + rows, height)
                scores = weighted_sum((output[index:index + 1] for output in outputs), weights,
                                      lambda s: upsample_rows(s, (height, width), start, stop))
                prediction[start:stop] = argmax_channels(scores)[0]
                entropy[start:stop] = entropy_map(F.softmax(scores, dim=1))[0]
                del scores
            results.append((prediction, entropy))
    return results
