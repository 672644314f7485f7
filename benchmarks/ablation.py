"""The command line of a one-suite ablation script: ``python benchmarks/<name>.py [--out DIR] [--workers N]`` runs the
suite (finished runs are reused) and writes its report there."""

import argparse
import time
from dataclasses import replace
from pathlib import Path

from sb3_transfer.bench.report import write_report
from sb3_transfer.bench.runner import run_suite
from sb3_transfer.bench.suites import Pair, Suite

#: Pairs whose standard budget was cut from 30k to 20k target steps after the committed ablations were made.
CUT_TO_20K = ("lunar-windy", "lunar-lowgravity", "acrobot-heavy")


def at_30k(pair: Pair) -> Pair:
    """
    A pair at the 30k-step budget (evaluations every 3k steps) the committed ablations were made with, so that each
    script still asks its question at the budget its committed results answer. Their runs also predate the suites'
    fused Adam (``OPTIMIZER_KWARGS``): a script run again gives runs of the same settings otherwise, not the same bits.
    """
    return replace(pair, target_steps=30_000, eval_freq=3_000) if pair.name in CUT_TO_20K else pair


def main(suite: Suite, name: str, doc: str | None) -> None:
    """
    :param suite: The ablation's suite.
    :param name: The script's name (``benchmarks/<name>.py``), also the default output folder's.
    :param doc: The script's docstring, for ``--help``.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=f"sb3t-bench/{name}")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    started = time.time()
    run_suite(suite, out, workers=args.workers)
    write_report(suite, out, f"python benchmarks/{name}.py --out {args.out}", time.time() - started)
