"""The training loop shared by stage 1 (ADVENT) and stage 3 (IntraDA), SPEC section 7.

One iteration, in the original order:
  1. zero the gradients, set the poly learning rates;
  2. source batch -> segmentation loss on both heads -> backward (discriminators frozen);
  3. target batch -> AdvEnt: fool the discriminators with the entropy maps (label 0 =
     source) / MinEnt: entropy loss -> backward;
  4. AdvEnt: train the discriminators on the detached source (0) and target (1) maps;
  5. step the segmenter's SGD (the original's repeated backbone updates, segmenter_optimizer)
     and the discriminators' Adam;
  6. every SAVE_PRED_EVERY iterations save model_{i}.pth (+ D files, + the resume state).
Source and target go through the network in two separate passes: the BatchNorm layers
run on batch statistics, so one concatenated batch would change the result.

DA_METHOD 'SourceOnly' stops after step 2 (a baseline); 'BNOnly' also passes each target
batch through the network in train mode without a loss, so only the BatchNorm running
statistics see the target domain (a control for how much of a gain comes from that).
"""
import contextlib
import math
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advent.dataset.loader import InfiniteBatches
from advent.domain_adaptation.optim import OriginalSGD, original_occurrences
from advent.errors import UserError
from advent.model import discriminator
from advent.utils import distributed
from advent.utils.func import adjust_learning_rate, adjust_learning_rate_discriminator, bce_loss, loss_calc
from advent.utils.func import prob_2_entropy
from advent.utils.loss import entropy_loss
from advent.utils.precision import numeric_settings
from advent.utils.progress import print_line, progress_bar
from advent.utils.serialization import save_checkpoint
from advent.utils.viz_segmask import colorize_mask

SOURCE_LABEL = 0
TARGET_LABEL = 1
STATE_PATTERN = 'train_state_{}.pth'


class TrainingDiverged(UserError, RuntimeError):
    """A loss became NaN or infinite."""


def train_domain_adaptation(model, source_loader, target_loader, cfg, resume_state=None):
    """Train `model` with cfg.TRAIN.DA_METHOD; `resume_state` continues a saved run."""
    if cfg.TRAIN.DA_METHOD not in ('AdvEnt', 'MinEnt', 'SourceOnly', 'BNOnly'):
        raise NotImplementedError(f'TRAIN.DA_METHOD {cfg.TRAIN.DA_METHOD!r} is not supported')
    with numeric_settings(cfg.ALLOW_TF32, cudnn_benchmark=cfg.TRAIN.CUDNN_BENCHMARK):
        train_loop(model, source_loader, target_loader, cfg, resume_state)


def segmenter_optimizer(model, cfg):
    """The segmenter's SGD: backbone at LEARNING_RATE, heads at 10 x (model.optim_parameters).
    TRAIN.ORIGINAL_SGD (default) repeats each backbone parameter's update as often as the
    original's parameter generator listed it (see advent.domain_adaptation.optim); False
    is textbook SGD, each parameter updated once."""
    lr = cfg.TRAIN.LEARNING_RATE
    settings = dict(lr=lr, momentum=cfg.TRAIN.MOMENTUM, weight_decay=cfg.TRAIN.WEIGHT_DECAY)
    if not cfg.TRAIN.ORIGINAL_SGD:
        return torch.optim.SGD(model.optim_parameters(lr), **settings)
    return OriginalSGD(model.optim_parameters(lr), original_occurrences(model.backbone_blocks()), **settings)


def set_requires_grad(modules, flag):
    for module in modules:
        for param in module.parameters():
            param.requires_grad = flag


def upsampler(size_wh):
    return nn.Upsample(size=(size_wh[1], size_wh[0]), mode='bilinear', align_corners=True)


def entropy_map(logits):
    return prob_2_entropy(F.softmax(logits, dim=1))


def is_snapshot_iteration(i_iter, cfg):
    return i_iter % cfg.TRAIN.SAVE_PRED_EVERY == 0 and i_iter != 0


