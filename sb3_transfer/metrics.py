"""Transfer metrics (Taylor & Stone, 2009), plus the dip of a fine-tuned curve. Pure numpy: no torch here.

A *curve* is a learning curve on the target task: evaluation timesteps and the mean return at each. Curves are read
from SB3 ``evaluations.npz`` files (or the folder holding one), SB3 Monitor logs (``*.monitor.csv``), ``(timesteps,
values)`` pairs or ``{"timesteps", "results"}`` dicts. A list of curves is several seeds of one method; every measure
is then the mean over seeds with a percentile-bootstrap 95% confidence interval.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sb3_transfer.errors import TransferConfigError, TransferError

Curve = tuple[np.ndarray, np.ndarray]


class InvalidCurveError(TransferError, ValueError):
    """A learning curve cannot be read or used."""


@dataclass(frozen=True)
class Estimate:
    """
    A measure over seeds: mean and bootstrap 95% confidence interval (``nan`` bounds with one seed).

    :param value: Mean over seeds.
    :param low: Lower bound of the 95% interval.
    :param high: Upper bound of the 95% interval.
    :param n: Number of seeds (for a comparison: of the transfer side).
    :param censored: How many curves never got there within their budget (a time to threshold or a recovery); their
        value is the budget, so the estimate is then only a bound.
    :param bound: With censored curves, what the value is: ``">="`` a lower bound, ``"<="`` an upper bound, ``"?"``
        neither (a ratio censored on both sides); ``""`` without censoring.
    """

    value: float
    low: float
    high: float
    n: int
    censored: int = 0
    bound: str = ""

    def __str__(self) -> str:
        text = _fmt(self.value)
        if not math.isnan(self.low):
            text += f" [{_fmt(self.low)}, {_fmt(self.high)}]"
        if self.censored:
            text = f"{self.bound} {text} ({self.censored} censored at the budget)"
        return text


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.4g}"


@dataclass
class TransferMetrics:
    """
    What transfer bought on the target task, against a baseline (learning from scratch).

    Per method: ``first`` (the first evaluation, before learning when evaluated at timestep 0), ``asymptote`` (mean of
    the last ``last_k`` evaluations), ``auc`` (area under the curve over the span both methods cover, divided by that
    span: the mean score over training), ``time_to_threshold`` (first timestep at or above the threshold, censored at
    the budget), ``dip`` (how far the curve falls below its first evaluation later on) and ``recovery`` (timesteps
    from the first evaluation until the curve is back at it, censored at the budget).
    Comparisons: ``jumpstart`` (first evaluations' difference), ``asymptotic_gain`` (asymptotes' difference),
    ``transfer_ratio`` ((auc_transfer - auc_baseline) / |auc_baseline|) and ``time_to_threshold_ratio``
    (transfer / baseline: below 1 is faster).

    :param transfer: Per-curve measures of the transfer method.
    :param baseline: Per-curve measures of the baseline (empty without one).
    :param comparison: The comparative measures (empty without a baseline).
    :param threshold: The threshold used, in the curves' units (before ``score_range`` normalisation).
    :param score_range: ``(low, high)`` used to normalise scores, if any.
    :param span: ``(start, end)`` timesteps of the common grid the areas are computed on.
    """

    transfer: dict[str, Estimate]
    baseline: dict[str, Estimate] = field(default_factory=dict)
    comparison: dict[str, Estimate] = field(default_factory=dict)
    threshold: float | None = None
    score_range: tuple[float, float] | None = None
    span: tuple[float, float] = (0.0, 0.0)

    def __getattr__(self, name: str) -> Estimate:
        # metrics.jumpstart, metrics.transfer_ratio... read as attributes too.
        comparison = self.__dict__.get("comparison", {})
        if name in comparison:
            return comparison[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (``nan`` becomes ``None``)."""

        def clean(x: Any) -> Any:
            if isinstance(x, float) and math.isnan(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list | tuple):
                return [clean(v) for v in x]
            return x

        return clean(asdict(self))

    def __str__(self) -> str:
        unit = " (normalised to score_range)" if self.score_range else ""
        lines = [f"Transfer metrics{unit}, mean [95% CI] over seeds; areas over timesteps {self.span[0]:g}..{self.span[1]:g}"]
        for name, est in self.comparison.items():
            lines.append(f"  {name:<24} {est}")
        names = list(self.transfer)
        lines.append(f"  {'':<24} {'transfer':<32} baseline")
        for name in names:
            base = self.baseline.get(name)
            lines.append(f"  {name:<24} {self.transfer[name]!s:<32} {base if base is not None else '-'}")
        if self.threshold is not None:
            lines.append(f"  threshold: {self.threshold:g}")
        return "\n".join(lines)


