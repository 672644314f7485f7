"""Pilot of the methods that keep what the source knows (distillation toward it, anchoring to its weights), to choose
their settings before the standard suite runs them over source agents.

Four near pairs of the ``standard`` suite where ``finetune`` gives back its jumpstart (long pole, weak motor, windy
LunarLander, Acrobot -> heavy), the standard source agent (seed 0), target seeds 0-2; scratch, zeroshot and finetune as
the standard suite defines them (their runs are configured as its, so can be copied over), and candidates:

- ``distill-lin``: distillation, lambda_0 = 1, tau = 0.1, falling linearly to 0 over the first half of training;
- ``distill-ret``: the same weight decayed by QDagger's rule (the student's shortfall from the source's return);
- ``anchor-0.1`` and ``anchor-1``: L2-SP toward the transplanted weights at lambda 0.1 and 1;
- ``qdagger``: ``distill-ret`` with 1000 offline gradient steps on the warm start's buffer at its end.

All on top of ``finetune`` (every layer, lr x0.1, the scaled warm start).

    python benchmarks/keep_source_pilot.py --out benchmarks/results/keep_source_pilot
"""

from dataclasses import replace

import ablation
from sb3_transfer.bench.suites import METHODS, PAIRS, Method, Suite

DISTILL = dict(distill_coef=1.0, distill_temperature=0.1, distill_fraction=0.5)


def on_finetune(name: str, description: str, offline_steps: int = 0, **hyperparams: object) -> Method:
    return replace(
        METHODS["finetune"], name=name, hyperparams=hyperparams, offline_steps=offline_steps, description=description
    )


CANDIDATES = (
    on_finetune("distill-lin", "finetune + distillation (lambda_0 1, tau 0.1, linear to 0 at half)", **DISTILL),
    on_finetune(
        "distill-ret",
        "finetune + distillation (lambda_0 1, tau 0.1, QDagger's return decay)",
        **{**DISTILL, "distill_decay": "return"},
    ),
    on_finetune("anchor-0.1", "finetune + L2-SP anchor, lambda 0.1", anchor_coef=0.1),
    on_finetune("anchor-1", "finetune + L2-SP anchor, lambda 1", anchor_coef=1.0),
    on_finetune(
        "qdagger",
        "distill-ret + 1000 offline steps on the warm start's buffer",
        offline_steps=1000,
        **{**DISTILL, "distill_decay": "return"},
    ),
)

SUITE = Suite(
    "keep-source-pilot",
    tuple(PAIRS[name] for name in ("cartpole-longpole", "cartpole-weakmotor", "acrobot-heavy", "lunar-windy")),
    (METHODS["scratch"], METHODS["zeroshot"], METHODS["finetune"], *CANDIDATES),
    (0, 1, 2),
)


if __name__ == "__main__":
    ablation.main(SUITE, "keep_source_pilot", __doc__)
