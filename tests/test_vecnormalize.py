"""read_vecnormalize reads SB3's vecnormalize.pkl as SB3's own VecNormalize.load does, without running code from it."""

import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import sb3_transfer.vecnormalize
from sb3_transfer.errors import InvalidSourceError, SourceNotFoundError, TransferConfigError, UnsafeSourceError
from sb3_transfer.vecnormalize import (
    RunningStats,
    VecNormalizeStats,
    apply_vecnormalize,
    read_vecnormalize,
    wrap_vecnormalize,
)


class DictObsEnv(gym.Env):
    """A tiny env with dict observations: two Box keys of different shapes and a Discrete one (never normalised)."""

    observation_space = spaces.Dict(
        {
            "pos": spaces.Box(-1.0, 1.0, (3,), np.float32),
            "grid": spaces.Box(0.0, 5.0, (2, 2), np.float32),
            "flag": spaces.Discrete(2),
        }
    )
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return self._obs(), {}

    def step(self, action):
        self.steps += 1
        return self._obs(), float(self.np_random.normal() + action), self.steps >= 5, False, {}

    def _obs(self):
        return {
            "pos": self.np_random.uniform(-1, 1, 3).astype(np.float32),
            "grid": self.np_random.uniform(0, 5, (2, 2)).astype(np.float32),
            "flag": int(self.np_random.integers(2)),
        }


ENVS = {
    "box": (lambda: gym.make("Pendulum-v1"), {}),
    "dict": (DictObsEnv, {"norm_obs_keys": ["pos", "grid"]}),
}


def _venv(name: str, seed: int = 0) -> DummyVecEnv:
    venv = DummyVecEnv([ENVS[name][0]])
    venv.seed(seed)
    venv.action_space.seed(seed)
    return venv


def _saved(tmp_path: Path, name: str = "box", steps: int = 30, edit=None, protocol: int | None = None) -> Path:
    """A VecNormalize of env ``name`` stepped ``steps`` times, optionally edited, saved as SB3 saves it."""
    venv = VecNormalize(_venv(name), **ENVS[name][1])
    venv.reset()
    for _ in range(steps):
        venv.step(np.array([venv.action_space.sample()]))
    if edit is not None:
        edit(venv)
    path = tmp_path / "vecnormalize.pkl"
    if protocol is None:
        venv.save(str(path))
    else:
        with open(path, "wb") as file:
            pickle.dump(venv, file, protocol=protocol)
    return path


def _rollout(venv, steps: int = 12) -> list:
    venv.action_space.seed(1)
    observations = [venv.reset()]
    for _ in range(steps):
        observations.append(venv.step(np.array([venv.action_space.sample()]))[:2])
    return observations


def _flatten(values) -> list[np.ndarray]:
    if isinstance(values, dict):
        return [a for key in sorted(values) for a in _flatten(values[key])]
    if isinstance(values, list | tuple):
        return [a for value in values for a in _flatten(value)]
    return [np.asarray(values)]


def _assert_same_rms(ours, theirs) -> None:
    assert np.array_equal(ours.mean, theirs.mean) and np.array_equal(ours.var, theirs.var)
    assert ours.count == theirs.count


@pytest.mark.parametrize("name", ["box", "dict"])
@pytest.mark.parametrize("training", [False, True])
def test_round_trip_matches_sb3s_own_load(tmp_path, name, training):
    path = _saved(tmp_path, name)
    loaded = VecNormalize.load(str(path), _venv(name, seed=3))
    loaded.training = training
    stats = read_vecnormalize(path)
    ours = wrap_vecnormalize(stats, _venv(name, seed=3), training=training)

    if name == "dict":
        assert stats.norm_obs_keys == ("pos", "grid") and set(stats.obs) == {"pos", "grid"}
        assert stats.observation_shape == {"pos": (3,), "grid": (2, 2), "flag": ()}
        for key in stats.obs:
            _assert_same_rms(stats.obs[key], loaded.obs_rms[key])
    else:
        assert stats.norm_obs_keys is None and stats.observation_shape == (3,)
        _assert_same_rms(stats.obs, loaded.obs_rms)
    _assert_same_rms(stats.ret, loaded.ret_rms)
    for setting in ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon"):
        assert getattr(stats, setting) == getattr(loaded, setting) == getattr(ours, setting), setting

    # Observations (dicts of them for dict observations) and rewards, step by step.
    for mine, theirs in zip(_flatten(_rollout(ours)), _flatten(_rollout(loaded)), strict=True):
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs)


