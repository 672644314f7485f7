"""How long the pretrained policy should fill the replay buffer before fine-tuning starts: the evidence behind the
``PolicyWarmStart`` of the benchmarks' ``finetune`` method (5000 steps at 128 transitions drawn per step, scaled to
each pair's sampling).

The five near pairs of the ``standard`` suite at the budgets it had then (30k target steps: ``ablation.at_30k``) and
its seeds (5); ``finetune`` as the suite defines it
(everything carried over, lr x0.1, epsilon from its final value) with a warm start of 0, 2000 and 5000 steps as given
(not scaled to each pair's sampling), and scratch. The scratch runs were configured exactly as the standard suite's then,
the 5000-step runs as its ``finetune`` on the LunarLander and Acrobot pairs (and on the CartPole pairs before the
warm start was scaled to the sampling), the 1250-step runs as its CartPole ``finetune`` now, and the 0-step runs as
its ``finetune`` before the warm start was added (so those could be copied over instead of trained again: runs are
deterministic given seed and config; the committed runs predate the suites' fused Adam).

    python benchmarks/warm_start.py --out benchmarks/results/warm_start

writes ``report.md``, ``summary.json`` and ``plots/`` (finished runs are reused; in the committed folder, ``ws2k`` and
seeds 0-4 of ``ws1250`` came from pilots of exactly these configurations: benchmarks/results/README.md), and
``report-short-hold.md`` /
``summary-short-hold.json`` for a 1250-step hold on the CartPole pairs: rl-zoo3's CartPole settings sample 32
transitions per environment step (batch 64, 128 gradient steps every 256 steps) where its LunarLander and Acrobot
settings sample 128 (batch 128, one gradient step per step), so a hold scaled to the sampling would be a quarter
of 5000 there.
"""

import argparse
import shutil
import time
from dataclasses import replace
from pathlib import Path

import ablation
from sb3_transfer.bench.report import write_report
from sb3_transfer.bench.runner import run_suite
from sb3_transfer.bench.suites import METHODS, PAIRS, Suite

NEAR = ("cartpole-longpole", "cartpole-weakmotor", "lunar-windy", "lunar-lowgravity", "acrobot-heavy")
HOLDS = (0, 2_000, 5_000)
SUITE = Suite(
    "warm-start",
    tuple(ablation.at_30k(PAIRS[name]) for name in NEAR),
    (
        METHODS["scratch"],
        *(
            replace(
                METHODS["finetune"],
                name=f"ws{hold // 1000}k",
                warm_start=hold,
                scale_warm_start=False,  # holds as given, in timesteps
                description=f"finetune, {hold}-step warm start",
            )
            for hold in HOLDS
        ),
    ),
    (0, 1, 2, 3, 4),
)


SHORT_HOLD = Suite(
    "warm-start-short-hold",
    tuple(PAIRS[name] for name in NEAR[:2]),
    (
        METHODS["scratch"],
        replace(
            METHODS["finetune"], name="ws0k", warm_start=0, scale_warm_start=False, description="finetune, 0-step warm start"
        ),
        replace(
            METHODS["finetune"],
            name="ws1250",
            warm_start=1_250,
            scale_warm_start=False,
            description="finetune, 1250-step warm start",
        ),
        replace(
            METHODS["finetune"],
            name="ws5k",
            warm_start=5_000,
            scale_warm_start=False,
            description="finetune, 5000-step warm start",
        ),
    ),
    tuple(range(10)),  # CartPole runs are cheap: twice the seeds
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="sb3t-bench/warm_start")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out, command = Path(args.out), f"python benchmarks/warm_start.py --out {args.out}"
    for suite, suffix in ((SHORT_HOLD, "-short-hold"), (SUITE, "")):
        started = time.time()
        run_suite(suite, out, workers=args.workers)
        write_report(suite, out, command, time.time() - started)
        if suffix:
            shutil.move(out / "report.md", out / f"report{suffix}.md")
            shutil.move(out / "summary.json", out / f"summary{suffix}.json")


if __name__ == "__main__":
    main()
