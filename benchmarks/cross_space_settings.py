"""Why does transfer hurt on the cross-space pairs? Exploration and learning rate of ``finetune`` there.

On both cross-space pairs of the standard suite (CartPole -> Acrobot: an input adapter 4 -> 6 and mapped actions;
MinAtar Breakout -> SpaceInvaders: channels 4 -> 6, actions 3 -> 4) every transfer method ends below scratch.
``load_and_adapt``'s fine-tuning defaults start epsilon at its final value when the head is carried over (adapted
rows count) and train the pretrained groups at x0.1. This tries, with ``finetune`` as the standard suite defines it
otherwise: epsilon from 1.0 (SB3's schedule, as scratch has it; ``eps1``), the pretrained groups at the full rate
(``lr1``), and both (``eps1-lr1``). 5 seeds; ``scratch`` and ``finetune`` are the standard suite's runs (copied;
they predate its fused Adam).

    python benchmarks/cross_space_settings.py --out benchmarks/results/cross_space_settings

writes ``report.md``, ``summary.json`` and ``plots/`` (finished runs are reused).
"""

from dataclasses import replace

import ablation
from sb3_transfer.bench.suites import METHODS, PAIRS, Suite

FINETUNE = METHODS["finetune"]
EPS1 = {"exploration_initial_eps": 1.0}
SUITE = Suite(
    "cross-space-settings",
    (PAIRS["breakout-spaceinvaders"], PAIRS["cartpole-acrobot"]),
    (
        METHODS["scratch"],
        FINETUNE,
        replace(FINETUNE, name="eps1", hyperparams=EPS1, description="finetune, epsilon from 1.0"),
        replace(FINETUNE, name="lr1", lr_scale={"*": 1.0}, description="finetune at lr x1"),
        replace(FINETUNE, name="eps1-lr1", hyperparams=EPS1, lr_scale={"*": 1.0}, description="both"),
    ),
    (0, 1, 2, 3, 4),
)


if __name__ == "__main__":
    ablation.main(SUITE, "cross_space_settings", __doc__)
