"""Can -100 be reached on the heavy acrobot at all? The standard suite's time-to-threshold target on Acrobot -> heavy.

In the standard suite (30k target steps) scratch never reaches the threshold (-100, Acrobot-v1's own) on
``AcrobotHeavy-v1`` and ``finetune`` does in 2 of 5 seeds, with 5 evaluation episodes. This runs both for 100k steps
(rl-zoo3's budget for Acrobot) with 20 evaluation episodes every 10k steps, 2 seeds, to see where each levels off.

    python benchmarks/acrobot_heavy_reach.py --out benchmarks/results/acrobot_heavy_reach

writes ``report.md``, ``summary.json`` and ``plots/`` (finished runs are reused; the committed runs came from a pilot of
exactly this configuration: benchmarks/results/README.md).
"""

import argparse
import time
from dataclasses import replace
from pathlib import Path

from sb3_transfer.bench.report import write_report
from sb3_transfer.bench.runner import run_suite
from sb3_transfer.bench.suites import METHODS, PAIRS, Suite

PAIR = replace(PAIRS["acrobot-heavy"], target_steps=100_000, eval_freq=10_000, n_eval_episodes=20)
SUITE = Suite("acrobot-heavy-reach", (PAIR,), (METHODS["scratch"], METHODS["finetune"]), (0, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="sb3t-bench/acrobot_heavy_reach")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    started = time.time()
    run_suite(SUITE, out, workers=args.workers)
    write_report(SUITE, out, f"python benchmarks/acrobot_heavy_reach.py --out {args.out}", time.time() - started)


if __name__ == "__main__":
    main()
