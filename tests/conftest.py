"""Small pretrained models and tiny environments, made here: the tests download nothing."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class TinyImageEnv(gym.Env):
    """Random uint8 images (channel-last, as SB3 expects from gym envs), ``n_actions`` discrete actions."""

    def __init__(self, channels: int = 3, n_actions: int = 3, size: int = 36) -> None:
        self.observation_space = spaces.Box(0, 255, (size, size, channels), np.uint8)
        self.action_space = spaces.Discrete(n_actions)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        self._t += 1
        return self._obs(), float(action == 0), False, self._t >= 8, {}

    def _obs(self):  # from the env's seeded generator, so that runs repeat
        return self.np_random.integers(0, 256, self.observation_space.shape, dtype=np.uint8)


class TinyDictEnv(gym.Env):
    """Dict observations of two small vectors."""

    def __init__(self, n_actions: int = 2) -> None:
        self.observation_space = spaces.Dict({"a": spaces.Box(-1, 1, (3,)), "b": spaces.Box(-1, 1, (2,))})
        self.action_space = spaces.Discrete(n_actions)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), float(action == 0), False, True, {}

    def _obs(self):
        return {k: self.np_random.uniform(-1, 1, s.shape).astype(np.float32) for k, s in self.observation_space.spaces.items()}


class TinyExtractor(BaseFeaturesExtractor):
    """A custom features extractor, as users write them."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 8) -> None:
        super().__init__(observation_space, features_dim)
        self.body = nn.Sequential(nn.Linear(int(np.prod(observation_space.shape)), features_dim), nn.Tanh())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.body(observations.flatten(1))


MLP_KWARGS = dict(net_arch=[16, 16])
CNN_KWARGS = dict(net_arch=[16], features_extractor_kwargs=dict(features_dim=16))


def make_model(algo, env, seed: int = 0, **policy_kwargs):
    """A small, untrained model: its random weights are as good a 'pretrained' network as any for transplant tests."""
    policy = (
        "CnnPolicy" if isinstance(env, TinyImageEnv) else "MultiInputPolicy" if isinstance(env, TinyDictEnv) else "MlpPolicy"
    )
    if algo is QRDQN:
        policy_kwargs.setdefault("n_quantiles", 5)
    return algo(policy, env, policy_kwargs=policy_kwargs, buffer_size=1_000, seed=seed, device="cpu")


@pytest.fixture(scope="session")
def cartpole_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("sources") / "cartpole_dqn.zip"
    make_model(DQN, "CartPole-v1", seed=1, **MLP_KWARGS).save(path)
    return path


@pytest.fixture(scope="session")
def cartpole_qrdqn_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("sources") / "cartpole_qrdqn.zip"
    make_model(QRDQN, "CartPole-v1", seed=1, **MLP_KWARGS).save(path)
    return path


def q_values(model, obs) -> th.Tensor:
    """The online network's raw output (Q-values, or quantiles for QR-DQN) on a batch of observations."""
    with th.no_grad():
        tensor, _ = model.policy.obs_to_tensor(obs)
        net = model.policy.q_net if hasattr(model.policy, "q_net") else model.policy.quantile_net
        return net(tensor)


def sample_batch(space: spaces.Space, n: int = 8, seed: int = 0):
    space.seed(seed)
    samples = [space.sample() for _ in range(n)]
    if isinstance(space, spaces.Dict):
        return {k: np.stack([s[k] for s in samples]) for k in space.spaces}
    return np.stack(samples)
