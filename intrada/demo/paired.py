"""Paired comparisons of two rows over seeds. The rows of a seed share its data, its stage-1
snapshot and its seed, so two rows are compared on their per-seed differences: the mean
difference, its 95 % confidence interval (Student's t with n - 1 degrees of freedom) and
the number of seeds on which the first row is higher."""
import math

import numpy as np


def _t_two_sided(theta, df):
    """P(|T| < sqrt(df) tan(theta)) for Student's t with `df` (a positive integer) degrees of
    freedom: the closed forms of Abramowitz & Stegun 26.7.3 and 26.7.4."""
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:  # sin(theta) (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ... up to cos^(df-2))
        term = total = 1.0
        for k in range(2, df, 2):
            term *= (k - 1) / k * cos2
            total += term
        return sin * total
    # 2/pi (theta + sin(theta) (cos + 2/3 cos^3 + 2*4/(3*5) cos^5 + ... up to cos^(df-2)))
    term = total = math.cos(theta) if df > 1 else 0.0
    for k in range(3, df - 1, 2):
        term *= (k - 1) / k * cos2
        total += term
    return 2 / math.pi * (theta + sin * total)


def t_quantile(probability, df):
    """The `probability` quantile (above 0.5) of Student's t with `df` degrees of freedom, by
    bisection on the exact distribution function (to the last bits of a float)."""
    if not (0.5 < probability < 1 and df >= 1 and int(df) == df):
        raise ValueError(f't_quantile: needs 0.5 < probability < 1 and an integer df >= 1, got {probability}, {df}')
    target = 2 * probability - 1
    low, high = 0.0, math.pi / 2
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if _t_two_sided(middle, int(df)) < target:
            low = middle
        else:
            high = middle
    return math.sqrt(df) * math.tan((low + high) / 2)


def paired_interval(differences, confidence=0.95):
    """(mean, low, high): the mean of the differences and its two-sided t confidence interval."""
    differences = np.asarray(differences, np.float64)
    n = len(differences)
    mean = float(differences.mean())
    half = t_quantile((1 + confidence) / 2, n - 1) * float(differences.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_comparison(row, against, first, second):
    """The comparison of row (values `first`, one a seed) against another row (`second`, the
    same seeds in the same order), as results.json keeps it."""
    differences = [round(a - b, 2) for a, b in zip(first, second)]
    mean, low, high = paired_interval(differences)
    return {'row': row, 'against': against, 'differences': differences, 'mean': round(mean, 3),
            'ci95': [round(low, 3), round(high, 3)], 'wins': sum(a > b for a, b in zip(first, second)),
            'excludes_zero': bool(low > 0 or high < 0)}
