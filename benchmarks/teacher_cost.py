"""What distillation and anchoring cost per gradient step, measured as ratios in one process (paired, alternating).

A CartPole source (rl-zoo3's CartPole network, 256x256) adapted to ``CartPoleLongPole-v1`` three times from the same
source and seed: plain fine-tuning, with distillation (one forward pass of the frozen teacher per batch) and with
anchoring (a sum over the transplanted parameters per batch). Each model fills its buffer, then in every round each
runs the same number of gradient steps (``model.train``), in alternating order; the ratio of times per round is
plain / with the term (below 1: the term costs that much more).

    python benchmarks/teacher_cost.py --rounds 15 --out benchmarks/results/teacher_cost.md
"""

import argparse
import platform
import statistics
import time
from importlib.metadata import version

import torch as th
from stable_baselines3 import DQN

from sb3_transfer import load_and_adapt
from sb3_transfer.zoo import zoo_hyperparams

TERMS = {
    "distill": dict(distill_coef=1.0, distill_temperature=0.1, distill_decay="constant"),
    "anchor": dict(anchor_coef=0.1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=200, help="gradient steps per model and round")
    parser.add_argument("--out", help="write the Markdown result here")
    args = parser.parse_args()
    th.set_num_threads(1)
    hyperparams, _, _ = zoo_hyperparams("dqn", "CartPole-v1")
    source = DQN("MlpPolicy", "CartPole-v1", seed=0, device="cpu", **hyperparams)
    hyperparams = {k: v for k, v in hyperparams.items() if k != "policy_kwargs"}
    models = {
        name: load_and_adapt(
            source, "CartPoleLongPole-v1", transfer="all", seed=0, device="cpu", verbose=0, **hyperparams, **terms
        )
        for name, terms in {"plain": {}, **TERMS}.items()
    }
    for model in models.values():
        model.learn(2_000)  # fill the buffer (learning starts at 1000)
    ratios: dict[str, list[float]] = {name: [] for name in TERMS}
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(models)[::-1]
        times = {}
        for name in order:
            started = time.perf_counter()
            models[name].train(gradient_steps=args.steps, batch_size=models[name].batch_size)
            times[name] = time.perf_counter() - started
        for name in TERMS:
            ratios[name].append(times["plain"] / times[name])
    lines = [
        "# What the transfer terms cost per gradient step",
        "",
        f"`python benchmarks/teacher_cost.py --rounds {args.rounds} --steps {args.steps}`, torch on 1 thread, batch "
        f"{models['plain'].batch_size}, rl-zoo3's CartPole network.",
        "",
        "| term | plain time / time with the term, median [min, max] over rounds |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {statistics.median(r):.3f} [{min(r):.3f}, {max(r):.3f}] |" for name, r in ratios.items()]
    versions = ", ".join(f"{p} {version(p)}" for p in ("sb3-transfer", "stable-baselines3", "torch"))
    lines += ["", f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}; {versions}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as file:
            file.write(text)


if __name__ == "__main__":
    main()
