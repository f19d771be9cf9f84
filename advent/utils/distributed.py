"""torchrun / DDP plumbing. A plain `python script.py` run is a world of one process."""
import os

import torch
import torch.distributed as dist


def init_from_env():
    """Join the process group torchrun describes in the environment; returns (rank, world_size)."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size == 1 or dist.is_initialized():
        return get_rank(), get_world_size()
    backend = 'nccl' if torch.cuda.is_available() else 'gloo'
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
    """cuda:LOCAL_RANK under torchrun, else cuda:gpu_id, else the CPU."""
    if not torch.cuda.is_available():
        return torch.device('cpu')
    if dist.is_initialized():
        return torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
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
