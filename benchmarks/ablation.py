"""The command line of a one-suite ablation script: ``python benchmarks/<name>.py [--out DIR] [--workers N]`` runs the
suite (finished runs are reused) and writes its report there."""

import argparse
import time
from pathlib import Path

from sb3_transfer.bench.report import write_report
from sb3_transfer.bench.runner import run_suite
from sb3_transfer.bench.suites import Suite


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
