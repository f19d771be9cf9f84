"""The fast paths compute what the original computed.

- Evaluation: the device-side confusion matrix (upsample, argmax and counts on the device)
  equals the original's numpy path (score map to the host, np.argmax over the channels,
  fast_hist), for one model and for a weighted ensemble; best mode with the val labels
  decoded once per run gives the same results as decoding them for every snapshot.
- Ranking: the pipelined ranking (device-side argmax, entropy and rare-class counts, PNGs
  written by a thread pool) gives the same scores, splits and pseudo-labels as a
  straightforward reimplementation of the original's loop.
- Mixed precision: two training iterations with bf16 / fp16 / channels_last give finite
  losses close to the fp32 ones.

The comparisons run on the CPU and, where a GPU is present, on CUDA (tests/devices.py).
Ours and the original's way run the same forward pass on the same device, so the
comparisons are exact on both: a CUDA argmax returns the first maximum, as np.argmax does,
and the forward passes run the same kernels.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils import data

from advent.domain_adaptation import eval_UDA
from advent.domain_adaptation.train_UDA import check_finite as CHECK_FINITE
from advent.model.deeplabv2 import get_deeplab_v2
from advent.utils.func import fast_hist, prob_2_entropy
from advent.utils.viz_segmask import colorize_mask
from devices import DEVICES, gpu_id

C = 19
RARE = (3, 4, 5, 6, 7, 9, 12, 14, 15, 16, 17)


# Tiny tensors: more intra-op threads only spin on a busy machine.
pytestmark = pytest.mark.usefixtures('one_torch_thread')


def random_model(seed, head_std=0.3, num_classes=C):
    """DeepLabv2-tiny with BatchNorm statistics of random images and large random heads,
    so that the argmax maps hold many classes."""
    torch.manual_seed(seed)
    model = get_deeplab_v2(num_classes, True, 'DeepLabv2-tiny')
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(('layer5', 'layer6')) and name.endswith('weight'):
                param.normal_(0, head_std)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = None  # a plain average over the calibration batch
        model.train()
        model(torch.randn(4, 3, 24, 40) * 60)
    return model.eval()


class RandomItems(data.Dataset):
    """(image, label, shape, name) items like the datasets': float32 CHW images, int64 labels
    with ignored pixels (255) and values outside the classes."""

    def __init__(self, n, image_hw, label_hw, seed):
        rng = np.random.default_rng(seed)
        self.images = [rng.normal(0, 60, size=(3, *image_hw)).astype(np.float32) for _ in range(n)]
        self.labels = []
        for _ in range(n):
            label = rng.integers(0, C, size=label_hw)
            label[rng.random(label_hw) < 0.1] = 255
            label[rng.random(label_hw) < 0.02] = 25
            self.labels.append(label.astype(np.int64))
        self.names = [f'city{k % 2}/city{k % 2}_{k:06d}_000019_leftImg8bit.png' for k in range(n)]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = self.images[index]
        return image, self.labels[index], np.array(image.shape), self.names[index]


# ------------------------------------------------------------------ evaluation

def original_hist(models, weights, dataset, interp, device='cpu'):
    """ADVENT's eval_single loop: score maps to the host, numpy argmax, fast_hist."""
    hist = np.zeros((C, C))
    for image, label, _, _ in data.DataLoader(dataset, batch_size=1):
        with torch.no_grad():
            output = None
            for model, model_weight in zip(models, weights):
                pred_main = model(image.to(device))[1]
                output_ = (interp or nn.Upsample(size=tuple(label.shape[1:]), mode='bilinear',
                                                 align_corners=True))(pred_main).cpu().data[0].numpy()
                output = model_weight * output_ if output is None else output + model_weight * output_
            output = np.argmax(output.transpose(1, 2, 0), axis=2)
        hist += fast_hist(label.numpy()[0].flatten(), output.flatten(), C)
    return hist


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('weights, fixed_size, batch_size', [
    ([1.0], True, 1),
    ([0.7, 0.3], True, 1),      # a weighted ensemble, as advent+minent_pretrained.yml
    ([0.5, 0.5], False, 2),     # output at the label size, batches of two
])
def test_device_confusion_matrix_equals_numpy_path(weights, fixed_size, batch_size, device):
    models = [random_model(seed).to(device) for seed in range(len(weights))]
    dataset = RandomItems(3, (24, 40), (53, 91), seed=len(weights))
    interp = nn.Upsample(size=(53, 91), mode='bilinear', align_corners=True) if fixed_size else None
    loader = data.DataLoader(dataset, batch_size=batch_size)
    ours = eval_UDA.confusion_matrix(models, weights, loader, C, torch.device(device), interp, fixed_size)
    reference = original_hist(models, weights, dataset, interp, device)
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours, reference)
    assert len(np.flatnonzero(ours.sum(0))) >= 5  # the predictions hold many classes


