"""Data loaders for training: shuffled like the original, resumable, shardable.

`ResumableSampler` draws its permutation exactly as torch's RandomSampler does (a
seed from the global torch RNG when iteration starts, then randperm), so a seeded
run sees the same images in the same order as the original. It also remembers the
seed and how many samples it has handed out, so a resumed run continues with the
same order, and it can give each of several processes (DDP ranks) its own shard.

`worker_count` caps every loader's worker count at the CPU cores the process may use.
"""
import os

import torch
from torch.utils import data


class ResumableSampler(data.Sampler):
    def __init__(self, num_items, rank=0, world_size=1):
        self.num_items = num_items
        self.rank = rank
        self.world_size = world_size
        self.seed = None       # seed of the current pass; None = draw one when iteration starts
        self.position = 0      # samples of the current pass already handed out to this rank
        self._resume_seed = None
        self._resume_position = 0

    def __len__(self):
        return len(range(self.rank, self.num_items, self.world_size))

    def __iter__(self):
        if self._resume_seed is not None:
            self.seed, self.position = self._resume_seed, self._resume_position
            self._resume_seed = None
        else:
            self.seed = int(torch.empty((), dtype=torch.int64).random_().item())
            self.position = 0
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        order = torch.randperm(self.num_items, generator=generator).tolist()
        for index in order[self.rank::self.world_size][self.position:]:
            self.position += 1
            yield index

    def state_dict(self):
        return {'seed': self.seed, 'position': self.position}

    def load_state_dict(self, state):
        """The next pass continues the recorded one after `position` samples."""
        self._resume_seed = state['seed']
        self._resume_position = state['position']


_capped = set()   # (requested, cores) already announced: one note per process


def usable_cores():
    """The CPU cores this process may run on (its affinity, as PyTorch's loader counts them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)


def worker_count(requested):
    """`requested` loader workers, at most the usable cores: more only wait on each other (and
    PyTorch warns). Lowering it prints one line, once per process."""
    cores = usable_cores()
    if requested <= cores:
        return requested
    if (requested, cores) not in _capped:
        _capped.add((requested, cores))
        print(f'note: {requested} data-loading workers asked for (NUM_WORKERS), {cores} used: the CPU cores '
              f'this process may use', flush=True)
    return cores


def build_train_loader(dataset, batch_size, num_workers, seed=None, rank=0, world_size=1):
    """A shuffling loader over `dataset` (the original used shuffle=True, pin_memory=True)."""
    def seed_worker(worker_id):
        import numpy as np
        np.random.seed(seed + worker_id)

    sampler = ResumableSampler(len(dataset), rank, world_size)
    return data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=worker_count(num_workers),
                           pin_memory=torch.cuda.is_available(),
                           worker_init_fn=seed_worker if seed is not None else None,
                           persistent_workers=False)


class InfiniteBatches:
    """Endless batches from a loader: a new shuffled pass starts when one is used up.

    The iterator is created at once, as the original's `enumerate(loader)` was, so the
    global RNG is drawn in the same order. `state` (from `state_dict`) resumes a pass.
    Positions count consumed samples, not those the workers have prefetched."""

    def __init__(self, loader, state=None):
        self.loader = loader
        self.sampler = loader.sampler if isinstance(loader.sampler, ResumableSampler) else None
        self.consumed = 0
        if state is not None and self.sampler is not None:
            self.sampler.load_state_dict(state)
            self.consumed = state['position']
        self._iterator = iter(loader)

    def __next__(self):
        try:
            batch = next(self._iterator)
        except StopIteration:
            self._iterator = iter(self.loader)
            self.consumed = 0
            batch = next(self._iterator)
        self.consumed += len(batch[0])
        return batch

    def state_dict(self):
        if self.sampler is None:
            return None
        return {'seed': self.sampler.seed, 'position': self.consumed}
