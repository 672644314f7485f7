"""Gymnasium ids of target-task variants, registered on ``import sb3_transfer``.

=============================  ========================  =====================================================================
id                             source task               what differs
=============================  ========================  =====================================================================
CartPoleLongPole-v1            CartPole-v1               pole twice as long: half-length (CartPole's ``length``) 1.0 instead
                                                         of 0.5
CartPoleWeakMotor-v1           CartPole-v1               pushes of 3.0 N instead of 10.0 N (``force_mag``)
LunarLanderWindy-v3            LunarLander-v3            wind on (``enable_wind=True``, ``wind_power=15.0``)
LunarLanderLowGravity-v3       LunarLander-v3            gravity -5.0 instead of -10.0
AcrobotHeavy-v1                Acrobot-v1                second link 1.5 kg instead of 1.0 and 1.5 m long instead of 1.0
PendulumHeavy-v1               Pendulum-v1               pendulum 1.5 kg instead of 1.0 and 1.2 m long instead of 1.0
LunarLanderContinuousWindy-v3  LunarLanderContinuous-v3  wind on (``enable_wind=True``, ``wind_power=15.0``)
MountainCarContinuousSteep-v0  MountainCarContinuous-v0  engine ``power`` 0.0010 instead of 0.0015: the hill is steeper
                                                         for the car
MinAtar/<Game>-v1              (MinAtar)                 registered from the ``minatar`` package when it is installed
MinAtarImage/<Game>-v1         (MinAtar)                 the same game (minimal action set) as uint8 images
                                                         (:class:`MinAtarImage`), episodes cut at 1000 steps; with ``minatar``
                                                         installed
=============================  ========================  =====================================================================
"""

from __future__ import annotations

import importlib.util

import gymnasium as gym

from sb3_transfer.envs.minatar import MinAtarImage

__all__ = ["VARIANTS", "MinAtarImage", "register_envs", "source_task"]

MINATAR_GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
# MinAtar's own names of its games.
_MINATAR_NAMES = {
    "Asterix": "asterix",
    "Breakout": "breakout",
    "Freeway": "freeway",
    "Seaquest": "seaquest",
    "SpaceInvaders": "space_invaders",
}

VARIANTS: dict[str, dict] = {
    "CartPoleLongPole-v1": dict(
        entry_point="sb3_transfer.envs.variants:CartPoleVariant",
        kwargs=dict(length=1.0),
        max_episode_steps=500,
        reward_threshold=475.0,
        source="CartPole-v1",
    ),
    "CartPoleWeakMotor-v1": dict(
        entry_point="sb3_transfer.envs.variants:CartPoleVariant",
        kwargs=dict(force_mag=3.0),
        max_episode_steps=500,
        reward_threshold=475.0,
        source="CartPole-v1",
    ),
    "LunarLanderWindy-v3": dict(
        entry_point="gymnasium.envs.box2d.lunar_lander:LunarLander",
        kwargs=dict(enable_wind=True, wind_power=15.0),
        max_episode_steps=1000,
        reward_threshold=200.0,
        source="LunarLander-v3",
    ),
    "LunarLanderLowGravity-v3": dict(
        entry_point="gymnasium.envs.box2d.lunar_lander:LunarLander",
        kwargs=dict(gravity=-5.0),
        max_episode_steps=1000,
        reward_threshold=200.0,
        source="LunarLander-v3",
    ),
    "AcrobotHeavy-v1": dict(
        entry_point="sb3_transfer.envs.variants:AcrobotVariant",
        kwargs=dict(link_mass_2=1.5, link_length_2=1.5),
        max_episode_steps=500,
        reward_threshold=-100.0,
        source="Acrobot-v1",
    ),
    # Continuous control, for PPO / SAC. Pendulum-v1 has no reward threshold, so neither has its variant.
    "PendulumHeavy-v1": dict(
        entry_point="sb3_transfer.envs.variants:PendulumVariant",
        kwargs=dict(m=1.5, l=1.2),
        max_episode_steps=200,
        source="Pendulum-v1",
    ),
    "LunarLanderContinuousWindy-v3": dict(
        entry_point="gymnasium.envs.box2d.lunar_lander:LunarLander",
        kwargs=dict(continuous=True, enable_wind=True, wind_power=15.0),
        max_episode_steps=1000,
        reward_threshold=200.0,
        source="LunarLanderContinuous-v3",
    ),
    "MountainCarContinuousSteep-v0": dict(
        entry_point="sb3_transfer.envs.variants:MountainCarContinuousVariant",
        kwargs=dict(power=0.0010),
        max_episode_steps=999,
        reward_threshold=90.0,
        source="MountainCarContinuous-v0",
    ),
}


def source_task(env_id: str) -> str | None:
    """The task a registered variant was made from (``"CartPole-v1"`` for ``"CartPoleLongPole-v1"``), else ``None``."""
    variant = VARIANTS.get(env_id)
    return variant["source"] if variant else None


def register_envs() -> list[str]:
    """
    Register the variants (and MinAtar's games when ``minatar`` is installed) with gymnasium. Safe to call again.

    :return: The ids registered by this call.
    """
    registered = []
    for env_id, spec in VARIANTS.items():
        if env_id not in gym.registry:
            gym.register(env_id, **{k: v for k, v in spec.items() if k != "source"})
            registered.append(env_id)
    if importlib.util.find_spec("minatar") is None:
        return registered
    # Registered as MinAtar's own register_envs() does, by name: importing minatar imports matplotlib's pyplot and
    # seaborn, which `import sb3_transfer` should not do (nor take a second for).
    for game in MINATAR_GAMES:
        for version, minimal in (("v0", False), ("v1", True)):
            env_id = f"MinAtar/{game}-{version}"
            if env_id not in gym.registry:
                gym.register(
                    env_id,
                    entry_point="minatar.gym:BaseEnv",
                    kwargs=dict(game=_MINATAR_NAMES[game], use_minimal_action_set=minimal),
                )
                registered.append(env_id)
    for game in MINATAR_GAMES:
        if f"MinAtarImage/{game}-v1" not in gym.registry:
            gym.register(
                f"MinAtarImage/{game}-v1",
                entry_point="sb3_transfer.envs.minatar:make_minatar_image",
                kwargs=dict(game=game),
                max_episode_steps=1000,
            )
            registered.append(f"MinAtarImage/{game}-v1")
    return registered


register_envs()
