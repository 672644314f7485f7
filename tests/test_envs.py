import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first

import sb3_transfer  # noqa: F401  (registers the variants)
from sb3_transfer.envs import VARIANTS, MinAtarImage, register_envs, source_task

LUNAR = [i for i in VARIANTS if i.startswith("LunarLander")]


def trajectory(env_id: str, steps: int = 5, action=None) -> np.ndarray:
    """Observations from seed 0 under one repeated action: by default action 1, or the largest along every axis."""
    env = gym.make(env_id)
    if action is None:
        action = env.action_space.high if isinstance(env.action_space, spaces.Box) else 1
    obs, _ = env.reset(seed=0)
    out = [obs]
    for _ in range(steps):
        obs, *_ = env.step(action)
        out.append(obs)
    env.close()
    return np.array(out)


def steps_to_goal_pushing_with_velocity(env_id: str, seed: int) -> int | None:
    """Steps a bang-bang policy (full push in the direction the car moves) takes to reach MountainCar's goal."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    for step in range(1, env.spec.max_episode_steps + 1):
        obs, _, terminated, truncated, _ = env.step(np.array([1.0 if obs[1] >= 0 else -1.0], dtype=np.float32))
        if terminated:
            return step
        if truncated:
            return None
    return None


@pytest.mark.parametrize("env_id", list(VARIANTS))
def test_variant_dynamics_really_differ_from_the_source(env_id):
    if env_id in LUNAR:
        pytest.importorskip("Box2D")
    source = source_task(env_id)
    assert gym.make(env_id).observation_space == gym.make(source).observation_space
    assert gym.make(env_id).action_space == gym.make(source).action_space
    a, b = trajectory(env_id), trajectory(source)
    if env_id not in LUNAR:  # LunarLander's reset already takes a physics step
        assert np.array_equal(a[0], b[0])  # same start for the same seed
    assert not np.allclose(a[1:], b[1:])  # different dynamics


@pytest.mark.parametrize("env_id", list(VARIANTS))
def test_variant_keeps_the_source_episode_limit_and_threshold(env_id):
    spec, source = gym.spec(env_id), gym.spec(source_task(env_id))
    assert (spec.max_episode_steps, spec.reward_threshold) == (source.max_episode_steps, source.reward_threshold)


def test_heavy_pendulum_falls_slower_and_turns_less_under_torque():
    heavy, source = gym.make("PendulumHeavy-v1"), gym.make("Pendulum-v1")
    assert (heavy.unwrapped.m, heavy.unwrapped.l) == (1.5, 1.2)
    # Left alone from the same start, the longer pendulum falls more slowly (the mass alone would not change this).
    falling = np.zeros((20, 1), dtype=np.float32)
    heavy_fall, source_fall = trajectory("PendulumHeavy-v1", 20, falling[0]), trajectory("Pendulum-v1", 20, falling[0])
    assert np.array_equal(heavy_fall[0], source_fall[0]) and not np.allclose(heavy_fall[1:], source_fall[1:])
    # 17.5 degrees from the top at rest: the source's largest torque pulls it back up, the variant's cannot hold it.
    for env in (heavy, source):
        env.reset(seed=0)
        env.unwrapped.state = np.array([np.arcsin(0.3), 0.0])
    heavy_obs, *_ = heavy.step(np.array([-2.0], dtype=np.float32))
    source_obs, *_ = source.step(np.array([-2.0], dtype=np.float32))
    assert source_obs[2] < 0 < heavy_obs[2]  # angular velocity: back toward the top vs away from it


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_steep_mountain_car_is_solved_by_pushing_with_velocity_but_later(seed):
    assert gym.make("MountainCarContinuousSteep-v0").unwrapped.power == 0.0010
    source = steps_to_goal_pushing_with_velocity("MountainCarContinuous-v0", seed)
    steep = steps_to_goal_pushing_with_velocity("MountainCarContinuousSteep-v0", seed)
    assert source is not None and steep is not None and source < steep < 200


def test_cartpole_variants_recompute_derived_quantities():
    long_pole = gym.make("CartPoleLongPole-v1").unwrapped
    assert long_pole.length == 1.0 and long_pole.polemass_length == pytest.approx(0.1 * 1.0)
    assert long_pole.total_mass == pytest.approx(1.1)
    weak = gym.make("CartPoleWeakMotor-v1").unwrapped
    assert weak.force_mag == 3.0 and weak.polemass_length == pytest.approx(0.05)


def test_acrobot_and_lunar_parameters():
    heavy = gym.make("AcrobotHeavy-v1").unwrapped
    assert (heavy.LINK_MASS_2, heavy.LINK_LENGTH_2, heavy.LINK_COM_POS_2) == (1.5, 1.5, 0.75)
    assert gym.make("Acrobot-v1").unwrapped.LINK_MASS_2 == 1.0  # the class attribute is untouched
    pytest.importorskip("Box2D")
    windy = gym.make("LunarLanderWindy-v3").unwrapped
    assert windy.enable_wind and windy.wind_power == 15.0
    assert gym.make("LunarLanderLowGravity-v3").unwrapped.gravity == -5.0
    continuous_windy = gym.make("LunarLanderContinuousWindy-v3").unwrapped
    assert continuous_windy.continuous and continuous_windy.enable_wind and continuous_windy.wind_power == 15.0


def test_registration_is_idempotent():
    assert register_envs() == []
    assert source_task("CartPole-v1") is None


def test_minatar_games_are_registered_when_installed():
    pytest.importorskip("minatar")
    register_envs()
    breakout, invaders = gym.make("MinAtar/Breakout-v1"), gym.make("MinAtar/SpaceInvaders-v1")
    assert breakout.observation_space.shape == (10, 10, 4) and breakout.action_space.n == 3
    assert invaders.observation_space.shape == (10, 10, 6) and invaders.action_space.n == 4


def test_minatar_image_games_are_uint8_images_with_the_same_frames():
    pytest.importorskip("minatar")
    raw, image = gym.make("MinAtar/SpaceInvaders-v1"), gym.make("MinAtarImage/SpaceInvaders-v1")
    assert image.observation_space == spaces.Box(0, 255, (6, 10, 10), np.uint8) and image.action_space.n == 4
    assert is_image_space(image.observation_space) and image.spec.max_episode_steps == 1000
    frame, _ = raw.reset(seed=3)
    picture, _ = image.reset(seed=3)
    np.testing.assert_array_equal(picture, np.moveaxis(frame, -1, 0).astype(np.uint8) * 255)


@pytest.mark.parametrize("game", ["Breakout", "Seaquest"])
def test_minatar_image_channels_are_never_mistaken_for_rows(game):
    # Seaquest has 10 channels on a 10x10 board: SB3's guess of the channel axis (the smallest) ties there.
    pytest.importorskip("minatar")
    space = gym.make(f"MinAtarImage/{game}-v1").observation_space
    channels = gym.make(f"MinAtar/{game}-v1").observation_space.shape[-1]
    assert space.shape == (channels, 10, 10) and is_image_space_channels_first(space)


def test_minatar_image_rejects_other_observations():
    with pytest.raises(ValueError, match="MinAtar's boolean HxWxC frames"):
        MinAtarImage(gym.make("CartPole-v1"))
