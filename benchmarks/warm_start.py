"""How long the pretrained policy should fill the replay buffer before fine-tuning starts: the evidence behind the
5000-step ``PolicyWarmStart`` of the benchmarks' ``finetune`` method.

The five near pairs of the ``standard`` suite at its budgets and seeds (5); ``finetune`` as the suite defines it
(everything carried over, lr x0.1, epsilon from its final value) with a warm start of 0, 2000 and 5000 steps, and
scratch. The 5000-step and scratch runs are configured exactly as the standard suite's ``finetune`` and ``scratch``
runs, and the 0-step runs as its ``finetune`` before the warm start was added (so those can be copied over instead of
trained again: runs are deterministic given seed and config).

    python benchmarks/warm_start.py --out benchmarks/results/warm_start

writes ``report.md``, ``summary.json`` and ``plots/`` (finished runs are reused).
"""

import argparse
import time
from dataclasses import replace
from pathlib import Path

from sb3_transfer.bench.report import write_report
from sb3_transfer.bench.runner import run_suite
from sb3_transfer.bench.suites import METHODS, PAIRS, Suite

NEAR = ("cartpole-longpole", "cartpole-weakmotor", "lunar-windy", "lunar-lowgravity", "acrobot-heavy")
HOLDS = (0, 2_000, 5_000)
SUITE = Suite(
    "warm-start",
    tuple(PAIRS[name] for name in NEAR),
    (
        METHODS["scratch"],
        *(
            replace(
                METHODS["finetune"],
                name=f"ws{hold // 1000}k",
                warm_start=hold,
                description=f"finetune, {hold}-step warm start",
            )
            for hold in HOLDS
        ),
    ),
    (0, 1, 2, 3, 4),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="sb3t-bench/warm_start")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.time()
    run_suite(SUITE, Path(args.out), workers=args.workers)
    write_report(SUITE, Path(args.out), f"python benchmarks/warm_start.py --out {args.out}", time.time() - started)


if __name__ == "__main__":
    main()
