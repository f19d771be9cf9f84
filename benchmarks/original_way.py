"""The baseline side of the speed benchmark: the evaluation and ranking loops as ADVENT's
eval_UDA.py and IntraDA's entropy.py wrote them (score maps copied to the host, numpy
argmax, PNGs saved in line), reimplemented here on this project's model and datasets.
The training baseline needs no code of its own: it is this project's faithful fp32 path."""
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from advent.utils.func import fast_hist, prob_2_entropy
from advent.utils.viz_segmask import colorize_mask
from benchmarks.measure import NUM_CLASSES
from entropy_rank.ranking import RARE_CLASSES


def evaluate(model, loader, device, interp):
    """ADVENT's eval_UDA.eval_best loop (eval_single with one model); the confusion matrix."""
    hist = np.zeros((NUM_CLASSES, NUM_CLASSES))
    for image, label, _, _ in loader:
        with torch.no_grad():
            pred_main = model(image.to(device))[1]
        hist += evaluation_after_forward(pred_main, label, interp)
    return hist


def evaluation_after_forward(pred_main, label, interp):
    """The original's work after the forward pass: the score map to the host, numpy argmax, fast_hist."""
    with torch.no_grad():
        output = interp(pred_main).cpu().data[0].numpy()
        output = output.transpose(1, 2, 0)
        output = np.argmax(output, axis=2)
    label = label.numpy()[0]
    return fast_hist(label.flatten(), output.flatten(), NUM_CLASSES)


def find_rare_class(output_pt_tensor):
    output_np_tensor = output_pt_tensor.cpu().data[0].numpy()
    mask_np_tensor = output_np_tensor.transpose(1, 2, 0)
    mask_np_tensor = np.asarray(np.argmax(mask_np_tensor, axis=2), dtype=np.uint8)
    unique = np.unique(mask_np_tensor)
    return [c for c in RARE_CLASSES if c in unique]


def colorize_save(output_pt_tensor, name, out_dir):
    output_np_tensor = output_pt_tensor.cpu().data[0].numpy()
    mask_np_tensor = output_np_tensor.transpose(1, 2, 0)
    mask_np_tensor = np.asarray(np.argmax(mask_np_tensor, axis=2), dtype=np.uint8)
    mask_img = Image.fromarray(mask_np_tensor)
    mask_color = colorize_mask(mask_np_tensor)
    name = name.split('/')[-1]
    mask_img.save(out_dir / name)
    mask_color.save(out_dir / f'{name.split(".")[0]}_color.png')


def ranking_after_forward(pred_trg_main, name, interp, out_dir):
    """The body of IntraDA's entropy.py loop after the forward pass (with normalisation); the score."""
    with torch.no_grad():
        pred_trg_main = interp(pred_trg_main)
        normalizor = (11 - len(find_rare_class(pred_trg_main))) / 11.0 + 0.5
        pred_trg_entropy = prob_2_entropy(F.softmax(pred_trg_main, dim=1))
        score = pred_trg_entropy.mean().item() * normalizor
        colorize_save(pred_trg_main, name, out_dir)
    return score


def rank(model, loader, device, interp, out_dir, lambda1=0.67):
    """IntraDA's entropy.py main loop (with normalisation); the (easy, hard) split."""
    entropy_list = []
    for image, _, _, name in loader:
        with torch.no_grad():
            _, pred_trg_main = model(image.to(device))
        entropy_list.append((name[0], ranking_after_forward(pred_trg_main, name[0], interp, out_dir)))
    ranked = [name for name, _ in sorted(entropy_list, key=lambda item: item[1])]
    cut = int(len(ranked) * lambda1)
    return ranked[:cut], ranked[cut:]