def test_argmax_channels_breaks_ties_like_numpy():
    """Many ties (small integer scores): the first maximum wins, as in np.argmax."""
    scores = torch.randint(0, 3, (2, C, 31, 47), generator=torch.Generator().manual_seed(0)).float()
    expected = np.argmax(scores.numpy().transpose(0, 2, 3, 1), axis=3)
    np.testing.assert_array_equal(eval_UDA.argmax_channels(scores).numpy(), expected)
    np.testing.assert_array_equal(eval_UDA.argmax_channels(scores.contiguous(memory_format=torch.channels_last))
                                  .numpy(), expected)


def test_scatter_and_bincount_counts_agree():
    """The sync-free scatter-add used on CUDA counts as the numpy bincount used on the CPU."""
    gen = torch.Generator().manual_seed(0)
    label = torch.randint(0, C, (2, 30, 50), generator=gen)
    label[:, :5] = 255
    label[:, 5:7] = -1
    prediction = torch.randint(0, C, (2, 30, 50), generator=gen)
    counts = []
    for scatter in (False, True):
        hist = torch.zeros(C * C + 1, dtype=torch.int64)
        eval_UDA.accumulate_hist(hist, label, prediction, C, scatter=scatter)
        counts.append(hist)
    assert torch.equal(counts[0][:-1], counts[1][:-1])
    np.testing.assert_array_equal(counts[0][:-1].view(C, C).numpy(),
                                  fast_hist(label.numpy().ravel(), prediction.numpy().ravel(), C))


def test_kept_labels_give_the_same_counts():
    model = random_model(3)
    dataset = RandomItems(3, (24, 40), (48, 80), seed=5)
    interp = nn.Upsample(size=(48, 80), mode='bilinear', align_corners=True)
    loader = data.DataLoader(dataset, batch_size=1)
    kept = []
    first = eval_UDA.confusion_matrix([model], [1.0], loader, C, torch.device('cpu'), interp, True, keep_labels=kept)
    assert [k.dtype for k in kept] == [torch.uint8] * 3
    no_labels = data.DataLoader([(image, 0, shape, name) for image, _, shape, name in dataset], batch_size=1)
    again = eval_UDA.confusion_matrix([model], [1.0], no_labels, C, torch.device('cpu'), interp, True, labels=kept)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, original_hist([model], [1.0], dataset, interp))


def _cityscapes_val_tree(root, n=3, size=(40, 24)):
    rng = np.random.default_rng(0)
    names = []
    for k in range(n):
        name = f'frankfurt/frankfurt_{k:06d}_000294_leftImg8bit.png'
        image = root / 'leftImg8bit' / 'val' / name
        label = root / 'gtFine' / 'val' / name.replace('leftImg8bit', 'gtFine_labelIds')
        for path in (image, label):
            path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, size=(size[1], size[0], 3)).astype(np.uint8)).save(image)
        Image.fromarray(rng.integers(0, 34, size=(size[1], size[0])).astype(np.uint8)).save(label)
        names.append(name)
    (root / 'val.txt').write_text(''.join(n + '\n' for n in names))
    return root / 'val.txt'


