"""Features extractors that SB3 lacks and transfer benchmarks need."""

from __future__ import annotations

import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from sb3_transfer.encoders import build_module


class SmallCNN(BaseFeaturesExtractor):
    """
    A CNN for small images, such as MinAtar's 10x10 frames, which SB3's ``NatureCNN`` (8x8 kernels, stride 4) cannot
    take below 36x36: one 3x3 convolution with stride 1, then a linear layer (the network of Young & Tian, 2019,
    "MinAtar"). Its layers are named as ``NatureCNN``'s (``cnn``, ``linear``), so the first convolution is adapted to
    another channel count like ``NatureCNN``'s.

    :param observation_space: A channel-first image space (SB3 transposes channel-last images before the policy).
    :param features_dim: Output size of the linear layer.
    :param n_filters: Filters of the convolution.
    :param normalized_image: Whether the images are already in [0, 1] (as for ``NatureCNN``).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        features_dim: int = 128,
        n_filters: int = 16,
        normalized_image: bool = False,
    ) -> None:
        if not is_image_space(observation_space, check_channels=False, normalized_image=normalized_image):
            raise ValueError(
                f"SmallCNN needs an image observation space (uint8 Box of 3 dimensions), not {observation_space}; "
                "for MinAtar's boolean frames use sb3_transfer.envs.MinAtarImage or the MinAtarImage/<Game>-v1 ids."
            )
        assert isinstance(observation_space, spaces.Box)
        super().__init__(observation_space, features_dim)
        n_channels, height, width = observation_space.shape
        if min(height, width) < 3:
            raise ValueError(f"SmallCNN needs images of at least 3x3, not {height}x{width}.")
        self.cnn = nn.Sequential(nn.Conv2d(n_channels, n_filters, kernel_size=3, stride=1), nn.ReLU(), nn.Flatten())
        self.linear = nn.Sequential(nn.Linear(n_filters * (height - 2) * (width - 2), features_dim), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.linear(self.cnn(observations))


class GraphExtractor(BaseFeaturesExtractor):
    """
    An encoder rebuilt from its plain description (:func:`~sb3_transfer.encoders.describe_module`): what a model trained
    from a user's ``nn.Module`` holds in place of the module, so that it saves no pickled encoder and loads where the
    encoder's class cannot be imported. Its output is flattened.

    :param observation_space: The observations it takes (as SB3 preprocesses them).
    :param description: The encoder's description.
    :param features_dim: Its output size.
    """

    def __init__(self, observation_space: spaces.Space, description: dict, features_dim: int) -> None:
        super().__init__(observation_space, features_dim)
        self.module = build_module(description)
        self.flatten = nn.Flatten()

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.flatten(self.module(observations))
