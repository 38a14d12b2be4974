"""Paired comparisons of two predictors on the same test episodes, with intervals that respect the episodes'
shared characters.

Episodes that share a character are not independent, so the bootstrap resamples CHARACTERS, not episodes: a
replicate draws the n_c test characters with replacement (multiplicities m_c) and weighs each episode by the
product of the multiplicities of its two characters, m_a m_b (a two-way "pigeonhole" bootstrap). A statistic of
a replicate is the weighted mean over episodes. The percentile interval of the replicates is reported.

The exact McNemar test of "both predictors are right equally often" uses only the discordant episodes: b (A
right, B wrong) and c (A wrong, B right); p = the two-sided binomial test of b successes in b + c trials at 1/2
(`scipy.stats.binomtest`).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest


def character_index(classes: np.ndarray) -> tuple[np.ndarray, int]:
    """(n, 2) class keys -> ((n, 2) integer ids, number of distinct characters)."""
    keys, inverse = np.unique(np.asarray(classes).ravel(), return_inverse=True)
    return inverse.reshape(np.shape(classes)), len(keys)


def bootstrap_weights(classes: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n) episode weights m_a m_b of `n_boot` character resamples (module docstring)."""
    ids, n_chars = character_index(classes)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_chars, np.full(n_chars, 1.0 / n_chars), size=n_boot).astype(np.float64)
    return counts[:, ids[:, 0]] * counts[:, ids[:, 1]]


def weighted_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n_boot,) weighted means of values (n,) under each row of weights (n_boot, n); rows with zero total weight
    (no episode survives) are NaN."""
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weights @ values / np.where(total > 0, total, 1.0), np.nan)


def interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN replicates dropped)."""
    r = replicates[np.isfinite(replicates)]
    a = (1.0 - confidence) / 2.0
    return float(np.quantile(r, a)), float(np.quantile(r, 1.0 - a))


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact McNemar test on paired right/wrong outcomes: b (A right, B wrong), c (A wrong, B right), p."""
    a, b_ = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    b, c = int(np.sum(a & ~b_)), int(np.sum(~a & b_))
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {"a_right_b_wrong": b, "a_wrong_b_right": c, "p_value": p}


def paired_difference(stat_a: np.ndarray, stat_b: np.ndarray, weights: np.ndarray, confidence: float) -> dict:
    """mean(stat_a - stat_b) over episodes with its character-bootstrap interval. stat_*: (n,) per-episode
    values (1/0 correct, squared errors, Gaussian probabilities, ...); weights: from `bootstrap_weights`."""
    d = np.asarray(stat_a, np.float64) - np.asarray(stat_b, np.float64)
    lo, hi = interval(weighted_means(d, weights), confidence)
    return {"delta": float(d.mean()), "ci": [lo, hi]}


def mean_with_interval(stat: np.ndarray, weights: np.ndarray, confidence: float) -> dict:
    """mean(stat) over episodes with its character-bootstrap interval."""
    stat = np.asarray(stat, np.float64)
    lo, hi = interval(weighted_means(stat, weights), confidence)
    return {"mean": float(stat.mean()), "ci": [lo, hi]}