def test_apply_sets_an_existing_wrapper_and_keeps_its_training(tmp_path):
    stats = read_vecnormalize(_saved(tmp_path))
    venv = VecNormalize(_venv("box"), training=False, clip_obs=3.0, gamma=0.5)
    apply_vecnormalize(stats, venv)
    assert venv.training is False and venv.clip_obs == stats.clip_obs and venv.gamma == stats.gamma
    _assert_same_rms(venv.obs_rms, stats.obs)
    venv.obs_rms.mean[0] = 99.0  # the wrapper holds copies: the read statistics stay as read
    assert stats.obs.mean[0] != 99.0 and not stats.obs.mean.flags.writeable


@pytest.mark.parametrize(
    "name, env, match",
    [
        (
            "box",
            lambda: gym.make("CartPole-v1"),
            r"observations of shape \(3,\); the environment's observations have shape \(4,\)",
        ),
        ("box", DictObsEnv, r"shape \(3,\); the environment's observations are a dict"),
        ("dict", lambda: gym.make("Pendulum-v1"), r"are for dict observations"),
    ],
)
def test_a_target_with_other_observations_is_refused(tmp_path, name, env, match):
    stats = read_vecnormalize(_saved(tmp_path, name))
    with pytest.raises(TransferConfigError, match=match):
        wrap_vecnormalize(stats, DummyVecEnv([env]))


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_every_pickle_protocol_sb3_writes_is_read(tmp_path, protocol):
    # Protocol 3: Python 3.7's default (SB3 1.x); 5: Python 3.14's default, where numpy pickles arrays with _frombuffer.
    expected = read_vecnormalize(_saved(tmp_path))
    assert read_vecnormalize(_saved(tmp_path, protocol=protocol)) == expected


def test_an_sb3_1x_pickle_naming_gym_and_old_numpy_is_read(tmp_path):
    # SB3 1.x wrote protocol 3 (Python 3.7) with gym's spaces and numpy 1.x's numpy.core; neither is imported here.
    path = _saved(tmp_path, protocol=3)
    content = path.read_bytes()
    old = content.replace(b"cgymnasium.spaces.box\n", b"cgym.spaces.box\n").replace(b"numpy._core.", b"numpy.core.")
    assert old != content and b"gymnasium" not in old
    path.write_bytes(old)
    stats = read_vecnormalize(path)
    assert stats.observation_shape == (3,) and stats.obs.mean.shape == (3,)


def _write_marker(path):
    Path(path).write_text("the pickle ran code")


class _RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return _write_marker, (str(self.path),)


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    path = _saved(tmp_path, edit=lambda venv: setattr(venv, "extra", _RunsCode(marker)))
    with pytest.raises(UnsafeSourceError, match=r"vecnormalize\.pkl' names .*_write_marker.*refused"):
        read_vecnormalize(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name, args",
    [
        (b"builtins", b"eval", b"X\x01\x00\x00\x000\x85"),
        (b"os", b"system", b"X\x06\x00\x00\x00exit 0\x85"),
        (b"subprocess", b"call", b"X\x04\x00\x00\x00true\x85"),
        (b"copyreg", b"_reconstructor", b")"),
        (b"_codecs", b"encode", b"X\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86"),
        (b"numpy.core.multiarray", b"_vec_string", b")"),
    ],
)
def test_names_outside_the_allow_list_are_refused(tmp_path, module, name, args):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x03c" + module + b"\n" + name + b"\n" + args + b"R.")  # GLOBAL, arguments, REDUCE
    shown = f"{module.decode()}.{name.decode()}"
    with pytest.raises(UnsafeSourceError, match=rf"evil\.pkl' names {shown}"):
        read_vecnormalize(path)


