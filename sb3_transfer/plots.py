"""Figures of transfer runs (needs matplotlib: ``pip install sb3-transfer[plots]``)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from sb3_transfer.errors import TransferError
from sb3_transfer.metrics import load_curve


def plot_transfer(
    curves: dict[str, Any],
    path: str | os.PathLike,
    threshold: float | None = None,
    title: str | None = None,
    n_bootstrap: int = 1000,
) -> str:
    """
    Plot learning curves: for each label the mean over seeds with a bootstrap 95% confidence band, the threshold as a
    dashed line and each method's jumpstart (its first evaluation) marked.

    :param curves: ``{label: curve or list of curves (seeds)}``, curves as :func:`~sb3_transfer.metrics.load_curve`
        reads them.
    :param path: Where to write the PNG.
    :param threshold: Score line to draw.
    :param title: Figure title.
    :param n_bootstrap: Bootstrap resamples for the bands.
    :return: The path written.
    """
    try:
        # The figure is drawn without pyplot, so the user's matplotlib backend and open figures are left alone.
        from matplotlib.figure import Figure
    except ImportError as e:
        raise TransferError("Plots need matplotlib: pip install 'sb3-transfer[plots]' (or pip install matplotlib).") from e
    if not curves:
        raise TransferError("plot_transfer needs at least one labelled curve.")
    rng = np.random.default_rng(0)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for label, source in curves.items():
        seeds = [load_curve(c) for c in (source if isinstance(source, list) else [source])]
        start, end = max(t[0] for t, _ in seeds), min(t[-1] for t, _ in seeds)
        grid = np.unique(np.concatenate([t[(t >= start) & (t <= end)] for t, _ in seeds]))
        values = np.stack([np.interp(grid, t, v) for t, v in seeds])
        mean = values.mean(axis=0)
        (line,) = ax.plot(grid, mean, label=f"{label} ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
        if len(seeds) > 1:
            boot = values[rng.integers(0, len(seeds), (n_bootstrap, len(seeds)))].mean(axis=1)
            low, high = np.percentile(boot, [2.5, 97.5], axis=0)
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.plot(grid[0], mean[0], marker="o", color=line.get_color())
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("timesteps")
    ax.set_ylabel("mean evaluation return")
    ax.set_title(title or "Learning curves on the target task (dots: first evaluation, i.e. jumpstart)")
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return str(path)
