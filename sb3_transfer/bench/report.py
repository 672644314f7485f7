"""Turning a suite's curves into tables (JSON, Markdown) and figures (PNG)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
import platform
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from sb3_transfer.bench.runner import cell_runs, run_path, run_warm_start
from sb3_transfer.bench.stats import aggregate_poi, iqm, probability_of_improvement, stratified_bootstrap_ci
from sb3_transfer.bench.suites import Suite
from sb3_transfer.errors import TransferError
from sb3_transfer.metrics import load_curve, transfer_metrics

#: Per-run measures, and whether higher is better.
MEASURES = {"jumpstart": True, "final": True, "auc": True, "time_to_threshold": False, "dip": False}


def run_measures(suite: Suite, out: Path) -> dict[str, dict[str, dict[str, list]]]:
    """``{pair: {method: {measure: [value per seed], "censored": [...], "curve": [values per seed]}}}`` from the runs'
    curves."""
    table: dict[str, dict[str, dict[str, list]]] = {}
    for pair in suite.pairs:
        for method in suite.methods:
            cell: dict[str, list] = {name: [] for name in (*MEASURES, "first", "censored", "curve")}
            for run in cell_runs(suite, pair, method):
                curve = load_curve(run_path(out, run))
                cell["curve"].append(curve[1].tolist())
                m = transfer_metrics(curve, threshold=pair.threshold, last_k=3).transfer
                cell["first"].append(m["first"].value)
                cell["final"].append(m["asymptote"].value)
                cell["auc"].append(m["auc"].value)
                cell["time_to_threshold"].append(m["time_to_threshold"].value)
                cell["censored"].append(float(m["time_to_threshold"].censored))
                cell["dip"].append(m["dip"].value)
            table.setdefault(pair.name, {})[method.name] = cell
        scratch_first = float(np.mean(table[pair.name][suite.methods[0].name]["first"]))
        for cell in table[pair.name].values():
            cell["jumpstart"] = [f - scratch_first for f in cell["first"]]
    return table


def _split_poi(strata: Sequence[np.ndarray], k: int) -> float:
    """The aggregate probability of improvement of the first ``k`` strata over the others."""
    return aggregate_poi(strata[:k], strata[k:])


def summarise(suite: Suite, out: Path, n_bootstrap: int = 2000) -> dict[str, Any]:
    """IQM and stratified-bootstrap intervals per pair and method, probability of improvement over scratch, and an
    aggregate over pairs on normalised scores."""
    measures = run_measures(suite, out)
    scratch = suite.methods[0].name
    pairs: dict[str, Any] = {}
    for pair in suite.pairs:
        rows = {}
        base = measures[pair.name][scratch]
        for method in suite.methods:
            cell = measures[pair.name][method.name]
            row: dict[str, Any] = {}
            for name in MEASURES:
                values = np.array(cell[name])
                low, high = stratified_bootstrap_ci([values], lambda s: iqm(s[0]), n_bootstrap)
                row[name] = {"iqm": iqm(values), "low": low, "high": high}
            row["time_to_threshold"]["censored"] = int(sum(cell["censored"]))
            base_time = iqm(base["time_to_threshold"])  # 0 when scratch's first evaluation already reached it
            row["time_to_threshold_ratio"] = iqm(cell["time_to_threshold"]) / base_time if base_time else float("nan")
            row["time_to_threshold_ratio_bound"] = (
                "" if method.name == scratch else ratio_bound(cell["censored"], base["censored"])
            )
            for name in ("final", "auc"):
                x, y = np.array(cell[name]), np.array(base[name])
                low, high = stratified_bootstrap_ci([x, y], lambda s: probability_of_improvement(s[0], s[1]), n_bootstrap)
                row[f"poi_{name}"] = {"value": probability_of_improvement(x, y), "low": low, "high": high}
            row["forgetting"] = _forgetting(cell, n_bootstrap)
            rows[method.name] = row
        pairs[pair.name] = {
            "target": pair.target_env,
            "source": pair.source_env,
            "threshold": pair.threshold,
            "budget": pair.target_steps,
            "methods": rows,
        }
        holds = {m.name: run_warm_start(cell_runs(suite, pair, m)[0]) for m in suite.methods}
        pairs[pair.name]["warm_start"] = {name: hold for name, hold in holds.items() if hold}

    def normalised(method: str, name: str) -> list[np.ndarray]:
        return [
            (np.array(measures[p.name][method][name]) - p.score_range[0]) / (p.score_range[1] - p.score_range[0])
            for p in suite.pairs
        ]

    aggregate: dict[str, Any] = {}
    for method in suite.methods:
        entry: dict[str, Any] = {}
        for name in ("final", "auc"):
            strata = normalised(method.name, name)
            low, high = stratified_bootstrap_ci(strata, lambda s: iqm(np.concatenate(s)), n_bootstrap)
            entry[f"{name}_normalised"] = {"iqm": iqm(np.concatenate(strata)), "low": low, "high": high}
            xs, ys = strata, normalised(scratch, name)
            k = len(xs)
            low, high = stratified_bootstrap_ci([*xs, *ys], partial(_split_poi, k=k), n_bootstrap)
            entry[f"poi_{name}"] = {"value": aggregate_poi(xs, ys), "low": low, "high": high}
        aggregate[method.name] = entry
    return {
        "suite": suite.name,
        "seeds": list(suite.seeds),
        "source_seeds": list(suite.source_seeds),
        "methods": {m.name: m.description for m in suite.methods},
        "untrained": [m.name for m in suite.methods if not m.train],
        "default_method": suite.default_method,
        "pairs": pairs,
        "aggregate": aggregate,
        "runs": measures,
    }


def ratio_bound(censored: list[float], scratch_censored: list[float]) -> str:
    """
    What the IQM time-to-threshold ratio is when runs are censored (a censored run's time is the budget, a lower bound
    of its true time; it counts only when it falls in the IQM's middle half): ``""`` exact, ``"<="`` an upper bound
    (scratch's IQM is censored), ``">="`` a lower bound (the method's is), ``"?"`` unknown (both are). The same
    vocabulary as :class:`~sb3_transfer.metrics.Estimate`.
    """

    def in_iqm(flags: list[float]) -> bool:
        return sum(flags) > int(0.25 * len(flags))  # the censored runs sort last; iqm() cuts floor(n / 4) from each end

    method, scratch = in_iqm(censored), in_iqm(scratch_censored)
    return "?" if method and scratch else ">=" if method else "<=" if scratch else ""


def _time_check(ratio: float, bound: str) -> str:
    """The time target (at most a third of scratch's steps), with what a censored ratio can and cannot tell."""
    if bound == "?":
        return f"unknown ({ratio:.2f}: neither reaches the threshold in most seeds)"
    if ratio <= 1 / 3 and bound in ("", "<="):
        return f"yes ({bound}{ratio:.2f})"
    if ratio > 1 / 3 and bound in ("", ">="):
        return f"**no** ({bound}{ratio:.2f})"
    return f"unknown ({bound}{ratio:.2f}: scratch's time is censored)"


def _forgetting(cell: dict[str, list], n_bootstrap: int) -> dict[str, Any]:
    """
    Whether the IQM curve over seeds stays within or above the confidence interval of its own first evaluation (the
    benchmark's no-forgetting target): the lowest point of the IQM curve after timestep 0 against that interval.
    """
    length = min(len(c) for c in cell["curve"])
    curves = np.array([c[:length] for c in cell["curve"]], dtype=float)
    first = curves[:, 0]
    low, high = stratified_bootstrap_ci([first], lambda s: iqm(s[0]), n_bootstrap)
    lowest = min((iqm(curves[:, t]) for t in range(1, length)), default=iqm(first))
    return {"first": {"iqm": iqm(first), "low": low, "high": high}, "lowest": lowest, "held": bool(lowest >= low)}


def _targets(summary: dict[str, Any]) -> list[str]:
    """The benchmark's performance targets, checked per pair for each transfer method."""
    scratch = next(iter(summary["methods"]))
    lines = ["", "## Targets", ""]
    lines += [
        "Per pair and transfer method: positive jumpstart (its CI above 0); time to threshold at most a third of "
        "scratch's (IQM; with censored runs in an IQM the ratio is only a bound: <= when scratch's time is censored, "
        ">= when the method's is, ? when both are, and a bound that cannot settle the check says unknown); no forgetting "
        "(the IQM curve never below the CI of its first evaluation: lowest point vs CI); "
        "not worse than scratch (the CI of P(final > scratch) reaches 0.5).",
        "",
    ]
    untrained = summary.get("untrained", [])
    if untrained:
        names, one = ", ".join(f"`{m}`" for m in untrained), len(untrained) == 1
        lines += [
            f"{names} never train{'s' if one else ''}: {'its policy is' if one else 'their policies are'} the same at "
            "every evaluation, so what the checks say there is evaluation noise alone (a lowest point below the first "
            "evaluation's CI there is noise, not forgetting). Where a method starts from the same policy (same first "
            "evaluation), the no-forgetting cell also gives that untrained policy's lowest point: the floor evaluation "
            "noise alone reaches on the same evaluation episodes.",
            "",
        ]
    lines += [
        "| pair | method | jumpstart > 0 | time ratio <= 1/3 | no forgetting (lowest vs CI of first) | not worse |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, pair in summary["pairs"].items():
        unchanged = [pair["methods"][m]["forgetting"] for m in untrained if m in pair["methods"]]
        for method, row in pair["methods"].items():
            if method == scratch:
                continue
            f = row["forgetting"]
            floors = [] if method in untrained else [u["lowest"] for u in unchanged if u["first"]["iqm"] == f["first"]["iqm"]]
            floor = f"; untrained {min(floors):.1f}" if floors else ""
            lines.append(
                f"| {name} | {method} | {_yes(row['jumpstart']['low'] > 0)} | "
                f"{_time_check(row['time_to_threshold_ratio'], row['time_to_threshold_ratio_bound'])} | "
                f"{_yes(f['held'])} ({f['lowest']:.1f} vs [{f['first']['low']:.1f}, {f['first']['high']:.1f}]{floor}) | "
                f"{_yes(row['poi_final']['high'] >= 0.5)} |"
            )
    return lines


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _ci(cell: dict[str, float], digits: int = 1) -> str:
    return f"{cell['iqm']:.{digits}f} [{cell['low']:.{digits}f}, {cell['high']:.{digits}f}]"


#: What the tables' statistics and marks mean, for ``report.md`` (and the terminal, which points to it).
LEGEND = (
    "**IQM**: the interquartile mean over seeds, the mean of the middle half of the runs (with n runs, floor(n/4) cut "
    "from each end: with 3 seeds, the mean of all three), robust to one odd seed (rliable, Agarwal et al. 2021). "
    "[low, high] is its 95% stratified-bootstrap confidence interval (CI).",
    "**jumpstart**: the first evaluation (timestep 0, before any update) minus scratch's (its mean over seeds). **AUC**: "
    "the mean score over training. **final**: the mean of the last 3 evaluations. **dip**: how far a run falls below "
    "its first evaluation.",
    "**Censored**: a run that never reaches the threshold within its budget has the budget as its time to threshold, "
    "a lower bound of its true time. When censored runs fall in an IQM's middle half, the ratio to scratch is only a "
    "bound: `<=0.53` at most (scratch's time is censored), `>=1.36` at least (the method's is), `?1.00` unknown "
    "(both are).",
    "**P(> scratch)**: the probability that a run of the method ends above a run of scratch (0.5: no difference).",
    "**plots/**: per pair, each method's IQM over seeds at each evaluation, with its bootstrap 95% band.",
)


def markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown tables."""
    seeds = f"Seeds: {summary['seeds']}"
    if len(summary.get("source_seeds") or []) > 1:
        seeds += (
            f" of the target runs, each from the source agents of seeds {summary['source_seeds']} (scratch: as many seeds)"
        )
    lines = [f"# Benchmark suite `{summary['suite']}`", "", f"{seeds}. IQM [95% stratified-bootstrap CI]."]
    if summary.get("default_method"):
        lines += ["", f"Default method: `{summary['default_method']}` (the reading in benchmarks/results/README.md says why)."]
    lines += ["", "Methods: " + "; ".join(f"`{k}`: {v}" for k, v in summary["methods"].items())]
    lines += ["", "How to read the tables:", "", *(f"- {item}" for item in LEGEND)]
    for name, pair in summary["pairs"].items():
        lines += ["", f"## {name}: {pair['source']} -> {pair['target']}", ""]
        if pair.get("warm_start"):
            held = ", ".join(f"`{m}` {hold} timesteps" for m, hold in pair["warm_start"].items())
            lines += [f"Warm start (`PolicyWarmStart`) on this pair: {held}.", ""]
        lines += ["| method | jumpstart | time to threshold | (ratio to scratch) | AUC | final | dip | P(> scratch), final |"]
        lines += ["| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for method, row in pair["methods"].items():
            ttt = row["time_to_threshold"]
            censored = f" ({ttt['censored']} censored)" if ttt["censored"] else ""
            poi = row["poi_final"]
            lines.append(
                f"| {method} | {_ci(row['jumpstart'])} | {_ci(row['time_to_threshold'], 0)}{censored} | "
                f"{row['time_to_threshold_ratio_bound']}{row['time_to_threshold_ratio']:.2f} | {_ci(row['auc'])} | "
                f"{_ci(row['final'])} | {_ci(row['dip'])} | "
                f"{poi['value']:.2f} [{poi['low']:.2f}, {poi['high']:.2f}] |"
            )
    lines += _targets(summary)
    lines += ["", "## Aggregate over pairs (scores normalised to each target's score range)", ""]
    lines += [
        "| method | final | AUC | P(better than scratch), final | P(better than scratch), AUC |",
        "| --- | --- | --- | --- | --- |",
    ]
    for method, entry in summary["aggregate"].items():
        pf, pa = entry["poi_final"], entry["poi_auc"]
        lines.append(
            f"| {method} | {_ci(entry['final_normalised'], 2)} | {_ci(entry['auc_normalised'], 2)} | "
            f"{pf['value']:.2f} [{pf['low']:.2f}, {pf['high']:.2f}] | {pa['value']:.2f} [{pa['low']:.2f}, {pa['high']:.2f}] |"
        )
    return "\n".join(lines) + "\n"


#: Columns of the terminal summary.
WIDTH = 100


def terminal_summary(summary: dict[str, Any], report: Path | str = "report.md") -> list[str]:
    """
    The suite's verdicts for a terminal, from its summary (:func:`summarise`): per pair, a line on scratch, then one
    line per transfer method with the benchmark's four targets in words (each one missed says why), then how to read
    them; every line fits :data:`WIDTH` columns (a long verdict goes on over an indented line).

    :param summary: The summary (``summary.json``).
    :param report: The Markdown report, for the pointer to its tables and legend.
    :return: The lines.
    """
    scratch = next(iter(summary["methods"]))
    untrained = set(summary.get("untrained", []))
    # Runs per cell (cell_runs): each target seed from each source agent; scratch has as many.
    n_sources = len(summary.get("source_seeds") or []) or 1
    n = len(summary["seeds"]) * n_sources
    over = (
        f"{n} runs per cell ({len(summary['seeds'])} target seeds x {n_sources} source agents)"
        if n_sources > 1
        else f"{n} seeds"
    )
    lines = [f"Verdicts against {scratch}, IQM over {over}:"]
    for name, pair in summary["pairs"].items():
        base = pair["methods"][scratch]
        threshold = _number(pair["threshold"]) if "threshold" in pair else "the threshold"  # summaries made before it
        ttt = base["time_to_threshold"]
        reach = (
            f"misses {threshold} in {ttt['censored']}/{n} runs"
            if ttt["censored"]
            else f"reaches {threshold} in {_number(ttt['iqm'])} steps"
        )
        header = f"{name}: {pair['source']} -> {pair['target']}; {scratch} {reach}, ends at {_number(base['final']['iqm'])}"
        lines += _wrapped(header, indent="    ")
        width = max(len(m) for m in pair["methods"])
        for method, row in pair["methods"].items():
            if method == scratch:
                continue
            verdict = _untrained_verdict(row) if method in untrained else _verdict(row, base, threshold, n)
            lines += _wrapped(f"  {method:<{width}}  {verdict}", indent=" " * (width + 4))
    legend = (
        "IQM: the mean of the middle half of the seeds. A run that never reaches the threshold is censored (its time is "
        "the budget), so a ratio is then a bound: <= (scratch censored), >= (the method), ? (both). Targets: a "
        "jumpstart above 0, a third of scratch's steps, no dip below the start, not worse than scratch."
    )
    lines += ["", *_wrapped(legend, indent=""), f"Tables, CIs and how to read them: {report}"]
    return lines


def _verdict(row: dict[str, Any], base: dict[str, Any], threshold: str, n: int) -> str:
    """A trained method's four targets, in words: each met one said briefly, each missed one with its reason."""
    jump = row["jumpstart"]
    parts = [
        f"starts {_number(jump['iqm'], sign=True)}"
        if jump["low"] > 0
        else f"no clear jumpstart ({_number(jump['iqm'], sign=True)}, CI reaches 0)"
    ]
    ratio, bound = row["time_to_threshold_ratio"], row["time_to_threshold_ratio_bound"]
    missed, base_missed = row["time_to_threshold"]["censored"], base["time_to_threshold"]["censored"]
    steps = f"reaches {threshold} in {bound}{ratio:.2f}x scratch's steps"
    if bound == "?":
        parts.append(f"time to {threshold} unknown (it misses it {missed}/{n}, scratch {base_missed}/{n})")
    elif bound == ">=":
        parts.append(f"slower to {threshold} ({bound}{ratio:.2f}x; misses it {missed}/{n})")
    elif ratio <= 1 / 3:
        parts.append(steps)
    elif bound == "<=":
        parts.append(f"{steps} (a bound: scratch misses it {base_missed}/{n})")
    else:
        parts.append(f"{steps} (not within 1/3)")
    parts.append("keeps its start" if row["forgetting"]["held"] else f"forgets (dip {_number(row['dip']['iqm'])})")
    final, base_final = _number(row["final"]["iqm"]), _number(base["final"]["iqm"])
    worse = row["poi_final"]["high"] < 0.5
    parts.append(f"ends worse ({final} vs {base_final})" if worse else f"ends at {final}")
    return "; ".join(parts)


def _untrained_verdict(row: dict[str, Any]) -> str:
    """A method that never trains: what the adapted policy scores as it is (its dips are evaluation noise)."""
    return (
        f"never trains: starts {_number(row['jumpstart']['iqm'], sign=True)}, scores {_number(row['final']['iqm'])} "
        "(its curve is evaluation noise)"
    )


def _number(x: float, sign: bool = False) -> str:
    """A score or step count as a terminal line shows it: whole above 10, one decimal below."""
    text = f"{x:+.1f}" if sign else f"{x:.1f}"
    if abs(x) >= 10:
        text = f"{x:+.0f}" if sign else f"{x:.0f}"
    return text


def _wrapped(line: str, indent: str) -> list[str]:
    """A line cut at ``; `` (else at spaces) into lines of at most :data:`WIDTH` columns, continued at ``indent``."""
    import textwrap

    if len(line) <= WIDTH:
        return [line]
    return textwrap.wrap(line, WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def write_report(suite: Suite, out: Path, command: str, seconds: float) -> dict[str, Any]:
    """Write ``summary.json``, ``report.md`` and a PNG per pair into ``out``; return the summary."""
    summary = summarise(suite, out)
    summary["provenance"] = {
        "command": command,
        "wall_clock_seconds": round(seconds, 1),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {_cpus()} cores, {platform.system()}",
        "python": platform.python_version(),
        "versions": {
            p: version(p) for p in ("sb3-transfer", "stable-baselines3", "sb3-contrib", "torch", "gymnasium", "numpy")
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(markdown(summary) + _provenance_md(summary["provenance"]))
    try:
        from sb3_transfer.plots import plot_transfer

        for pair in suite.pairs:
            curves = {m.name: [run_path(out, r) for r in cell_runs(suite, pair, m)] for m in suite.methods}
            (out / "plots").mkdir(exist_ok=True)
            plot_transfer(
                curves,
                out / "plots" / f"{pair.name}.png",
                threshold=pair.threshold,
                title=f"{pair.source_env} -> {pair.target_env} (dots: first evaluation)",
                statistic=iqm,  # the tables' statistic
                statistic_name="IQM",
            )
    except TransferError as e:  # figures are optional (matplotlib): the tables stand without them
        (out / "plots.txt").write_text(f"no figures: {e}\n")
    return summary


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _provenance_md(p: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in p["versions"].items())
    return (
        f"\nCommand: `{p['command']}` ({p['wall_clock_seconds']:.0f} s). "
        f"Machine: {p['machine']}; Python {p['python']}; {versions}.\n"
    )
