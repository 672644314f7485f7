"""How should an input adapter's weights for the target's extra inputs start: random or zero?

CartPole's 4 inputs -> Acrobot's 6 (the extra two are the angular velocities). A fresh DQN (rl-baselines3-zoo's
Acrobot hyperparameters, net_arch [64, 64]) behind an InputAdapter(6 -> 4) is trained with each init, and also without
adapter (plain MlpPolicy) as the reference; the mean return of 10 greedy episodes is printed per seed.

    python benchmarks/adapter_init.py --steps 20000 --seeds 0 1 2
"""

import argparse
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from stable_baselines3 import DQN
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_transfer import InputAdapter

ZOO_ACROBOT = dict(
    learning_rate=6.3e-4,
    batch_size=128,
    buffer_size=50_000,
    learning_starts=0,
    gamma=0.99,
    target_update_interval=250,
    train_freq=4,
    gradient_steps=-1,
    exploration_fraction=0.12,
    exploration_final_eps=0.1,
)


def run(variant: str, seed: int, steps: int) -> float:
    import torch as th

    th.set_num_threads(1)
    policy_kwargs: dict = dict(net_arch=[64, 64])
    if variant != "no adapter":
        policy_kwargs.update(
            features_extractor_class=InputAdapter, features_extractor_kwargs=dict(adapted_dim=4, new_inputs=variant)
        )
    model = DQN("MlpPolicy", "Acrobot-v1", policy_kwargs=policy_kwargs, seed=seed, device="cpu", **ZOO_ACROBOT)
    model.learn(steps)
    mean, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=10)
    return float(mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    variants = ["random", "zero", "no adapter"]
    jobs = [(v, s) for v in variants for s in args.seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run, *zip(*jobs, strict=True), [args.steps] * len(jobs)))
    print(f"Acrobot-v1, {args.steps} steps, mean return of 10 greedy episodes per seed {args.seeds}")
    for v in variants:
        scores = [r for (variant, _), r in zip(jobs, results, strict=True) if variant == v]
        print(f"  {v:<11} {' '.join(f'{s:7.1f}' for s in scores)}   mean {np.mean(scores):7.1f}")


if __name__ == "__main__":
    main()
