"""Peak memory and time of `intrada.predict` on one large photo: the banded path against the
full-size path it replaced.

    python benchmarks/predict_memory.py                          # 96 MP (12000x8000); baseline at 3, 6, 12 MP
    python benchmarks/predict_memory.py --megapixels 24 --baseline-megapixels 24 --json out.json

Each run is a fresh child process (`--child`), so that its peak resident set size
(getrusage ru_maxrss: model, PyTorch runtime, photo, score maps, pictures and PNG
encoding, all included) is that run's alone; the time is the child's wall time from start
to the last PNG written. Both sides predict the same synthetic JPEG (a smooth random scene)
with the reduced model (DeepLabv2-tiny, random weights) at the default input size
1024x512, on the CPU, in strict fp32:

- ours: `intrada.predict` as it is (scores upsampled, arg-maxed and turned into entropy in
  bands of rows; the four pictures made one at a time, in bands).
- baseline: the code that `intrada.predict` ran before the bands, reproduced in
  `full_size_predict` below: the whole score map upsampled to the photo's size at once,
  softmax and entropy over it, the four pictures held together.

The baseline needs about 19 classes x 4 bytes x several copies per pixel (tens of GB at
96 MP), more than most machines have, so by default it runs at smaller sizes
(--baseline-megapixels) and its 96 MP figure is extrapolated with a straight line through
its measured peaks (memory grows linearly with the pixels); the JSON and the printed
table say which figures are measured and which extrapolated. Both sides write the same
argmax PNG up to near ties (checked at the sizes both ran).

    python benchmarks/predict_memory.py --evaluation

measures instead whether the evaluation (TEST.OUTPUT_SIZE_TARGET 2048x1024) and the ranking
(1024x512), which also upsample whole score maps, need bands: the peak resident set size
of a child that runs only the forward pass of the full DeepLabv2 (ResNet-101, random
weights) on one 1024x512 image, against children that also do the evaluation's
upsampling and argmax (eval_UDA: weighted_sum, argmax_channels) or the ranking's softmax
and entropy at the input size.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

MODEL = 'DeepLabv2-tiny'
ASPECT = (3, 2)   # width : height, as a 12000x8000 photo


def photo_size(megapixels):
    """(width, height) of a 3:2 photo with about `megapixels` million pixels."""
    height = int(round((megapixels * 1e6 * ASPECT[1] / ASPECT[0]) ** 0.5))
    return int(round(height * ASPECT[0] / ASPECT[1])), height


def write_photo(path, size, seed=0):
    """A smooth random scene (coarse colour blobs plus a little noise) as a JPEG."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, size=(12, 18, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    coarse.save(path, quality=90)


def write_checkpoint(path):
    import torch
    from advent.model.deeplabv2 import get_deeplab_v2
    torch.manual_seed(0)
    model = get_deeplab_v2(19, True, MODEL)
    with torch.no_grad():   # larger heads than the initialisation: varied predictions, as a trained model's
        for name, param in model.named_parameters():
            if name.startswith(('layer5', 'layer6')) and name.endswith('weight'):
                param.normal_(0, 0.3)
    torch.save(model.state_dict(), path)


def full_size_predict(image, checkpoint, out_dir):
    """intrada.predict for one image as it was before the bands: the full-size score map,
    its softmax and entropy, and the four pictures held at once."""
    import torch
    import torch.nn.functional as F
    from PIL import Image, ImageOps
    from advent.dataset.base_dataset import image_to_array, open_image, preprocess_image
    from advent.domain_adaptation.config import default_config
    from advent.domain_adaptation.eval_UDA import argmax_channels
    from advent.domain_adaptation.inference import load_segmenters
    from advent.utils.func import entropy_map
    from advent.utils.serialization import save_image
    from advent.utils.viz_segmask import colorize_mask, colorize_rgb

    cfg = default_config()
    model, = load_segmenters([MODEL], [True], [checkpoint], 19, torch.device('cpu'))
    Image.MAX_IMAGE_PIXELS = None   # it decoded any size (with PIL's warning)
    photo = ImageOps.exif_transpose(open_image(image, 'image')).convert('RGB')
    network_input = preprocess_image(image_to_array(photo, cfg.TEST.INPUT_SIZE_TARGET, Image.BICUBIC),
                                     cfg.TEST.IMG_MEAN)
    photo = np.asarray(photo)
    with torch.no_grad():
        scores = model(torch.from_numpy(network_input.copy())[None])[1]
        scores = F.interpolate(scores, size=photo.shape[:2], mode='bilinear', align_corners=True)
        entropy = entropy_map(F.softmax(scores, dim=1))[0].numpy()
        prediction = argmax_channels(scores)[0].to(torch.uint8).numpy()
        del scores
    e = np.clip(np.asarray(entropy, np.float32), 0, 1)[..., None]
    heat = (255 * np.concatenate([np.sqrt(e), e, e ** 3 * 0.3], axis=2)).astype(np.uint8)
    blended = np.rint(0.5 * np.asarray(photo, np.float32) + 0.5 * colorize_rgb(prediction)).astype(np.uint8)
    images = {'trainIds': Image.fromarray(prediction), 'color': colorize_mask(prediction),
              'entropy': Image.fromarray(heat), 'overlay': Image.fromarray(blended)}
    for kind, picture in images.items():
        save_image(picture, Path(out_dir) / f'{Path(image).stem}_{kind}.png')