def ends_the_run(i_iter, cfg):
    """The original's stopping rule: the first snapshot at EARLY_STOP - 1 or later ends the loop
    (700 for EARLY_STOP 700 and SAVE_PRED_EVERY 100); without one the loop ends at EARLY_STOP."""
    return is_snapshot_iteration(i_iter, cfg) and i_iter >= cfg.TRAIN.EARLY_STOP - 1


def last_iteration(cfg):
    """The loop's last i_iter (ends_the_run)."""
    return next((i for i in (cfg.TRAIN.EARLY_STOP - 1, cfg.TRAIN.EARLY_STOP) if ends_the_run(i, cfg)),
                cfg.TRAIN.EARLY_STOP)


def final_snapshot_iteration(cfg):
    """The iteration of the last model_{i}.pth a complete run writes (SPEC 7); 0 when none."""
    return last_iteration(cfg) // cfg.TRAIN.SAVE_PRED_EVERY * cfg.TRAIN.SAVE_PRED_EVERY


def train_loop(model, source_loader, target_loader, cfg, resume_state=None):
    method = cfg.TRAIN.DA_METHOD
    multi_level = cfg.TRAIN.MULTI_LEVEL
    device = distributed.device_for_rank(cfg.GPU_ID)
    world_size = distributed.get_world_size()
    is_main = distributed.is_main_process()
    num_classes = cfg.NUM_CLASSES
    colours = getattr(getattr(target_loader, 'dataset', None), 'palette', None)  # a class file's, for TensorBoard

    model.train()
    model.to(device)
    if cfg.TRAIN.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)

    # Discriminators on the aux and main entropy maps (looked up on the module at call
    # time, so a caller can substitute the builder), TRAIN.D_NDF wide.
    d_aux = d_main = None
    if method == 'AdvEnt':
        d_aux = discriminator.get_fc_discriminator(num_classes=num_classes, ndf=cfg.TRAIN.D_NDF).train().to(device)
        d_main = discriminator.get_fc_discriminator(num_classes=num_classes, ndf=cfg.TRAIN.D_NDF).train().to(device)
    discriminators = [d for d in (d_aux, d_main) if d is not None]

    optimizer = segmenter_optimizer(model, cfg)
    optimizers_d = {name: torch.optim.Adam(d.parameters(), lr=cfg.TRAIN.LEARNING_RATE_D, betas=(0.9, 0.99))
                    for name, d in (('d_aux', d_aux), ('d_main', d_main)) if d is not None}

    # Under torchrun, DDP averages the gradients of every backward pass over the ranks (each
    # rank holds the same accumulated gradient after each of them, so the two forward /
    # backward pairs per iteration stay in step). The discriminators are called unwrapped
    # while frozen (no gradient to reduce). BatchNorm buffers are not broadcast from rank 0 at
    # every forward pass: each rank normalises with its own batch, as a single process does,
    # and the running statistics are averaged over the ranks after every step. A world of one
    # is not wrapped at all: it runs exactly as a plain process.
    seg, d_aux_train, d_main_train = model, d_aux, d_main
    if world_size > 1:
        ddp_kwargs = {'broadcast_buffers': False}
        if device.type == 'cuda':
            ddp_kwargs['device_ids'] = [device.index]
        seg = nn.parallel.DistributedDataParallel(model, **ddp_kwargs)
        if method == 'AdvEnt':
            d_aux_train = nn.parallel.DistributedDataParallel(d_aux, **ddp_kwargs)
            d_main_train = nn.parallel.DistributedDataParallel(d_main, **ddp_kwargs)

    amp_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(cfg.TRAIN.AMP)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.TRAIN.AMP == 'fp16')

    def forward(net, images):
        images = images.to(device, non_blocking=True)
        if cfg.TRAIN.CHANNELS_LAST:
            images = images.contiguous(memory_format=torch.channels_last)
        context = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with context:
            aux, main = net(images)
        # Losses, softmax and entropy are computed in fp32 whatever the network ran in.
        return (aux.float() if aux is not None else None), main.float()

    def backward(loss):
        scaler.scale(loss).backward()

    interp_source = upsampler(cfg.TRAIN.INPUT_SIZE_SOURCE)
    interp_target = upsampler(cfg.TRAIN.INPUT_SIZE_TARGET)

    start_iter = 0
    if resume_state is not None:
        start_iter = restore_training_state(resume_state, model, optimizer, discriminators_by_name(d_aux, d_main),
                                            optimizers_d, scaler)
    source_batches = InfiniteBatches(source_loader, resume_state and resume_state['source_data'])
    target_batches = None
    if method != 'SourceOnly':
        target_batches = InfiniteBatches(target_loader, resume_state and resume_state['target_data'])
    if resume_state is not None:
        # Creating the iterators drew from the global RNG; the saved state comes after that.
        set_rng_state(resume_state['rng'])

    writer = make_summary_writer(cfg) if is_main else None
    snapshot_dir = Path(cfg.TRAIN.SNAPSHOT_DIR)
    # counted after each step, so that the bar ends at its total although the loop ends with a break
    progress = progress_bar(None, initial=start_iter, total=last_iteration(cfg) + 1, disable=not is_main,
                            desc=f'{method} training')
    for i_iter in range(start_iter, cfg.TRAIN.EARLY_STOP + 1):
        # 1. reset gradients, poly learning rates
        optimizer.zero_grad()
        for opt in optimizers_d.values():
            opt.zero_grad()
        adjust_learning_rate(optimizer, i_iter, cfg)
        for opt in optimizers_d.values():
            adjust_learning_rate_discriminator(opt, i_iter, cfg)
        losses = {}

        # 2. supervised segmentation on the source batch; discriminators frozen
        set_requires_grad(discriminators, False)
        images_source, labels, _, _ = next(source_batches)
        pred_src_aux, pred_src_main = forward(seg, images_source)
        loss_seg_src_aux = 0
        if multi_level:
            pred_src_aux = interp_source(pred_src_aux)
            loss_seg_src_aux = loss_calc(pred_src_aux, labels, device)
            losses['loss_seg_src_aux'] = loss_seg_src_aux
        pred_src_main = interp_source(pred_src_main)
        loss_seg_src_main = loss_calc(pred_src_main, labels, device)
        losses['loss_seg_src_main'] = loss_seg_src_main
        backward(cfg.TRAIN.LAMBDA_SEG_MAIN * loss_seg_src_main + cfg.TRAIN.LAMBDA_SEG_AUX * loss_seg_src_aux)

        # 3. target batch
        images_target = pred_trg_aux = pred_trg_main = None
        if method == 'BNOnly':
            images_target = next(target_batches)[0]
            with torch.no_grad():
                forward(seg, images_target)
        elif method in ('AdvEnt', 'MinEnt'):
            images_target = next(target_batches)[0]
            pred_trg_aux, pred_trg_main = forward(seg, images_target)
            pred_trg_main = interp_target(pred_trg_main)
            if multi_level:
                pred_trg_aux = interp_target(pred_trg_aux)
            if method == 'AdvEnt':
                loss_adv_trg_aux = 0
                if multi_level:
                    loss_adv_trg_aux = bce_loss(d_aux(entropy_map(pred_trg_aux)), SOURCE_LABEL)
                    losses['loss_adv_trg_aux'] = loss_adv_trg_aux
                loss_adv_trg_main = bce_loss(d_main(entropy_map(pred_trg_main)), SOURCE_LABEL)
                losses['loss_adv_trg_main'] = loss_adv_trg_main
                backward(cfg.TRAIN.LAMBDA_ADV_MAIN * loss_adv_trg_main + cfg.TRAIN.LAMBDA_ADV_AUX * loss_adv_trg_aux)
            else:
                loss_ent_aux = 0
                if multi_level:
                    loss_ent_aux = entropy_loss(F.softmax(pred_trg_aux, dim=1))
                    losses['loss_ent_aux'] = loss_ent_aux
                loss_ent_main = entropy_loss(F.softmax(pred_trg_main, dim=1))
                losses['loss_ent_main'] = loss_ent_main
                backward(cfg.TRAIN.LAMBDA_ENT_AUX * loss_ent_aux + cfg.TRAIN.LAMBDA_ENT_MAIN * loss_ent_main)

        # 4. discriminators: detached source maps are 0, detached target maps are 1
        if method == 'AdvEnt':
            set_requires_grad(discriminators, True)
            levels = [('aux', d_aux_train, pred_src_aux, pred_trg_aux)] if multi_level else []
            levels.append(('main', d_main_train, pred_src_main, pred_trg_main))
            for name, d_net, pred_src, _ in levels:
                loss_d_src = bce_loss(d_net(entropy_map(pred_src.detach())), SOURCE_LABEL) / 2
                backward(loss_d_src)
                losses[f'loss_d_{name}_src'] = loss_d_src
            for name, d_net, _, pred_trg in levels:
                loss_d_trg = bce_loss(d_net(entropy_map(pred_trg.detach())), TARGET_LABEL) / 2
                backward(loss_d_trg)
                losses[f'loss_d_{name}_trg'] = loss_d_trg

        # 5. steps, after checking that every loss is finite
        values = check_finite(losses, i_iter, snapshot_dir)
        scaler.step(optimizer)
        if 'd_aux' in optimizers_d and multi_level:
            scaler.step(optimizers_d['d_aux'])
        if 'd_main' in optimizers_d:
            scaler.step(optimizers_d['d_main'])
        scaler.update()
        if world_size > 1:
            distributed.average_buffers(model)
        progress.set_postfix({k.replace('loss_', ''): f'{v:.3f}' for k, v in values.items()}, refresh=False)
        progress.update(1)

        # 6. snapshots
        if is_snapshot_iteration(i_iter, cfg):
            if is_main:
                save_snapshot(snapshot_dir, i_iter, model, d_aux, d_main)
                save_training_state(snapshot_dir, i_iter, model, optimizer, discriminators_by_name(d_aux, d_main),
                                    optimizers_d, scaler, source_batches, target_batches)
                print_line(f'taking snapshot ... {snapshot_dir / f"model_{i_iter}.pth"}')
            distributed.barrier()
            if ends_the_run(i_iter, cfg):
                break

        if writer is not None:
            for name, value in values.items():
                writer.add_scalar(f'data/{name}', value, i_iter)
            if i_iter % cfg.TRAIN.TENSORBOARD_VIZRATE == cfg.TRAIN.TENSORBOARD_VIZRATE - 1:
                draw_in_tensorboard(writer, images_source, i_iter, pred_src_main, num_classes, 'S', colours)
                if pred_trg_main is not None:
                    draw_in_tensorboard(writer, images_target, i_iter, pred_trg_main, num_classes, 'T', colours)
    progress.close()
    if writer is not None:
        writer.close()


