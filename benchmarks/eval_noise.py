"""How much one fixed policy's evaluation varies: a source agent on its target variants, many episodes, and the spread
of the means over groups of as many episodes as the benchmark pairs use.

    python benchmarks/eval_noise.py SOURCE.zip LunarLander-v3 LunarLanderWindy-v3 LunarLanderLowGravity-v3

(``SOURCE.zip``: e.g. a suite's cached source, ``<out>/sources/dqn-LunarLander-v3-100000-*.zip``.)
"""

import argparse

import gymnasium as gym
import numpy as np
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import sb3_transfer  # noqa: F401  (registers the variants)
from sb3_transfer.adapt import ALGOS
from sb3_transfer.sources import read_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="an SB3 .zip of your own (it is loaded, so unpickled)")
    parser.add_argument("envs", nargs="+")
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--group", type=int, default=5, help="episodes per evaluation in the benchmark")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    algo = ALGOS[read_source(args.source).algo.lower()]
    model = algo.load(args.source, device="cpu")
    for env_id in args.envs:
        env = Monitor(gym.make(env_id))
        env.reset(seed=args.seed)
        returns, _ = evaluate_policy(
            model, env, n_eval_episodes=args.episodes, deterministic=True, return_episode_rewards=True
        )
        returns = np.asarray(returns, dtype=float)
        means = returns[: len(returns) // args.group * args.group].reshape(-1, args.group).mean(axis=1)
        print(
            f"{env_id}: mean {returns.mean():.0f}, episode std {returns.std():.0f}; means of {args.group} episodes: "
            f"std {means.std():.0f}, from {means.min():.0f} to {means.max():.0f}"
        )


if __name__ == "__main__":
    main()