def full_size_step(step):
    """One evaluation-sized forward pass, then `step`'s work on its output; prints the peak."""
    import torch
    import torch.nn.functional as F
    from advent.domain_adaptation.eval_UDA import argmax_channels, weighted_sum
    from advent.model.deeplabv2 import get_deeplab_v2
    from advent.utils.func import prob_2_entropy
    torch.manual_seed(0)
    model = get_deeplab_v2(19, True).eval()
    with torch.no_grad():
        scores = model(torch.randn(1, 3, 512, 1024) * 50)[1]
        if step == 'eval':     # eval_UDA.confusion_matrix at TEST.OUTPUT_SIZE_TARGET
            output = weighted_sum([scores], [1.0], lambda s: F.interpolate(s, size=(1024, 2048), mode='bilinear',
                                                                           align_corners=True))
            argmax_channels(output)
        elif step == 'rank':   # entropy_rank.ranking at the input size
            output = F.interpolate(scores, size=(512, 1024), mode='bilinear', align_corners=True)
            prob_2_entropy(F.softmax(output, dim=1)).mean()
            argmax_channels(output)
    print(json.dumps({'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def evaluation_report(timeout):
    steps = {}
    for step in ('forward', 'eval', 'rank'):
        proc = subprocess.run([sys.executable, __file__, '--full-size-step', step], capture_output=True, text=True,
                              timeout=timeout, cwd=str(PROJECT_ROOT))
        steps[step] = json.loads(proc.stdout.strip().splitlines()[-1])['peak_mb'] if proc.returncode == 0 else None
        print(f'{step:<8} peak {steps[step]:.0f} MB' if steps[step] else f'{step}: failed {proc.stderr[-500:]}',
              flush=True)
    return {'full_size_steps_peak_mb': steps}


def child(side, image, checkpoint, out_dir):
    """One run in this process; prints {'peak_mb', 'seconds'} as JSON."""
    start = time.perf_counter()
    if side == 'ours':
        from intrada.predict import main
        status = main([str(image), '--checkpoint', str(checkpoint), '--model', MODEL, '--device', 'cpu',
                       '--out-dir', str(out_dir)])
        if status:
            raise SystemExit(f'intrada.predict failed with status {status}')
    else:
        full_size_predict(image, checkpoint, out_dir)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: KiB
    print(json.dumps({'peak_mb': peak_mb, 'seconds': seconds}))


def run_child(side, image, checkpoint, out_dir, timeout):
    proc = subprocess.run([sys.executable, __file__, '--child', side, str(image), str(checkpoint), str(out_dir)],
                          capture_output=True, text=True, timeout=timeout, cwd=str(PROJECT_ROOT))
    if proc.returncode:
        return {'failed': proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f'status {proc.returncode}'}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def same_argmax(a, b):
    from PIL import Image
    return float((np.asarray(Image.open(a)) == np.asarray(Image.open(b))).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--megapixels', type=float, default=96, help="the photo's size for our side (default 96)")
    parser.add_argument('--baseline-megapixels', type=float, nargs='+', default=[3, 6, 12],
                        help='sizes the baseline runs at (default 3 6 12; tens of GB at 96)')
    parser.add_argument('--timeout', type=int, default=1800, help='seconds per run')
    parser.add_argument('--json', default=None, help='also write the figures here')
    parser.add_argument('--evaluation', action='store_true',
                        help="measure the evaluation's and the ranking's full-size upsampling instead")
    parser.add_argument('--full-size-step', choices=('forward', 'eval', 'rank'), help=argparse.SUPPRESS)
    parser.add_argument('--child', nargs=4, metavar=('SIDE', 'IMAGE', 'CHECKPOINT', 'OUT_DIR'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child)
    if args.full_size_step:
        return full_size_step(args.full_size_step)
    if args.evaluation:
        report = evaluation_report(args.timeout)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + '\n')
        return report

    sizes = sorted(set(args.baseline_megapixels) | {args.megapixels})
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = tmp / 'tiny.pth'
        write_checkpoint(checkpoint)
        for megapixels in sizes:
            size = photo_size(megapixels)
            image = tmp / f'photo_{size[0]}x{size[1]}.jpg'
            write_photo(image, size)
            sides = ['ours'] + (['baseline'] if megapixels in args.baseline_megapixels else [])
            outputs = {}
            for side in sides:
                outputs[side] = tmp / f'{side}_{megapixels:g}'
                result = run_child(side, image, checkpoint, outputs[side], args.timeout)
                runs.append({'side': side, 'megapixels': size[0] * size[1] / 1e6, 'size': list(size), **result})
                print(json.dumps(runs[-1]), flush=True)
            if len(outputs) == 2:
                trainids = [outputs[side] / f'{image.stem}_trainIds.png' for side in ('ours', 'baseline')]
                if all(p.exists() for p in trainids):
                    runs[-1]['same_argmax_fraction'] = same_argmax(*trainids)
            image.unlink()
    report = {'runs': runs, 'machine': f'{platform.machine()}, {os.cpu_count()} CPUs'}
    report.update(summary(runs))
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + '\n')
    return report


def summary(runs):
    """Our measured peak and time at our largest photo; the baseline's peak there (measured, or
    extrapolated by a least-squares line through its measured sizes) and the ratio; the
    time ratio ours / baseline at each size both ran (times on a loaded machine are not
    extrapolated)."""
    ours = [r for r in runs if r['side'] == 'ours' and 'peak_mb' in r]
    base = [r for r in runs if r['side'] == 'baseline' and 'peak_mb' in r]
    target = max(ours, key=lambda r: r['megapixels'])
    out = {'ours_peak_mb': target['peak_mb'], 'ours_seconds': target['seconds'], 'at_megapixels': target['megapixels']}
    measured = [r for r in base if abs(r['megapixels'] - target['megapixels']) < 0.5]
    if measured:
        out.update(baseline_peak_mb=measured[0]['peak_mb'], baseline_is='measured')
    elif len(base) >= 2:
        x = np.array([r['megapixels'] for r in base])
        slope, intercept = np.polyfit(x, [r['peak_mb'] for r in base], 1)
        out.update(baseline_peak_mb=float(intercept + slope * target['megapixels']),
                   baseline_peak_mb_per_megapixel=float(slope),
                   baseline_is=f'extrapolated from {", ".join(f"{v:.1f}" for v in x)} MP')
    if 'baseline_peak_mb' in out:
        out['peak_ratio_baseline_over_ours'] = out['baseline_peak_mb'] / out['ours_peak_mb']
    out['time_ratio_ours_over_baseline'] = {f'{b["megapixels"]:.1f}': o['seconds'] / b['seconds']
                                            for b in base for o in ours if abs(o['megapixels'] - b['megapixels']) < 0.5}
    return out


def print_table(report):
    print(f'\n{"side":<9} {"MP":>6} {"peak MB":>9} {"seconds":>8}')
    for r in report['runs']:
        figures = f'{r["peak_mb"]:>9.0f} {r["seconds"]:>8.1f}' if 'peak_mb' in r else f'failed: {r["failed"]}'
        print(f'{r["side"]:<9} {r["megapixels"]:>6.1f} {figures}')
    if 'baseline_peak_mb' in report:
        print(f'\nat {report["at_megapixels"]:.1f} MP: ours {report["ours_peak_mb"]:.0f} MB, baseline '
              f'{report["baseline_peak_mb"]:.0f} MB ({report["baseline_is"]}): '
              f'{report["peak_ratio_baseline_over_ours"]:.1f}x less memory')
    ratios = report['time_ratio_ours_over_baseline']
    if ratios:
        print('time ours / baseline: ' + ', '.join(f'{r:.2f} at {mp} MP' for mp, r in ratios.items()))


if __name__ == '__main__':
    main()