def check_finite(losses, i_iter, snapshot_dir):
    """Loss values as floats; a NaN or Inf stops training before the step is applied."""
    if not losses:
        return {}
    # Under DDP the mean over the ranks: every rank logs the same values and stops together.
    stacked = distributed.all_reduce_mean(torch.stack([loss.detach().float() for loss in losses.values()]))
    values = dict(zip(losses, stacked.tolist()))
    for name, value in values.items():
        if not math.isfinite(value):
            raise TrainingDiverged(f'iteration {i_iter}: {name} is {value}; training stopped, the last good '
                                   f'snapshot in {snapshot_dir} is kept (lower the learning rate or check the data)')
    return values


def discriminators_by_name(d_aux, d_main):
    return {name: d for name, d in (('d_aux', d_aux), ('d_main', d_main)) if d is not None}


def save_snapshot(snapshot_dir, i_iter, model, d_aux, d_main):
    """Plain state dicts, loadable by the original code."""
    save_checkpoint(model.state_dict(), snapshot_dir / f'model_{i_iter}.pth')
    if d_aux is not None:
        save_checkpoint(d_aux.state_dict(), snapshot_dir / f'model_{i_iter}_D_aux.pth')
    if d_main is not None:
        save_checkpoint(d_main.state_dict(), snapshot_dir / f'model_{i_iter}_D_main.pth')


