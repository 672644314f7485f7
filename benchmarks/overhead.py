"""The plugin's own cost, measured as ratios in one process (the machines are shared and noisy).

1. Training throughput of the Transfer policies (nothing frozen) against SB3's own policy of the same alias, pair
   by pair of the ``standard`` benchmark suite: the target task with the pair's hyperparameters and policy, the
   same seed, run after run in alternating order; the median over rounds of (SB3 time / our time) is the pair's
   throughput ratio.
2. The gradient-step speed-up of a frozen CNN features extractor against an unfrozen one (same network, same batch).

    python benchmarks/overhead.py --rounds 5 --out benchmarks/results/overhead.md
"""

import argparse
import platform
import statistics
import time
from importlib.metadata import version

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import DQN

from sb3_transfer import TransferDQN, TransferDQNCnnPolicy
from sb3_transfer.bench.runner import pair_hyperparams
from sb3_transfer.bench.suites import SUITES, Pair

# Environment steps per timed run: a few seconds each. Training starts early so that the time is mostly training.
STEPS = {"CartPole": 6_000, "LunarLander": 3_000, "Acrobot": 3_000, "MinAtar": 5_000}


class ImageEnv(gym.Env):
    """84x84x4 uint8 frames (Atari-sized, as NatureCNN expects), 4 actions, random dynamics: only speed matters here."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0, 255, (84, 84, 4), np.uint8)
        self.action_space = spaces.Discrete(4)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.np_random.integers(0, 256, (84, 84, 4), dtype=np.uint8), {}

    def step(self, action):
        self._t += 1
        obs = self.np_random.integers(0, 256, (84, 84, 4), dtype=np.uint8)
        return obs, 0.0, False, self._t >= 100, {}


def timed_learn(pair: Pair, policy, seed: int) -> float:
    hyperparams = pair_hyperparams(pair, pair.target_env)
    hyperparams["learning_starts"] = min(hyperparams.get("learning_starts", 100), 500)
    steps = next(n for prefix, n in STEPS.items() if prefix in pair.target_env)
    model = DQN(policy, pair.target_env, seed=seed, device="cpu", verbose=0, **hyperparams)
    start = time.perf_counter()
    model.learn(steps)
    return time.perf_counter() - start


def throughput_ratios(rounds: int) -> dict[str, list[float]]:
    ratios: dict[str, list[float]] = {}
    for pair in SUITES["standard"].pairs:
        ratios[pair.name] = []
        for r in range(rounds):
            ours = TransferDQN.policy_aliases[pair.policy]  # the Transfer policy of the same meaning
            order = [pair.policy, ours] if r % 2 == 0 else [ours, pair.policy]
            times = {p if isinstance(p, str) else "ours": timed_learn(pair, p, seed=r) for p in order}
            ratios[pair.name].append(times[pair.policy] / times["ours"])
        print(pair.name, [f"{x:.3f}" for x in ratios[pair.name]], flush=True)
    return ratios


def frozen_cnn_speedup(rounds: int, steps: int = 30) -> list[float]:
    model = DQN(TransferDQNCnnPolicy, ImageEnv(), device="cpu", verbose=0, learning_starts=0, batch_size=32, buffer_size=2000)
    model.learn(200)  # fill the buffer
    speedups = []
    for _ in range(rounds):
        times = {}
        for frozen in (False, True):
            model.policy.unfreeze()
            if frozen:
                model.policy.freeze("features_extractor")
            start = time.perf_counter()
            model.train(gradient_steps=steps, batch_size=32)
            times[frozen] = time.perf_counter() - start
        speedups.append(times[False] / times[True])
    return speedups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", help="write the Markdown result here")
    args = parser.parse_args()
    th.set_num_threads(1)
    ratios = throughput_ratios(args.rounds)
    speedups = frozen_cnn_speedup(args.rounds)
    lines = ["# Plugin overhead", "", f"`python benchmarks/overhead.py --rounds {args.rounds}`, torch on 1 thread.", ""]
    lines += [
        "Training throughput, the Transfer policy (nothing frozen) / SB3's policy, on each pair's target task with its "
        "hyperparameters (ratio > 1: ours is faster):",
        "",
        "| pair | ratio, median [min, max] over rounds |",
        "| --- | --- |",
    ]
    for name, r in ratios.items():
        lines.append(f"| {name} | {statistics.median(r):.3f} [{min(r):.3f}, {max(r):.3f}] |")
    lines.append(f"| **median over pairs** | **{statistics.median([statistics.median(r) for r in ratios.values()]):.3f}** |")
    lines += ["", "| frozen NatureCNN vs unfrozen, gradient steps (batch 32, 84x84x4) | speed-up, median [min, max] |"]
    lines += [
        "| --- | --- |",
        f"| `features_extractor` frozen | {statistics.median(speedups):.2f}x [{min(speedups):.2f}, {max(speedups):.2f}] |",
    ]
    versions = ", ".join(f"{p} {version(p)}" for p in ("sb3-transfer", "stable-baselines3", "torch"))
    lines += ["", f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}; {versions}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as file:
            file.write(text)


if __name__ == "__main__":
    main()