def load_curve(source: Any) -> Curve:
    """
    Read one learning curve.

    :param source: Path to an ``evaluations.npz`` (or a folder holding one) or a ``*.monitor.csv``; a
        ``(timesteps, values)`` pair; or a dict with ``timesteps`` and ``results`` (per-episode returns are averaged).
    :return: ``(timesteps, values)`` as float arrays, sorted by timestep.
    """
    if isinstance(source, str | os.PathLike):
        timesteps, values = _read_curve_file(Path(source))
    elif isinstance(source, dict):
        if "timesteps" not in source or "results" not in source:
            raise InvalidCurveError(f"A curve dict needs 'timesteps' and 'results', got keys {sorted(source)}.")
        timesteps, values = np.asarray(source["timesteps"]), _mean_per_eval(np.asarray(source["results"], dtype=float))
    elif isinstance(source, tuple) and len(source) == 2:
        timesteps, values = np.asarray(source[0]), _mean_per_eval(np.asarray(source[1], dtype=float))
    else:
        raise InvalidCurveError(
            f"Cannot read a learning curve from a {type(source).__name__}: give a path (evaluations.npz, *.monitor.csv), "
            "a (timesteps, values) pair or a {'timesteps', 'results'} dict."
        )
    timesteps = np.asarray(timesteps, dtype=float).reshape(-1)
    if timesteps.shape != values.shape or timesteps.size == 0:
        raise InvalidCurveError(f"A curve needs as many values as timesteps (>= 1): got {timesteps.size} and {values.size}.")
    if not np.all(np.isfinite(values)):
        raise InvalidCurveError("A curve holds non-finite values.")
    order = np.argsort(timesteps, kind="stable")
    return timesteps[order], values[order]


def _mean_per_eval(results: np.ndarray) -> np.ndarray:
    return results.mean(axis=1) if results.ndim == 2 else results.reshape(-1)


def _read_curve_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if path.is_dir() and (path / "evaluations.npz").exists():
        path = path / "evaluations.npz"
    if not path.exists():
        raise InvalidCurveError(f"Learning curve '{path}' does not exist.")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                if "timesteps" not in data or "results" not in data:
                    raise InvalidCurveError(f"'{path}' is not an SB3 evaluations.npz (keys: {', '.join(data.files)}).")
                return data["timesteps"], _mean_per_eval(data["results"].astype(float))
        except (OSError, ValueError) as e:
            if isinstance(e, InvalidCurveError):
                raise
            raise InvalidCurveError(f"'{path}' cannot be read as an .npz file: {e}") from e
    if path.name.endswith("monitor.csv"):
        return _read_monitor(path)
    raise InvalidCurveError(f"'{path}': expected an evaluations.npz, a folder holding one, or a *.monitor.csv file.")


def _read_monitor(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="") as file:
        first = file.readline()
        if not first.startswith("#"):
            raise InvalidCurveError(f"'{path}' is not an SB3 Monitor log (no '#{{...}}' header line).")
        try:
            json.loads(first[1:])
            rows = list(csv.DictReader(file))
            returns = np.array([float(row["r"]) for row in rows])
            lengths = np.array([float(row["l"]) for row in rows])
        except (KeyError, ValueError, json.JSONDecodeError) as e:
            raise InvalidCurveError(f"'{path}' is not an SB3 Monitor log ({type(e).__name__}: {e}).") from e
    # A training curve: each episode's return at the timestep it ended.
    return np.cumsum(lengths), returns


def _curves(source: Any) -> list[Curve]:
    if isinstance(source, list):
        if not source:
            raise InvalidCurveError("An empty list of curves.")
        return [load_curve(c) for c in source]
    return [load_curve(source)]