@pytest.mark.parametrize('cache', [True, False])
def test_best_mode_decodes_labels_once(tmp_path, monkeypatch, cache, capsys):
    from advent.dataset.cityscapes import CityscapesDataSet
    from advent.domain_adaptation.config import default_config
    list_path = _cityscapes_val_tree(tmp_path / 'cs')
    snapshots = tmp_path / 'snapshots'
    snapshots.mkdir()
    for i_iter in (1, 2, 3):
        torch.save(random_model(10 + i_iter).state_dict(), snapshots / f'model_{i_iter}.pth')
    cfg = default_config()
    cfg.TEST.update(MODE='best', MODEL=['DeepLabv2-tiny'], SNAPSHOT_DIR=[str(snapshots)], SNAPSHOT_STEP=1,
                    SNAPSHOT_MAXITER=3, WAIT_MODEL=False, OUTPUT_SIZE_TARGET=[80, 48], CACHE_LABELS=cache)
    dataset = CityscapesDataSet(tmp_path / 'cs', list_path, set='val', crop_size=(40, 24),
                                mean=cfg.TEST.IMG_MEAN, labels_size=(80, 48))
    decoded = []
    get_train_ids = CityscapesDataSet.get_train_ids
    monkeypatch.setattr(CityscapesDataSet, 'get_train_ids', lambda self, f: decoded.append(f) or get_train_ids(self, f))
    loader = data.DataLoader(dataset, batch_size=1, shuffle=False)
    results = eval_UDA.evaluate_domain_adaptation([get_deeplab_v2(C, True, 'DeepLabv2-tiny')], loader, cfg)
    assert len(decoded) == (3 if cache else 9)
    # the same per-class IoU as the original's path, snapshot by snapshot
    interp = nn.Upsample(size=(48, 80), mode='bilinear', align_corners=True)
    for i_iter in (1, 2, 3):
        expected = eval_UDA.per_class_iu(original_hist([random_model(10 + i_iter)], [1.0], dataset, interp))
        np.testing.assert_array_equal(results[i_iter], expected)
    assert 'Best iteration:' in capsys.readouterr().out


# ------------------------------------------------------------------ ranking

def original_ranking(model, dataset, input_size, normalize, lambda1, device='cpu'):
    """IntraDA's entropy.py loop: find_rare_class and colorize_save on host numpy copies."""
    interp = nn.Upsample(size=(input_size[1], input_size[0]), mode='bilinear', align_corners=True)
    entropy_list, masks = [], {}
    for image, _, _, name in data.DataLoader(dataset, batch_size=1):
        with torch.no_grad():
            pred_trg_main = interp(model(image.to(device))[1])
            if normalize:
                argmax = np.argmax(pred_trg_main.cpu().data[0].numpy().transpose(1, 2, 0), axis=2)
                normalizor = (11 - len([c for c in RARE if (argmax == c).any()])) / 11.0 + 0.5
            else:
                normalizor = 1
            pred_trg_entropy = prob_2_entropy(F.softmax(pred_trg_main, dim=1))
            entropy_list.append((name[0], pred_trg_entropy.mean().item() * normalizor))
            output = pred_trg_main.cpu().data[0].numpy().transpose(1, 2, 0)
            masks[name[0]] = np.asarray(np.argmax(output, axis=2), dtype=np.uint8)
    entropy_list = sorted(entropy_list, key=lambda img: img[1])
    ranked = [item[0] for item in entropy_list]
    cut = int(len(ranked) * lambda1)
    return ranked[:cut], ranked[cut:], dict(entropy_list), masks


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('normalize', [True, False])
def test_ranking_equals_original_loop(tmp_path, normalize, device):
    from entropy_rank.ranking import pseudo_label_names, rank_target_images
    model = random_model(7, head_std=0.05).to(device)
    dataset = RandomItems(8, (24, 40), (24, 40), seed=11)
    input_size = (40, 24)
    easy, hard, records = rank_target_images(model, dataset, input_size, torch.device(device), tmp_path,
                                             normalize, 0.67)
    ref_easy, ref_hard, ref_scores, ref_masks = original_ranking(model, dataset, input_size, normalize, 0.67,
                                                                 device)
    assert (easy, hard) == (ref_easy, ref_hard)
    assert len(easy) == 5
    assert {r['name']: r['score'] for r in records} == ref_scores
    assert (tmp_path / 'easy_split.txt').read_text().split() == easy
    assert (tmp_path / 'hard_split.txt').read_text().split() == hard
    if normalize:  # the rare-class counts differ between images, so the normalisation matters
        assert len({r['normalizer'] for r in records}) > 1
    for name, mask in ref_masks.items():
        mask_name, color_name = pseudo_label_names(name)
        np.testing.assert_array_equal(np.array(Image.open(tmp_path / 'color_masks' / mask_name)), mask)
        color = Image.open(tmp_path / 'color_masks' / color_name)
        assert color.mode == 'P' and color.getpalette() == colorize_mask(mask).getpalette()
        np.testing.assert_array_equal(np.array(color), mask)
    assert len(np.unique(np.concatenate([m.ravel() for m in ref_masks.values()]))) >= 5