class _HugeArray:
    """Pickles as numpy does an array, with a header claiming a billion float64 (8 GB) and 8 bytes of data."""

    def __init__(self, shape):
        self.shape = shape

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (0,), b"b"), (1, self.shape, np.dtype("f8"), False, b"\0" * 8)


@pytest.mark.parametrize("shape", [(10**9,), (2**40, 2**40), (3, 0)])
def test_an_array_claiming_more_than_its_data_is_refused_without_allocating(tmp_path, shape):
    def edit(venv):
        venv.obs_rms.var = _HugeArray(shape)

    with pytest.raises(InvalidSourceError, match=r"'obs_rms.var' claims shape .* of float64 \(\d+ bytes\) but holds 8"):
        read_vecnormalize(_saved(tmp_path, edit=edit))


def _set(rms_name, attribute, value):
    def edit(venv):
        rms = getattr(venv, rms_name)
        if isinstance(value, str) and value == "nan-element":
            getattr(rms, attribute)[0] = np.nan
        else:
            setattr(rms, attribute, value)

    return edit


@pytest.mark.parametrize(
    "edit, match",
    [
        (_set("obs_rms", "var", "nan-element"), r"'obs_rms.var' holds NaN"),
        (_set("obs_rms", "mean", "nan-element"), r"'obs_rms.mean' holds NaN"),
        (_set("obs_rms", "var", -np.ones(3)), r"'obs_rms.var' holds NaN, infinite or negative"),
        (_set("obs_rms", "var", np.ones(4)), r"'obs_rms' has a mean of shape \(3,\) but a variance of \(4,\)"),
        (_set("obs_rms", "count", 0.0), r"'obs_rms.count' is 0.0, not a positive finite number"),
        (_set("obs_rms", "count", float("inf")), r"'obs_rms.count' is inf"),
        (_set("ret_rms", "var", np.float64("nan")), r"'ret_rms.var' holds NaN"),
        (_set("obs_rms", "mean", np.array(["a", "b", "c"])), r"'obs_rms.mean' has dtype '.*', not a plain number type"),
        (_set("obs_rms", "mean", [0.0, 0.0, 0.0]), r"'obs_rms.mean' is a list, not a numpy array"),
        (lambda venv: setattr(venv, "clip_obs", -1.0), r"'clip_obs' is -1.0, not a positive number"),
        (lambda venv: setattr(venv, "clip_reward", "10"), r"'clip_reward' is '10', not a positive number"),
        (lambda venv: setattr(venv, "gamma", float("nan")), r"'gamma' is nan"),
        (lambda venv: setattr(venv, "norm_obs", 1), r"'norm_obs' is 1, not True or False"),
        (lambda venv: delattr(venv, "ret_rms"), r"field 'ret_rms' is missing"),
        (lambda venv: delattr(venv.obs_rms, "count"), r"field 'obs_rms.count' is missing"),
        (lambda venv: setattr(venv, "obs_rms", {"a": venv.obs_rms}), r"'obs_rms' is a dict, but its observation space"),
    ],
)
def test_bad_or_missing_fields_are_refused_naming_them(tmp_path, edit, match):
    with pytest.raises(InvalidSourceError, match=match):
        read_vecnormalize(_saved(tmp_path, edit=edit))


def test_a_file_over_the_size_limit_is_refused(tmp_path, monkeypatch):
    path = _saved(tmp_path)
    monkeypatch.setattr(sb3_transfer.vecnormalize, "MAX_VECNORMALIZE_BYTES", path.stat().st_size - 1)
    with pytest.raises(InvalidSourceError, match=r"larger than .* bytes .*MAX_VECNORMALIZE_BYTES"):
        read_vecnormalize(path)