def transfer_metrics(
    transfer: Any,
    baseline: Any = None,
    threshold: float | None = None,
    score_range: tuple[float, float] | None = None,
    last_k: int = 5,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> TransferMetrics:
    """
    Measure a transfer method's learning curves against a baseline's.

    Use ``score_range=(low, high)`` (say the random and the solved score) when returns are negative (Acrobot,
    MountainCar) or on different scales: scores become ``(score - low) / (high - low)``, so areas are positive and
    the transfer ratio means something, and tasks can be compared.

    :param transfer: The transfer method's curve, or a list of curves (seeds). See :func:`load_curve`.
    :param baseline: The baseline's curve(s); ``None`` gives only the per-curve measures.
    :param threshold: Score for the time to threshold (in the curves' own units).
    :param score_range: ``(low, high)`` normalisation.
    :param last_k: Number of last evaluations averaged for the asymptote.
    :param n_bootstrap: Bootstrap resamples for the confidence intervals.
    :param seed: Seed of the bootstrap.
    :return: The metrics.
    """
    if score_range is not None:
        low, high = (float(x) for x in score_range)
        if not high > low:
            raise TransferConfigError(f"score_range={score_range!r}: high must exceed low.")
    if last_k < 1:
        raise TransferConfigError(f"last_k={last_k}: give at least 1.")
    groups = [_curves(transfer)] + ([_curves(baseline)] if baseline is not None else [])
    if score_range is not None:
        groups = [[(t, (v - low) / (high - low)) for t, v in g] for g in groups]
    level = None if threshold is None else (threshold if score_range is None else (threshold - low) / (high - low))
    span = _common_span([c for g in groups for c in g])
    per_side = [_per_curve_measures(g, level, last_k, span) for g in groups]
    rng = np.random.default_rng(seed)
    sides = [{name: _estimate(values, cens, rng, n_bootstrap) for name, (values, cens) in side.items()} for side in per_side]
    comparison: dict[str, Estimate] = {}
    if baseline is not None:
        t, b = per_side
        diff = lambda x, y: x.mean() - y.mean()  # noqa: E731
        comparison["jumpstart"] = _compare(t["first"], b["first"], diff, rng, n_bootstrap)
        comparison["asymptotic_gain"] = _compare(t["asymptote"], b["asymptote"], diff, rng, n_bootstrap)
        comparison["transfer_ratio"] = _compare(t["auc"], b["auc"], _ratio_gain, rng, n_bootstrap)
        if level is not None:
            comparison["time_to_threshold_ratio"] = _compare(
                t["time_to_threshold"], b["time_to_threshold"], lambda x, y: _safe_div(x.mean(), y.mean()), rng, n_bootstrap
            )
    return TransferMetrics(
        transfer=sides[0],
        baseline=sides[1] if baseline is not None else {},
        comparison=comparison,
        threshold=threshold,
        score_range=None if score_range is None else (float(score_range[0]), float(score_range[1])),
        span=span,
    )


def _common_span(curves: Sequence[Curve]) -> tuple[float, float]:
    start, end = max(t[0] for t, _ in curves), min(t[-1] for t, _ in curves)
    if end < start:
        raise InvalidCurveError(f"The curves share no timesteps: they start by {start:g} and one ends at {end:g}.")
    return float(start), float(end)


def _per_curve_measures(
    curves: Sequence[Curve], level: float | None, last_k: int, span: tuple[float, float]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{measure: (values per seed, censored per seed)}``."""
    rows: dict[str, list[tuple[float, bool]]] = {"first": [], "asymptote": [], "auc": [], "dip": [], "recovery": []}
    if level is not None:
        rows["time_to_threshold"] = []
    grid = np.unique(np.concatenate([t[(t >= span[0]) & (t <= span[1])] for t, _ in curves] + [np.array(span)]))
    for t, v in curves:
        rows["first"].append((v[0], False))
        rows["asymptote"].append((v[-last_k:].mean(), False))
        on_grid = np.interp(grid, t, v)
        area = float(np.sum((on_grid[1:] + on_grid[:-1]) / 2 * np.diff(grid)))
        auc = on_grid[0] if grid[-1] == grid[0] else area / (grid[-1] - grid[0])
        rows["auc"].append((auc, False))
        rows["dip"].append((max(0.0, v[0] - v[1:].min()) if v.size > 1 else 0.0, False))
        rows["recovery"].append(_recovery(t, v))
        if level is not None:
            reached = np.nonzero(v >= level)[0]
            rows["time_to_threshold"].append((t[reached[0]], False) if reached.size else (t[-1], True))
    return {name: (np.array([x for x, _ in r], dtype=float), np.array([c for _, c in r])) for name, r in rows.items()}


def _recovery(t: np.ndarray, v: np.ndarray) -> tuple[float, bool]:
    """Timesteps from the first evaluation until the curve, having dipped below it, is back at or above it."""
    below = np.nonzero(v[1:] < v[0])[0]
    if below.size == 0:
        return 0.0, False
    after = np.nonzero(v[1 + below[0] :] >= v[0])[0]
    if after.size == 0:
        return float(t[-1] - t[0]), True
    return float(t[1 + below[0] + after[0]] - t[0]), False


def _estimate(values: np.ndarray, censored: np.ndarray, rng: np.random.Generator, n_bootstrap: int) -> Estimate:
    n_censored = int(censored.sum())
    bound = ">=" if n_censored else ""
    if values.size < 2:
        return Estimate(float(values.mean()), math.nan, math.nan, int(values.size), n_censored, bound)
    means = values[rng.integers(0, values.size, (n_bootstrap, values.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(float(values.mean()), float(low), float(high), int(values.size), n_censored, bound)


def _compare(t: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], stat, rng, n_bootstrap: int) -> Estimate:
    """A comparison statistic with a bootstrap interval that resamples each side's seeds separately."""
    (tv, tc), (bv, bc) = t, b
    value = float(stat(tv, bv))
    censored = int(tc.sum() + bc.sum())
    # Only ratios of times are censored: a censored numerator makes a lower bound, a censored denominator an upper one.
    bound = "" if not censored else "?" if tc.any() and bc.any() else ">=" if tc.any() else "<="
    if tv.size < 2 and bv.size < 2:
        return Estimate(value, math.nan, math.nan, int(tv.size), censored, bound)
    samples = [stat(tv[rng.integers(0, tv.size, tv.size)], bv[rng.integers(0, bv.size, bv.size)]) for _ in range(n_bootstrap)]
    low, high = np.nanpercentile(np.array(samples, dtype=float), [2.5, 97.5])
    return Estimate(value, float(low), float(high), int(tv.size), censored, bound)


def _ratio_gain(t: np.ndarray, b: np.ndarray) -> float:
    return _safe_div(t.mean() - b.mean(), abs(b.mean()))


def _safe_div(x: float, y: float) -> float:
    return float(x / y) if y != 0 else math.nan
