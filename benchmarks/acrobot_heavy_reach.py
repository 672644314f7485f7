"""Can -100 be reached on the heavy acrobot at all? The standard suite's time-to-threshold target on Acrobot -> heavy.

In the standard suite as it was then (30k target steps) scratch never reaches the threshold (-100, Acrobot-v1's own) on
``AcrobotHeavy-v1`` and ``finetune`` does in 2 of 5 seeds, with 5 evaluation episodes. This runs both for 100k steps
(rl-zoo3's budget for Acrobot) with 20 evaluation episodes every 10k steps, 2 seeds, to see where each levels off.

    python benchmarks/acrobot_heavy_reach.py --out benchmarks/results/acrobot_heavy_reach

writes ``report.md``, ``summary.json`` and ``plots/`` (finished runs are reused; the committed runs came from a pilot of
exactly this configuration: benchmarks/results/README.md).
"""

from dataclasses import replace

import ablation
from sb3_transfer.bench.suites import METHODS, PAIRS, Suite

PAIR = replace(PAIRS["acrobot-heavy"], target_steps=100_000, eval_freq=10_000, n_eval_episodes=20)
SUITE = Suite("acrobot-heavy-reach", (PAIR,), (METHODS["scratch"], METHODS["finetune"]), (0, 1))


if __name__ == "__main__":
    ablation.main(SUITE, "acrobot_heavy_reach", __doc__)
