"""How much do a pair's results depend on its source agent? The standard suite trains one per pair (seed 0).

The two CartPole near pairs of the ``standard`` suite, each with source agents trained with seeds 0, 1 and 2 (same
task, budget and rl-zoo3 hyperparameters), and ``scratch``, ``zeroshot`` and ``finetune`` as the suite defines them,
5 target seeds. The seed-0 pairs are the standard suite's (their runs are configured as its, so can be copied over);
the confidence intervals of each pair cover target seeds, and the spread between its three rows is what they miss.

    python benchmarks/source_seeds.py --out benchmarks/results/source_seeds

writes ``report.md``, ``summary.json`` and ``plots/`` (finished runs are reused).
"""

from dataclasses import replace

import ablation
from sb3_transfer.bench.suites import METHODS, PAIRS, Suite

SUITE = Suite(
    "source-seeds",
    tuple(
        replace(PAIRS[name], name=f"{name}-src{seed}", source_seed=seed)
        for name in ("cartpole-longpole", "cartpole-weakmotor")
        for seed in (0, 1, 2)
    ),
    (METHODS["scratch"], METHODS["zeroshot"], METHODS["finetune"]),
    (0, 1, 2, 3, 4),
)


if __name__ == "__main__":
    ablation.main(SUITE, "source_seeds", __doc__)
