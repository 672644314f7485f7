"""Figures of transfer runs (needs matplotlib: ``pip install sb3-transfer[plots]``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from sb3_transfer.errors import TransferError
from sb3_transfer.metrics import load_curve

#: A statistic over seeds: maps an array of values (one per seed) to a number.
Statistic = Callable[[np.ndarray], float]


def plot_transfer(
    curves: dict[str, Any],
    path: str | os.PathLike,
    threshold: float | None = None,
    title: str | None = None,
    n_bootstrap: int = 1000,
    statistic: Statistic = np.mean,
    statistic_name: str = "mean",
) -> str:
    """
    Plot learning curves to a PNG: for each label a statistic over seeds (the mean unless told otherwise) with its
    bootstrap 95% confidence band, the threshold as a dashed line and each method's jumpstart (its first evaluation)
    marked. The y-axis names the statistic and the legend what the bands are. See :func:`transfer_figure`.

    :param curves: ``{label: curve or list of curves (seeds)}``, curves as :func:`~sb3_transfer.metrics.load_curve`
        reads them.
    :param path: Where to write the PNG.
    :param threshold: Score line to draw.
    :param title: Figure title.
    :param n_bootstrap: Bootstrap resamples for the bands.
    :param statistic: The statistic over seeds drawn at each timestep, e.g. an interquartile mean to match tables
        that report it.
    :param statistic_name: Its name, for the axis and the legend (e.g. ``"IQM"``).
    :return: The path written.
    """
    figure = transfer_figure(curves, threshold, title, n_bootstrap, statistic, statistic_name)
    figure.savefig(path, dpi=120)
    return str(path)


def transfer_figure(
    curves: dict[str, Any],
    threshold: float | None = None,
    title: str | None = None,
    n_bootstrap: int = 1000,
    statistic: Statistic = np.mean,
    statistic_name: str = "mean",
) -> Any:
    """
    The figure :func:`plot_transfer` writes, as a matplotlib ``Figure`` (drawn without pyplot, so the user's backend
    and open figures are left alone), to change or save as you like. The same parameters, less ``path``.

    The bands resample whole seeds (each seed's curve stays whole) and take the 2.5 and 97.5 percentiles of the
    statistic at each timestep; a label with one seed gets no band.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as e:
        raise TransferError("Plots need matplotlib: pip install 'sb3-transfer[plots]' (or pip install matplotlib).") from e
    if not curves:
        raise TransferError("plot_transfer needs at least one labelled curve.")
    rng = np.random.default_rng(0)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    banded = False
    for label, source in curves.items():
        seeds = [load_curve(c) for c in (source if isinstance(source, list) else [source])]
        start, end = max(t[0] for t, _ in seeds), min(t[-1] for t, _ in seeds)
        grid = np.unique(np.concatenate([t[(t >= start) & (t <= end)] for t, _ in seeds]))
        values = np.stack([np.interp(grid, t, v) for t, v in seeds])  # (seeds, timesteps)
        centre = np.apply_along_axis(statistic, 0, values)
        (line,) = ax.plot(grid, centre, label=f"{label} ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
        if len(seeds) > 1:
            resampled = values[rng.integers(0, len(seeds), (n_bootstrap, len(seeds)))]  # (resamples, seeds, timesteps)
            boot = np.apply_along_axis(statistic, 1, resampled)
            low, high = np.percentile(boot, [2.5, 97.5], axis=0)
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            banded = True
        ax.plot(grid[0], centre[0], marker="o", color=line.get_color())
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    handles, _ = ax.get_legend_handles_labels()
    if banded:
        handles.append(Patch(color="grey", alpha=0.2, label=f"bands: bootstrap 95% CI of the {statistic_name} over seeds"))
    ax.set_xlabel("timesteps")
    ax.set_ylabel(f"evaluation return, {statistic_name} over seeds")
    ax.set_title(title or "Learning curves on the target task (dots: first evaluation, i.e. jumpstart)")
    ax.legend(handles=handles, loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
