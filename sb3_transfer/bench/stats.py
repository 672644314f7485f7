"""Statistics as rliable recommends (Agarwal et al., 2021): interquartile mean, stratified bootstrap confidence
intervals, probability of improvement. numpy only (rliable 1.2.0 itself imports only with pandas < 3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """
    Interquartile mean: the mean of the middle 50% of the values (``scipy.stats.trim_mean(x, 0.25)``: with n values,
    ``floor(n / 4)`` are cut from each end).

    :param values: Scores.
    :return: The IQM.
    """
    x = np.sort(np.asarray(values, dtype=float).reshape(-1))
    if x.size == 0:
        raise ValueError("iqm of no values")
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def stratified_bootstrap_ci(
    strata: Sequence[np.ndarray],
    statistic: Callable[[list[np.ndarray]], float],
    n_bootstrap: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """
    Percentile bootstrap interval of a statistic, resampling runs with replacement within each stratum (each task).

    :param strata: One array of runs (seeds) per stratum; for a comparison, arrays of the two methods alternate.
    :param statistic: Maps the resampled strata to a number.
    :param n_bootstrap: Resamples.
    :param seed: Seed.
    :param confidence: Interval coverage.
    :return: ``(low, high)``.
    """
    rng = np.random.default_rng(seed)
    stats = np.array(
        [statistic([s[rng.integers(0, len(s), len(s))] for s in strata]) for _ in range(n_bootstrap)], dtype=float
    )
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """
    P(X > Y) + P(X = Y) / 2 over all pairs of runs of two methods on one task (the Mann-Whitney U statistic over
    ``n * m``).

    :param x: Scores of method X.
    :param y: Scores of method Y.
    :return: The probability.
    """
    x, y = np.asarray(x, dtype=float)[:, None], np.asarray(y, dtype=float)[None, :]
    return float(((x > y) + 0.5 * (x == y)).mean())


def aggregate_poi(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> float:
    """Probability of improvement averaged over tasks."""
    return float(np.mean([probability_of_improvement(x, y) for x, y in zip(xs, ys, strict=True)]))