def get_rng_state():
    state = {'torch': torch.get_rng_state(), 'python': random.getstate()}
    np_state = np.random.get_state()
    state['numpy'] = [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state['torch'])
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, *rest = state['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    if 'cuda' in state and torch.cuda.is_available():
        # one state per GPU of the machine that saved it; this one may have fewer (a run
        # uses one GPU per process, the first ones)
        for index, cuda_state in enumerate(state['cuda'][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def save_training_state(snapshot_dir, i_iter, model, optimizer, discriminators, optimizers_d, scaler,
                        source_batches, target_batches):
    """Everything a resumed run needs; written after the snapshot files, so its presence
    marks a complete snapshot. Older states are removed once the new one is on disk."""
    state = {
        'iteration': i_iter,
        'model': model.state_dict(),
        'optimizer': optimizer.state_dict(),
        'discriminators': {name: d.state_dict() for name, d in discriminators.items()},
        'optimizers_d': {name: opt.state_dict() for name, opt in optimizers_d.items()},
        'scaler': scaler.state_dict(),
        'rng': get_rng_state(),
        'source_data': source_batches.state_dict(),
        'target_data': target_batches.state_dict() if target_batches is not None else None,
    }
    path = snapshot_dir / STATE_PATTERN.format(i_iter)
    save_checkpoint(state, path)
    for old in snapshot_dir.glob(STATE_PATTERN.format('*')):
        if old != path:
            old.unlink(missing_ok=True)


def restore_training_state(state, model, optimizer, discriminators, optimizers_d, scaler):
    """Load a saved training state; returns the iteration to continue from."""
    model.load_state_dict(state['model'])
    optimizer.load_state_dict(state['optimizer'])
    for name, d in discriminators.items():
        d.load_state_dict(state['discriminators'][name])
    for name, opt in optimizers_d.items():
        opt.load_state_dict(state['optimizers_d'][name])
    if scaler.is_enabled() and not state['scaler']:
        # saved by a run without fp16 (a disabled scaler saves nothing): the scaler starts afresh
        if distributed.is_main_process():
            print_line('resuming a training state saved without TRAIN.AMP fp16: the fp16 loss scale starts '
                       'from its initial value')
    else:
        scaler.load_state_dict(state['scaler'])
    return state['iteration'] + 1


def find_resume_state(snapshot_dir):
    """The newest complete training state in `snapshot_dir`, or None."""
    candidates = []
    for path in Path(snapshot_dir).glob(STATE_PATTERN.format('*')):
        stem = path.name[len('train_state_'):-len('.pth')]
        if stem.isdigit() and (Path(snapshot_dir) / f'model_{stem}.pth').is_file():
            candidates.append((int(stem), path))
    return max(candidates)[1] if candidates else None


def make_summary_writer(cfg):
    if not cfg.TRAIN.TENSORBOARD_LOGDIR:
        return None
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(log_dir=cfg.TRAIN.TENSORBOARD_LOGDIR)


def draw_in_tensorboard(writer, images, i_iter, pred_main, num_classes, type_, colours=None):
    """Input image, colour prediction (in `colours`, a class file's palette; default the
    Cityscapes one) and entropy map of the first item of a batch."""
    from torchvision.utils import make_grid
    image = images[:3].detach().cpu().flip(1)  # BGR -> RGB for display
    writer.add_image(f'Image - {type_}', make_grid(image, 3, normalize=True), i_iter)
    prob = F.softmax(pred_main[:1].detach().float(), dim=1).cpu()[0]
    mask = colorize_mask(prob.argmax(0).numpy().astype(np.uint8), colours).convert('RGB')
    writer.add_image(f'Prediction - {type_}', torch.from_numpy(np.array(mask).transpose(2, 0, 1)), i_iter)
    entropy = -(prob * torch.log2(prob + 1e-30)).sum(0, keepdim=True)
    writer.add_image(f'Entropy - {type_}', make_grid(entropy, 3, normalize=True, value_range=(0, np.log2(num_classes))),
                     i_iter)
