"""MinAtar's games as images that SB3's image pipeline takes."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class MinAtarImage(gym.ObservationWrapper):
    """
    MinAtar's boolean ``10x10xC`` frames as channel-first uint8 images (``Cx10x10``) with values 0 and 255.

    SB3 treats only uint8 boxes in [0, 255] as images (it scales them to [0, 1] before the policy), so a boolean frame
    would otherwise reach an MLP, flattened. The frames are made channel-first here rather than left to SB3's
    ``VecTransposeImage``: SB3 guesses the channel axis as the smallest one, and Seaquest's 10 channels tie with the
    10x10 board. The channels (one per kind of object) are kept as they are: Breakout has 4, SpaceInvaders 6.

    :param env: A MinAtar environment (``MinAtar/<Game>-v1``).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        shape = env.observation_space.shape
        if env.observation_space.dtype != np.bool_ or shape is None or len(shape) != 3:
            raise ValueError(f"MinAtarImage wraps MinAtar's boolean HxWxC frames, not {env.observation_space}.")
        self.observation_space = spaces.Box(0, 255, (shape[2], shape[0], shape[1]), np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(np.asarray(observation, dtype=np.uint8), -1, 0)) * np.uint8(255)


def make_minatar_image(game: str, **kwargs: Any) -> gym.Env:
    """``MinAtar/<game>-v1`` (minimal action set) as a :class:`MinAtarImage`; the entry point of ``MinAtarImage/<game>-v1``."""
    return MinAtarImage(gym.make(f"MinAtar/{game}-v1", **kwargs).unwrapped)