def test_normalizer_counts_rare_classes():
    from entropy_rank.ranking import normalizer, rare_class_count
    prediction = torch.zeros(5, 7, dtype=torch.uint8)
    assert normalizer(prediction) == 1.5
    prediction[0, :3] = torch.tensor([3, 17, 18])
    assert int(rare_class_count(prediction)) == 2
    assert normalizer(prediction) == (11 - 2) / 11.0 + 0.5


def test_png_writer_failure_stops_the_ranking(tmp_path, monkeypatch):
    from entropy_rank import ranking
    calls = []

    def failing_save(image, path):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, 'No space left on device', str(path))

    monkeypatch.setattr(ranking, 'save_image', failing_save)
    with pytest.raises(OSError, match='No space left'):
        ranking.rank_target_images(random_model(1), RandomItems(4, (24, 40), (24, 40), seed=1), (40, 24),
                                   torch.device('cpu'), tmp_path / 'out', False, 0.5)
    assert not (tmp_path / 'out' / 'easy_split.txt').exists()


def test_image_writer_waits_for_every_save(tmp_path):
    import threading
    import time
    from entropy_rank.ranking import ImageWriter
    done, lock = [], threading.Lock()

    def slow(k):
        time.sleep(0.01)
        with lock:
            done.append(k)

    with ImageWriter(workers=3, max_pending=4) as writer:
        for k in range(20):
            writer.submit(slow, k)
    assert sorted(done) == list(range(20))


# ------------------------------------------------------------------ mixed precision

class TrainItems(data.Dataset):
    def __init__(self, n, seed, size=(64, 32)):
        rng = np.random.default_rng(seed)
        self.items = [(rng.normal(0, 50, size=(3, size[1], size[0])).astype(np.float32),
                       rng.integers(0, C, size=(size[1], size[0])).astype(np.int64)) for _ in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        image, label = self.items[index]
        return image, label, np.array(image.shape), f'{index}.png'


def _train_two_iterations(tmp_path, monkeypatch, amp, channels_last, device):
    from advent.dataset.loader import build_train_loader
    from advent.domain_adaptation import train_UDA
    from advent.domain_adaptation.config import default_config
    cfg = default_config()
    cfg.GPU_ID = gpu_id(device)
    cfg.TRAIN.update(MODEL='DeepLabv2-tiny', INPUT_SIZE_SOURCE=[64, 32], INPUT_SIZE_TARGET=[64, 32], MAX_ITERS=10,
                     EARLY_STOP=1, SAVE_PRED_EVERY=100, SNAPSHOT_DIR=str(tmp_path / f'snap_{amp}'), AMP=amp,
                     CHANNELS_LAST=channels_last, CUDNN_BENCHMARK=channels_last)
    losses = []
    monkeypatch.setattr(train_UDA, 'check_finite', lambda *a: losses.append(CHECK_FINITE(*a)) or losses[-1])
    torch.manual_seed(0)
    model = get_deeplab_v2(C, True, 'DeepLabv2-tiny')
    before = model.layer6.conv2d_list[0].weight.detach().clone()
    train_UDA.train_domain_adaptation(model, build_train_loader(TrainItems(2, 1), 1, 0),
                                      build_train_loader(TrainItems(2, 2), 1, 0), cfg)
    after = model.layer6.conv2d_list[0].weight
    assert after.device.type == device
    assert not torch.equal(before, after.detach().cpu())
    return losses


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('amp, channels_last, tolerance', [
    ('bf16', True, 5e-2),
    ('fp16', True, 5e-2),
    ('', True, 1e-4),   # fp32 in another memory layout: the same sums in another order
])
def test_mixed_precision_channels_last_trains(tmp_path, monkeypatch, amp, channels_last, tolerance, device):
    mixed = _train_two_iterations(tmp_path, monkeypatch, amp, channels_last, device)
    reference = _train_two_iterations(tmp_path, monkeypatch, '', False, device)[-2:]
    assert len(mixed) == 2 and len(mixed[0]) == 8  # 2 segmentation, 2 adversarial, 4 discriminator losses
    for values in mixed:
        assert all(np.isfinite(v) for v in values.values())
    # the first iteration starts from the same weights and data: the losses agree closely
    for name, value in mixed[0].items():
        assert value == pytest.approx(reference[0][name], rel=tolerance), name
