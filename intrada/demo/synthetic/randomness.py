"""The generator's one source of randomness."""
import math

import numpy as np


class Rand:
    """A numpy Generator with cheap scalar draws: scalars come from a buffer of uniforms
    the Generator fills 512 at a time (same sequence for the same Generator state); array
    draws go to the Generator itself."""

    def __init__(self, gen):
        self.gen = gen
        self._next = iter(()).__next__

    def random(self):
        try:
            return self._next()
        except StopIteration:
            self._next = iter(self.gen.random(512).tolist()).__next__
            return self._next()

    def uniform(self, a=0.0, b=1.0, size=None):
        if size is not None:
            return self.gen.uniform(a, b, size)
        try:
            return a + (b - a) * self._next()
        except StopIteration:
            return a + (b - a) * self.random()

    def integers(self, lo, hi=None, size=None):
        if size is not None:
            return self.gen.integers(lo, hi, size)
        if hi is None:
            lo, hi = 0, lo
        return lo + min(int(self.random() * (hi - lo)), hi - lo - 1)

    def choice(self, options, p=None):
        if p is None:
            return options[self.integers(len(options))]
        u, acc = self.random(), 0.0
        for option, q in zip(options, p):
            acc += q
            if u < acc:
                return option
        return options[-1]

    def poisson(self, lam):
        limit, k, prod = math.exp(-lam), 0, self.random()
        while prod > limit:
            k += 1
            prod *= self.random()
        return k

    def normal(self, loc=0.0, scale=1.0, size=None):
        return self.gen.normal(loc, scale, size)

    def standard_normal(self, size=None, dtype=np.float64):
        return self.gen.standard_normal(size, dtype=dtype)
