"""Which fine-tuning settings keep a pretrained DQN's jumpstart: the ablation behind ``load_and_adapt``'s defaults.

Every method here transfers everything (``transfer="all"``) and trains every layer, except the two ``gradual`` rows;
they differ in the learning-rate factor of the pretrained layers (``lr_scale``), in how many random-action steps
fill the replay buffer before the first gradient step (``learning_starts``, "ws") and in the start of epsilon.
rl-zoo3's tuned hyperparameters otherwise; 3 seeds; the pairs of the benchmark suites at shorter budgets.

    python benchmarks/fine_tuning_settings.py --out benchmarks/results/fine_tuning_settings

writes ``report-<pair>.md``, ``summary-<pair>.json`` and ``plots/<pair>.png`` per pair (finished runs are reused).
"""

import argparse
import shutil
import time
from dataclasses import replace
from pathlib import Path

import ablation
from sb3_transfer.bench.report import write_report
from sb3_transfer.bench.runner import run_suite
from sb3_transfer.bench.suites import METHODS, PAIRS, Method, Suite


def finetune(name: str, lr: float, **hyperparams) -> Method:
    return Method(name, "all", lr_scale={"*": lr}, hyperparams=hyperparams, description=name)


def gradual(name: str, **hyperparams) -> Method:
    # The gradual method before the x0.1 default: trunk x0.1, head at the full rate.
    return replace(
        METHODS["gradual"], name=name, lr_scale={"*": 1.0, "trunk.*": 0.1}, hyperparams=hyperparams, description=name
    )


WS = dict(learning_starts=5_000)
M = {
    "lr1": finetune("lr1", 1.0),  # the default before this ablation
    "lr1-eps1": finetune("lr1-eps1", 1.0, exploration_initial_eps=1.0),
    "lr1-ws2k": finetune("lr1-ws2k", 1.0, learning_starts=2_000),
    "lr1-ws5k": finetune("lr1-ws5k", 1.0, **WS),
    "lr1-ws10k": finetune("lr1-ws10k", 1.0, learning_starts=10_000),
    "lr0.3-ws5k": finetune("lr0.3-ws5k", 0.3, **WS),
    "lr0.1-ws5k": finetune("lr0.1-ws5k", 0.1, **WS),
    "lr0.1": finetune("lr0.1", 0.1),  # the default since
    "gradual-lr1": gradual("gradual-lr1"),
    "gradual-lr1-ws5k": gradual("gradual-lr1-ws5k", **WS),
}
SHORT = dict(target_steps=20_000, eval_freq=2_000, n_eval_episodes=5)
GRID = [
    (replace(PAIRS["acrobot-heavy"], **SHORT), list(M)),
    (
        replace(PAIRS["cartpole-weakmotor"], **SHORT),
        ["lr1", "lr1-eps1", "lr1-ws5k", "lr0.1", "gradual-lr1", "gradual-lr1-ws5k"],
    ),
    (replace(PAIRS["cartpole-longpole"], **SHORT), ["lr1-ws5k", "lr0.1"]),
    (ablation.at_30k(PAIRS["lunar-windy"]), ["lr1", "lr1-ws5k", "lr0.3-ws5k", "lr0.1-ws5k", "lr0.1", "gradual-lr1-ws5k"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="sb3t-bench/fine_tuning_settings")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    for pair, names in GRID:
        suite = Suite(pair.name, (pair,), (METHODS["scratch"], *(M[n] for n in names)), (0, 1, 2))
        started = time.time()
        run_suite(suite, out, workers=args.workers)
        write_report(suite, out, f"python benchmarks/fine_tuning_settings.py --out {args.out}", time.time() - started)
        shutil.move(out / "report.md", out / f"report-{pair.name}.md")
        shutil.move(out / "summary.json", out / f"summary-{pair.name}.json")


if __name__ == "__main__":
    main()