def test_a_pickle_of_too_many_opcodes_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sb3_transfer.vecnormalize, "MAX_PICKLE_OPCODES", 100)
    with pytest.raises(InvalidSourceError, match=r"more than 100 pickle opcodes .*MAX_PICKLE_OPCODES"):
        read_vecnormalize(_saved(tmp_path))


def test_a_huge_memo_index_is_refused_before_unpickling(tmp_path):
    # CPython's unpickler would size its memo for index 2**31 - 1 (16 GiB) on reading this LONG_BINPUT.
    path = tmp_path / "memo.pkl"
    path.write_bytes(b"\x80\x04N" + b"r\xff\xff\xff\x7f" + b".")
    with pytest.raises(InvalidSourceError, match="memo index 2147483647"):
        read_vecnormalize(path)


@pytest.mark.parametrize("cut", [0, 1, 10, 0.5, -1])
def test_a_truncated_file_is_refused(tmp_path, cut):
    path = _saved(tmp_path)
    content = path.read_bytes()
    path.write_bytes(content[: int(cut * len(content)) if isinstance(cut, float) else cut])
    with pytest.raises(InvalidSourceError, match=r"vecnormalize\.pkl' is damaged, truncated or not a pickle"):
        read_vecnormalize(path)


@pytest.mark.parametrize(
    "content, match",
    [
        (pickle.dumps({"obs_rms": 1}), r"holds a dict, not SB3's VecNormalize"),
        (pickle.dumps(np.zeros(3)), r"holds a numpy array, not SB3's VecNormalize"),
        (pickle.dumps(None) + b"junk", r"holds 4 bytes after its pickle"),
        (b"PK\x03\x04 not a pickle", r"damaged, truncated or not a pickle"),
    ],
)
def test_other_files_are_refused(tmp_path, content, match):
    path = tmp_path / "other.pkl"
    path.write_bytes(content)
    with pytest.raises(InvalidSourceError, match=match):
        read_vecnormalize(path)


def test_a_missing_file_or_a_folder_is_refused(tmp_path):
    with pytest.raises(SourceNotFoundError, match=r"VecNormalize statistics '.*missing\.pkl' does not exist"):
        read_vecnormalize(tmp_path / "missing.pkl")
    with pytest.raises(InvalidSourceError, match=r"is a directory, not a vecnormalize\.pkl file"):
        read_vecnormalize(tmp_path)


def test_the_statistics_are_a_frozen_value():
    stats = VecNormalizeStats(
        obs=None,
        ret=RunningStats(mean=np.zeros(()), var=np.ones(()), count=1.0),
        norm_obs=False,
        norm_reward=True,
        clip_obs=10.0,
        clip_reward=10.0,
        gamma=0.99,
        epsilon=1e-8,
        norm_obs_keys=None,
        observation_shape=(3,),
    )
    with pytest.raises(AttributeError):
        stats.gamma = 0.5  # type: ignore[misc]
    venv = wrap_vecnormalize(stats, _venv("box"), training=False)
    assert venv.norm_obs is False and np.array_equal(venv.normalize_obs(np.ones((1, 3))), np.ones((1, 3)))


def test_an_array_named_by_two_statistics_is_refused(tmp_path):
    """A pickle may name one array from many places; built once per place, a small file would fill the memory."""
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]))
    venv.obs_rms.var = venv.obs_rms.mean  # one array, pickled once and named twice
    venv.save(tmp_path / "shared.pkl")
    with pytest.raises(InvalidSourceError, match=r"'obs_rms\.var' is the same array as another field"):
        read_vecnormalize(tmp_path / "shared.pkl")


def test_statistics_of_small_or_integer_types_are_refused(tmp_path):
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]))
    venv.obs_rms.mean = venv.obs_rms.mean.astype(np.uint8)  # 8 times as large once built as float64
    venv.save(tmp_path / "uint8.pkl")
    with pytest.raises(InvalidSourceError, match=r"'obs_rms\.mean' is an array of uint8, not of floats of 4 or 8 bytes"):
        read_vecnormalize(tmp_path / "uint8.pkl")
