"""torchrun / DDP plumbing. A plain `python script.py` run is a world of one process."""
import os

import torch
import torch.distributed as dist

from advent.errors import UserError


def init_from_env(use_cuda=True):
    """Join the process group torchrun describes in the environment; returns (rank, world_size).
    use_cuda=False (GPU_ID -1): the ranks run on the CPU and talk over gloo even when GPUs are present."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size == 1 or dist.is_initialized():
        return get_rank(), get_world_size()
    backend = 'nccl' if use_cuda and torch.cuda.is_available() else 'gloo'
    if backend == 'nccl':
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', '0')))
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def get_rank():
    return dist.get_rank() if dist.is_initialized() else 0


def get_world_size():
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main_process():
    return get_rank() == 0


def device_for_rank(gpu_id):
    """The CPU when gpu_id is -1 or no GPU is present; else cuda:LOCAL_RANK under torchrun,
    cuda:gpu_id otherwise."""
    if gpu_id < 0 or not torch.cuda.is_available():
        return torch.device('cpu')
    if dist.is_initialized():
        return torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
    if gpu_id >= torch.cuda.device_count():
        raise UserError(f'GPU_ID {gpu_id}: this machine has {torch.cuda.device_count()} GPU(s) '
                        f'(indices from 0; -1 runs on the CPU)')
    return torch.device('cuda', gpu_id)


def broadcast_int(value):
    """Rank 0's value on every rank (e.g. a random seed)."""
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.int64)
    if dist.get_backend() == 'nccl':
        tensor = tensor.cuda()
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def all_reduce_mean(tensor):
    """The mean of `tensor` over the ranks (the tensor itself in a world of one)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / dist.get_world_size()


def average_buffers(module):
    """Average the floating-point buffers (BatchNorm running statistics) over the ranks, in
    one all-reduce. Each rank normalises with its own batch's statistics, as a single
    process does, and the running statistics become those of the mean of the ranks' batch
    statistics, identical on every rank."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.detach().reshape(-1).float() for b in buffers])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for b in buffers:
        b.data.copy_(flat[offset:offset + b.numel()].view_as(b))
        offset += b.numel()


def barrier():
    if dist.is_initialized():
        dist.barrier()


def cleanup():
    if dist.is_initialized():
        dist.destroy_process_group()
