"""With the pretrained policy filling the buffer first, is x0.1 still the learning-rate factor to fine-tune at?

The ``finetune`` method's x0.1 factor was chosen without a warm start (``fine_tuning_settings.py``: at x1 the
Acrobot -> heavy curve fell 308 points). This asks whether, after the standard suite's 5000-step
``PolicyWarmStart``, a larger factor learns faster without that fall, on Acrobot -> heavy: the near pair where
``finetune`` keeps its jumpstart but stays flat near -120 and reaches the threshold (-100) no sooner than 0.80 of
scratch's (censored) time. ``finetune`` as the standard suite defines it, with the pretrained groups at x0.3 and x1;
its x0.1 and scratch runs were configured exactly as the standard suite's then (30k target steps, Adam's default kernel),
so they were copied over.

    python benchmarks/warm_start_lr.py --out benchmarks/results/warm_start_lr

writes ``report.md``, ``summary.json`` and ``plots/`` (finished runs are reused).
"""

from dataclasses import replace

import ablation
from sb3_transfer.bench.suites import METHODS, PAIRS, Suite

SUITE = Suite(
    "warm-start-lr",
    (ablation.at_30k(PAIRS["acrobot-heavy"]),),
    (
        METHODS["scratch"],
        replace(METHODS["finetune"], name="lr0.1", description="finetune (lr x0.1)"),
        *(
            replace(METHODS["finetune"], name=f"lr{scale}", lr_scale={"*": scale}, description=f"finetune at lr x{scale}")
            for scale in (0.3, 1.0)
        ),
    ),
    (0, 1, 2, 3, 4),
)


if __name__ == "__main__":
    ablation.main(SUITE, "warm_start_lr", __doc__)
