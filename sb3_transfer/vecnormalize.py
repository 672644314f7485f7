"""Reading SB3's ``vecnormalize.pkl`` without running code from it, and carrying its statistics into a new env.

``VecNormalize.save`` (and rl-zoo3, beside every model it trains with ``normalize: true``) pickles the whole
``VecNormalize`` wrapper: its running statistics (``obs_rms``, ``ret_rms``: SB3's ``RunningMeanStd``, a dict of them
by key for dict observations), its settings (``clip_obs``, ``clip_reward``, ``gamma``, ``epsilon``, ``norm_obs``,
``norm_reward``, ``norm_obs_keys``, ``training``) and what its ``VecEnvWrapper`` holds (the observation and action
spaces with their random generators, the last observation and rewards, the env's metadata). ``pickle.load`` on such a
file runs whatever callables it names, so it is never used here. :func:`read_vecnormalize` unpickles with an
allow-list instead:

- numpy arrays, scalars and dtypes are recorded, never built by numpy's own pickle code: an array becomes a numpy
  array only when it is one of the statistics, and only after its shape times its item size was checked to be the
  number of bytes the file holds for it (a header claiming ``(10**9,)`` elements allocates nothing) and its dtype to
  be a plain number type;
- the classes of SB3, gymnasium's and gym's spaces and ``numpy.random`` (the spaces' generators) become inert
  stand-ins that record what the pickle passes them and run nothing; they are not even imported, so that files
  written by SB3 1.x, whose pickles name the old ``gym`` package, are read on a machine that only has gymnasium;
- ``collections.OrderedDict`` (gym's ``Dict`` space) and ``set`` / ``frozenset`` (pickle protocol 3 builds them by
  name) are allowed as they are: building them runs no code of the file;
- anything else (``builtins.eval``, ``os.system``, ``copyreg._reconstructor``, ``_codecs.encode``...) is refused with an
  :class:`~sb3_transfer.errors.UnsafeSourceError` naming it. SB3 writes pickle protocol 3 or above, which needs none
  of these.

The file is a stranger's, so what reading it costs is bounded: only a regular file is opened, at most
``MAX_VECNORMALIZE_BYTES`` are read, and the pickle is first walked without running it (``pickletools``) to check it is
well formed, holds at most ``MAX_PICKLE_OPCODES`` opcodes (each builds at most one object), that no length it declares
runs past its end and that no memo index it uses is larger than that count (CPython's unpickler sizes its memo by the
largest index, so one ``LONG_BINPUT`` of 2**31 would allocate 16 GiB). Each statistic is built once, from floats of 4
bytes or more (an array that two fields name is refused: 40 keys naming one array would build 40 copies of it), so
reading takes about three times the file's size plus ~100 bytes an opcode (~10 MB at the default limits).
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import pickletools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from gymnasium import spaces

from sb3_transfer.errors import InvalidSourceError, TransferConfigError, TransferError, UnsafeSourceError
from sb3_transfer.sources import MAX_STRING_CHARS, _clean, _find_file, _open_regular_file

#: The largest ``vecnormalize.pkl`` read. SB3 writes ~2 kB for vector observations and ~2 MB for 3x256x256 images
#: (two float64 arrays per normalised key), so 64 MiB leaves room for large images without letting a stranger's file
#: fill the memory.
MAX_VECNORMALIZE_BYTES = 64 * 2**20
#: The most pickle opcodes read. SB3 writes ~500 for a Box observation and ~200 more per key of a dict observation;
#: an opcode builds at most one object (~100 bytes), so this bounds the objects a file builds to ~10 MB.
MAX_PICKLE_OPCODES = 100_000

_WHAT = "VecNormalize statistics"
_EXPECTED = "a vecnormalize.pkl file (VecNormalize.save)"
# Modules whose classes and functions are met as inert stand-ins, by prefix; none is imported.
_STAND_IN_MODULES = ("stable_baselines3", "gymnasium.spaces", "gym.spaces", "numpy.random")
# numpy's modules before and after numpy 2 renamed numpy.core to numpy._core.
_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
# Plain number dtypes a statistic may have, as numpy's pickles name them ("<f8" is pickled as ("f8", ..., "<")).
_DTYPE_CODES = frozenset({"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"})
_BYTE_ORDERS = frozenset({"<", ">", "|", "="})
_MEMO_OPCODES = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


@dataclass(frozen=True)
class RunningStats:
    """
    One running mean and variance, as SB3's ``RunningMeanStd`` holds them (float64, read-only arrays).

    :param mean: The mean of each element of the observation (shape ``()`` for the return).
    :param var: The variance of each element, of the same shape.
    :param count: The number of samples the statistics were computed from (plus SB3's initial ``1e-4``).
    """

    mean: np.ndarray
    var: np.ndarray
    count: float

    def __eq__(self, other: object) -> bool:
        # Exactly equal statistics (the generated __eq__ would compare arrays with ==, which has no truth value).
        if not isinstance(other, RunningStats):
            return NotImplemented
        same = (np.array_equal(self.mean, other.mean), np.array_equal(self.var, other.var), self.count == other.count)
        return all(same) and self.mean.shape == other.mean.shape

    __hash__ = None  # type: ignore[assignment]  # arrays are not hashable


@dataclass(frozen=True)
class VecNormalizeStats:
    """
    What a ``vecnormalize.pkl`` holds that normalising needs: :func:`read_vecnormalize` makes it,
    :func:`apply_vecnormalize` and :func:`wrap_vecnormalize` carry it into an env.

    :param obs: The observation statistics: one :class:`RunningStats`, a dict of them by key for dict observations,
        ``None`` when observations are not normalised.
    :param ret: The statistics of the discounted return that rewards are scaled by.
    :param norm_obs: Whether observations are normalised.
    :param norm_reward: Whether rewards are normalised.
    :param clip_obs: Normalised observations are clipped to ``[-clip_obs, clip_obs]``.
    :param clip_reward: Normalised rewards are clipped to ``[-clip_reward, clip_reward]``.
    :param gamma: The discount of the return whose statistics scale the rewards.
    :param epsilon: Added to the variances before their square root.
    :param norm_obs_keys: The normalised keys of a dict observation (``None`` for other observations).
    :param observation_shape: The shape of the saved env's observations (a dict of shapes by key for dict
        observations), ``None`` when the file's observation space has no shape and observations are not normalised.
    :param source: The file, as shown in messages.
    """

    obs: RunningStats | dict[str, RunningStats] | None
    ret: RunningStats
    norm_obs: bool
    norm_reward: bool
    clip_obs: float
    clip_reward: float
    gamma: float
    epsilon: float
    norm_obs_keys: tuple[str, ...] | None
    observation_shape: tuple[int, ...] | dict[str, tuple[int, ...]] | None
    source: str = field(default="", compare=False)


def read_vecnormalize(path: str | os.PathLike) -> VecNormalizeStats:
    """
    Read the statistics and settings of a ``VecNormalize`` saved by SB3's ``VecNormalize.save`` (any SB3 release from
    1.0; rl-zoo3's ``vecnormalize.pkl``) without running code from the file, within the bounds of this module.

    :param path: The file.
    :return: The statistics, checked: finite means, finite non-negative variances of the means' shapes, positive
        finite counts, positive clip values.
    """
    path = _find_file(Path(path), _WHAT, suffix=None)
    label = f"'{_clean(path, 4 * MAX_STRING_CHARS)}'"
    with _open_regular_file(path, label, _WHAT, _EXPECTED) as file:
        if os.fstat(file.fileno()).st_size > MAX_VECNORMALIZE_BYTES:
            raise _too_large(label)
        content = file.read(MAX_VECNORMALIZE_BYTES + 1)  # the size may have changed since fstat
    if len(content) > MAX_VECNORMALIZE_BYTES:
        raise _too_large(label)
    _check_opcodes(content, label)
    try:
        root = _Unpickler(io.BytesIO(content), label).load()
    except TransferError:
        raise
    except Exception as e:  # the walk above found a well-formed pickle, so this is one that builds nothing sensible
        raise InvalidSourceError(f"{label} is damaged: its pickle cannot be read ({type(e).__name__}: {_clean(e)}).") from e
    return _stats(root, label)


def apply_vecnormalize(stats: VecNormalizeStats, venv: VecNormalize) -> None:
    """
    Give a ``VecNormalize`` the statistics and settings of ``stats``, as ``VecNormalize.load`` would, except
    ``training``, which stays the wrapper's own.

    :param stats: What :func:`read_vecnormalize` read.
    :param venv: The wrapper to set.
    :raises TransferConfigError: The wrapper's observations are not those the statistics are for.
    """
    if not isinstance(venv, VecNormalize):
        raise TransferConfigError(f"apply_vecnormalize sets a VecNormalize wrapper, not {type(venv).__name__}.")
    _check_target(stats, venv.observation_space)
    venv.norm_obs, venv.norm_reward = stats.norm_obs, stats.norm_reward
    venv.clip_obs, venv.clip_reward = stats.clip_obs, stats.clip_reward
    venv.gamma, venv.epsilon = stats.gamma, stats.epsilon
    venv.norm_obs_keys = list(stats.norm_obs_keys) if stats.norm_obs_keys is not None else None
    if isinstance(stats.obs, dict):
        venv.obs_rms = {key: _running_mean_std(s) for key, s in stats.obs.items()}
    elif stats.obs is not None:
        venv.obs_rms = _running_mean_std(stats.obs)
    venv.ret_rms = _running_mean_std(stats.ret)


def wrap_vecnormalize(stats: VecNormalizeStats, venv: VecEnv, training: bool = True) -> VecNormalize:
    """
    Wrap ``venv`` in a new ``VecNormalize`` that normalises as the saved one did.

    :param stats: What :func:`read_vecnormalize` read.
    :param venv: The env to wrap.
    :param training: Keep updating the statistics from ``venv`` (fine-tuning on it); ``False`` to keep them as read
        (evaluation).
    :return: The wrapper.
    :raises TransferConfigError: ``venv``'s observations are not those the statistics are for.
    """
    _check_target(stats, venv.observation_space)
    wrapper = VecNormalize(
        venv,
        training=training,
        norm_obs=stats.norm_obs,
        norm_reward=stats.norm_reward,
        clip_obs=stats.clip_obs,
        clip_reward=stats.clip_reward,
        gamma=stats.gamma,
        epsilon=stats.epsilon,
        norm_obs_keys=list(stats.norm_obs_keys) if stats.norm_obs_keys is not None else None,
    )
    apply_vecnormalize(stats, wrapper)
    return wrapper


def _too_large(label: str) -> InvalidSourceError:
    return InvalidSourceError(
        f"{label} is larger than {MAX_VECNORMALIZE_BYTES} bytes (sb3_transfer.vecnormalize.MAX_VECNORMALIZE_BYTES), "
        "more than VecNormalize statistics take; refused."
    )


def _check_opcodes(content: bytes, label: str) -> None:
    """Walk the pickle without running it: well formed, few opcodes, no length or memo index beyond what it holds."""
    try:
        position = 0
        for count, (opcode, arg, position) in enumerate(pickletools.genops(io.BytesIO(content)), start=1):
            if count > MAX_PICKLE_OPCODES:
                raise InvalidSourceError(
                    f"{label} holds more than {MAX_PICKLE_OPCODES} pickle opcodes "
                    "(sb3_transfer.vecnormalize.MAX_PICKLE_OPCODES), more than VecNormalize statistics take; refused."
                )
            if opcode.name in _MEMO_OPCODES and arg >= MAX_PICKLE_OPCODES:
                raise InvalidSourceError(f"{label} is damaged: its pickle uses memo index {arg} (it builds fewer objects).")
            if opcode.name == "FRAME" and arg > len(content) - position:
                raise InvalidSourceError(
                    f"{label} is damaged, truncated or not a pickle: a frame claims {arg} bytes, "
                    f"{len(content) - position} remain."
                )
    except TransferError:
        raise
    except Exception as e:  # pickletools raises ValueError mostly, but any error here means the bytes are no pickle
        raise InvalidSourceError(f"{label} is damaged, truncated or not a pickle: {_clean(e)}.") from e
    if position != len(content) - 1:  # the position of STOP, which genops ends at
        raise InvalidSourceError(f"{label} is damaged: it holds {len(content) - position - 1} bytes after its pickle.")


class _StandIn:
    """
    An object of a class the file names, kept as an inert record of what the pickle passed to build it: its
    subclasses are made per name and run no code of the class they stand for.
    """

    __slots__ = ("args", "state")
    pickled_name: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> _StandIn:
        stand_in = super().__new__(cls)
        stand_in.args, stand_in.state = args, None
        return stand_in

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # __new__ recorded the arguments (NEWOBJ calls __new__ alone, REDUCE both)

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Marker:
    """A name the file may use as an argument only (``numpy.ndarray``): not callable, builds nothing."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_NDARRAY = _Marker("numpy.ndarray")


class _DtypeRecord:
    """A ``numpy.dtype`` as pickled: ``dtype(code, align, copy)`` then a state tuple with the byte order."""

    __slots__ = ("code", "state")

    def __init__(self, code: Any = None, *args: Any) -> None:
        self.code, self.state = code, None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ArrayRecord:
    """A numpy array or scalar as pickled, its bytes kept until it is checked and built by :func:`_to_array`."""

    __slots__ = ("built", "data", "dtype", "fortran", "kind", "shape")

    def __init__(self, kind: Any, shape: Any = None, dtype: Any = None, fortran: Any = False, data: Any = None) -> None:
        self.kind, self.shape, self.dtype, self.fortran, self.data = kind, shape, dtype, fortran, data
        self.built = False

    def __setstate__(self, state: Any) -> None:
        # ndarray.__reduce__'s state: (version, shape, dtype, is_fortran, raw bytes); numpy < 1.0 left out the version.
        if isinstance(state, tuple) and len(state) in (4, 5):
            self.shape, self.dtype, self.fortran, self.data = state[-4:]
        else:
            self.shape = self.data = None


def _reconstruct(kind: Any, *args: Any) -> _ArrayRecord:
    """Stands for numpy's ``_reconstruct(ndarray, (0,), b"b")``: the empty array that the state then fills."""
    return _ArrayRecord(kind)


def _scalar(dtype: Any, data: Any = None) -> _ArrayRecord:
    """Stands for numpy's ``scalar(dtype, bytes)``: how a numpy scalar (e.g. ``np.float64``) is pickled."""
    return _ArrayRecord(_NDARRAY, (), dtype, False, data)


def _frombuffer(data: Any, dtype: Any, shape: Any, order: Any = "C") -> _ArrayRecord:
    """Stands for numpy's ``_frombuffer(buffer, dtype, shape, order)``: an array in pickle protocol 5."""
    return _ArrayRecord(_NDARRAY, shape, dtype, order == "F", data)


class _Unpickler(pickle.Unpickler):
    """An unpickler that builds only plain data, inert stand-ins and records of numpy arrays (see the module)."""

    def __init__(self, file: io.BytesIO, label: str) -> None:
        super().__init__(file)
        self.label = label
        self.stand_ins: dict[str, type[_StandIn]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module in _MULTIARRAY and name in ("_reconstruct", "scalar"):
            return _reconstruct if name == "_reconstruct" else _scalar
        if module in _NUMERIC and name == "_frombuffer":
            return _frombuffer
        allowed: dict[tuple[str, str], Any] = {
            ("numpy", "ndarray"): _NDARRAY,
            ("numpy", "dtype"): _DtypeRecord,
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("builtins", "set"): set,
            ("builtins", "frozenset"): frozenset,
        }
        if (module, name) in allowed:
            return allowed[module, name]
        if any(module == m or module.startswith(m + ".") for m in _STAND_IN_MODULES):
            full = f"{module}.{name}"
            if full not in self.stand_ins:
                self.stand_ins[full] = type(name, (_StandIn,), {"__slots__": (), "pickled_name": full})
            return self.stand_ins[full]
        raise UnsafeSourceError(
            f"{self.label} names {_clean(module)}.{_clean(name)}, which VecNormalize statistics do not need and "
            "reading it could run code: refused. Only numpy arrays and SB3's, gymnasium's and gym's classes are read "
            "from such a file (as inert records); SB3's VecNormalize.load reads a file whose author you trust."
        )


def _stats(root: Any, label: str) -> VecNormalizeStats:
    """The checked statistics of the unpickled wrapper."""
    if not (isinstance(root, _StandIn) and root.pickled_name.endswith(".VecNormalize")):
        raise InvalidSourceError(f"{label} holds {_kind(root)}, not SB3's VecNormalize (VecNormalize.save).")
    state = root.state
    if not isinstance(state, dict):
        raise InvalidSourceError(f"{label} is damaged: its VecNormalize has no attributes (found {_kind(state)}).")
    norm_obs = _flag(state, "norm_obs", label)
    norm_reward = _flag(state, "norm_reward", label)
    keys = _field(state, "norm_obs_keys", label, default=None)
    if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise InvalidSourceError(f"{label}: field 'norm_obs_keys' is {_kind(keys)}, not a list of key names.")
    shape = _observation_shape(_field(state, "observation_space", label), label, required=norm_obs)
    obs: RunningStats | dict[str, RunningStats] | None = None
    if norm_obs:  # SB3 keeps no observation statistics otherwise (1.x made some, which it does not use)
        recorded = _field(state, "obs_rms", label)
        if isinstance(recorded, dict):
            if keys is None:  # saved before SB3 1.6 named the keys: all of them, as SB3's __setstate__ reads it
                keys = list(recorded)
            if set(keys) != set(recorded):
                raise InvalidSourceError(
                    f"{label}: field 'obs_rms' has statistics for keys {_names(recorded)}, "
                    f"but 'norm_obs_keys' names {_names(keys)}."
                )
            obs = {_key(k, label): _running(v, f"obs_rms[{_clean(repr(k))}]", label) for k, v in recorded.items()}
            if not isinstance(shape, dict):
                raise InvalidSourceError(f"{label}: field 'obs_rms' is a dict, but its observation space is not a Dict.")
            for key, stats in obs.items():
                _same_shape(stats, shape.get(key), f"obs_rms[{_clean(repr(key))}]", label)
        else:
            obs = _running(recorded, "obs_rms", label)
            if isinstance(shape, dict):
                raise InvalidSourceError(f"{label}: its observation space is a Dict, but field 'obs_rms' is no dict.")
            _same_shape(obs, shape, "obs_rms", label)
    ret = _running(_field(state, "ret_rms", label), "ret_rms", label)
    if ret.mean.shape != ():
        raise InvalidSourceError(f"{label}: field 'ret_rms.mean' has shape {ret.mean.shape}, not () (one return).")
    return VecNormalizeStats(
        obs=obs,
        ret=ret,
        norm_obs=norm_obs,
        norm_reward=norm_reward,
        clip_obs=_number(state, "clip_obs", label, lambda x: x > 0, "a positive number"),
        clip_reward=_number(state, "clip_reward", label, lambda x: x > 0, "a positive number"),
        gamma=_number(state, "gamma", label, lambda x: 0 <= x <= 1, "a discount in [0, 1]"),
        epsilon=_number(state, "epsilon", label, lambda x: 0 <= x < math.inf, "a finite number >= 0"),
        norm_obs_keys=tuple(keys) if keys is not None else None,
        observation_shape=shape,
        source=label,
    )


_MISSING = object()


def _field(state: Mapping[Any, Any], name: str, label: str, default: Any = _MISSING, owner: str = "") -> Any:
    """The attribute ``name`` of an unpickled object (``owner``: its field, for the message)."""
    if name in state:
        return state[name]
    if default is _MISSING:
        shown = f"{owner}.{name}" if owner else name
        raise InvalidSourceError(f"{label} is damaged or not VecNormalize statistics: field '{shown}' is missing.")
    return default


def _flag(state: Mapping[Any, Any], name: str, label: str) -> bool:
    value = _field(state, name, label)
    if isinstance(value, _ArrayRecord):  # a numpy bool
        array = _to_array(value, name, label, "b")
        value = bool(array) if array.shape == () else value
    if not isinstance(value, bool):
        raise InvalidSourceError(f"{label}: field '{name}' is {_kind(value)}, not True or False.")
    return value


def _number(state: Mapping[Any, Any], name: str, label: str, valid: Callable[[float], bool], expected: str) -> float:
    value = _to_float(_field(state, name, label), name, label)
    if value is None or math.isnan(value) or not valid(value):
        shown = _kind(_field(state, name, label)) if value is None else repr(value)
        raise InvalidSourceError(f"{label}: field '{name}' is {shown}, not {expected}.")
    return value


def _to_float(value: Any, name: str, label: str) -> float | None:
    """A Python or numpy (recorded) number as a float; ``None`` for anything else."""
    if isinstance(value, _ArrayRecord):
        array = _to_array(value, name, label, "fiu")
        return float(array) if array.shape == () else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        return math.inf


def _running(recorded: Any, name: str, label: str) -> RunningStats:
    """A recorded ``RunningMeanStd``: finite means, finite non-negative variances of the same shape, a positive count."""
    if not (isinstance(recorded, _StandIn) and recorded.pickled_name.endswith(".RunningMeanStd")):
        raise InvalidSourceError(f"{label}: field '{name}' is {_kind(recorded)}, not SB3's RunningMeanStd.")
    state = recorded.state
    if not isinstance(state, dict):
        raise InvalidSourceError(f"{label}: field '{name}' is damaged (its attributes are {_kind(state)}).")
    mean = _to_array(_field(state, "mean", label, owner=name), f"{name}.mean", label, "f")
    var = _to_array(_field(state, "var", label, owner=name), f"{name}.var", label, "f")
    count = _to_float(_field(state, "count", label, owner=name), f"{name}.count", label)
    if mean.shape != var.shape:
        raise InvalidSourceError(f"{label}: field '{name}' has a mean of shape {mean.shape} but a variance of {var.shape}.")
    if not np.isfinite(mean).all():
        raise InvalidSourceError(f"{label}: field '{name}.mean' holds NaN or infinite values.")
    if not (np.isfinite(var).all() and (var >= 0).all()):
        raise InvalidSourceError(f"{label}: field '{name}.var' holds NaN, infinite or negative values.")
    if count is None or not (0 < count < math.inf):
        shown = repr(count) if count is not None else _kind(state.get("count"))
        raise InvalidSourceError(f"{label}: field '{name}.count' is {shown}, not a positive finite number.")
    return RunningStats(mean=mean, var=var, count=count)


def _to_array(recorded: Any, name: str, label: str, kinds: str) -> np.ndarray:
    """
    A recorded numpy array built as a read-only float64 array (booleans as bool), after checking that its dtype is a
    plain number type of ``kinds`` (floats of 4 bytes or more: what is built is at most twice the bytes read), that its
    shape is what its bytes hold (nothing is allocated for a claimed shape) and that no other field was built from it
    (a pickle may name one array from many places: each would be another copy).
    """
    if not (isinstance(recorded, _ArrayRecord) and recorded.kind is _NDARRAY):
        raise InvalidSourceError(f"{label}: field '{name}' is {_kind(recorded)}, not a numpy array.")
    if recorded.built:
        raise InvalidSourceError(
            f"{label}: field '{name}' is the same array as another field; SB3 writes an array per statistic. Refused."
        )
    dtype = _to_dtype(recorded.dtype, name, label)
    if dtype.kind not in kinds or (kinds == "f" and dtype.itemsize < 4):
        expected = "floats of 4 or 8 bytes" if kinds == "f" else "numbers"
        raise InvalidSourceError(f"{label}: field '{name}' is an array of {dtype}, not of {expected}.")
    shape, data = recorded.shape, recorded.data
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise InvalidSourceError(f"{label}: field '{name}' is damaged: its shape is {_kind(shape)}.")
    if not isinstance(data, bytes | bytearray):
        raise InvalidSourceError(f"{label}: field '{name}' is damaged: its data is {_kind(data)}, not bytes.")
    claimed = math.prod(shape) * dtype.itemsize  # Python ints: a huge claimed shape cannot overflow
    if claimed != len(data):
        shown = _clean(shape, 80)
        raise InvalidSourceError(
            f"{label}: field '{name}' claims shape {shown} of {dtype} ({claimed} bytes) but holds {len(data)} bytes."
        )
    array = np.frombuffer(data, dtype).reshape(shape, order="F" if recorded.fortran is True else "C")
    array = array.astype(bool if dtype.kind == "b" else np.float64)  # a copy, in native byte order
    array.flags.writeable = False  # the dataclasses holding it are frozen
    recorded.built = True
    return array


def _to_dtype(recorded: Any, name: str, label: str) -> np.dtype:
    """A recorded ``numpy.dtype``: one of the plain number types (or bool), in a byte order, without fields."""
    state = recorded.state if isinstance(recorded, _DtypeRecord) else None
    code = recorded.code if isinstance(recorded, _DtypeRecord) else None
    if code == "b1" and isinstance(state, tuple) and len(state) >= 5 and state[1] == "|":
        return np.dtype(bool)
    if not (
        code in _DTYPE_CODES
        and isinstance(state, tuple)
        and len(state) >= 5
        and state[1] in _BYTE_ORDERS
        and state[2:5] == (None, None, None)  # no sub-array, no field names, no fields
    ):
        shown = _clean(repr(code), 40) if isinstance(code, str) else _kind(recorded)
        raise InvalidSourceError(f"{label}: field '{name}' has dtype {shown}, not a plain number type.")
    return np.dtype(code).newbyteorder(state[1])


def _observation_shape(space: Any, label: str, required: bool) -> tuple[int, ...] | dict[str, tuple[int, ...]] | None:
    """The shape of a recorded gymnasium / gym space, or a dict of them for a Dict space."""
    state = space.state if isinstance(space, _StandIn) else None
    if not isinstance(state, dict):
        if not required:
            return None
        raise InvalidSourceError(f"{label}: field 'observation_space' is {_kind(space)}, not a gymnasium or gym space.")
    if space.pickled_name.endswith(".Dict"):
        recorded = state.get("spaces")
        if not isinstance(recorded, dict):
            raise InvalidSourceError(f"{label}: field 'observation_space' is a Dict space without its spaces.")
        shapes = {_key(k, label): _space_shape(v, f"observation_space[{_clean(repr(k))}]", label) for k, v in recorded.items()}
        return {k: s for k, s in shapes.items() if s is not None}
    shape = _space_shape(space, "observation_space", label)
    if shape is None and required:
        raise InvalidSourceError(f"{label}: field 'observation_space' has no shape.")
    return shape


def _space_shape(space: Any, name: str, label: str) -> tuple[int, ...] | None:
    # gymnasium and gym >= 0.22 keep it as _shape; earlier gym as shape.
    state = space.state if isinstance(space, _StandIn) else None
    shape = state.get("_shape", state.get("shape")) if isinstance(state, dict) else None
    if shape is None:
        return None
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise InvalidSourceError(f"{label}: field '{name}' has shape {_kind(shape)}, not a tuple of sizes.")
    return shape


def _same_shape(stats: RunningStats, shape: tuple[int, ...] | None, name: str, label: str) -> None:
    if stats.mean.shape != shape:
        raise InvalidSourceError(
            f"{label}: field '{name}' has statistics of shape {stats.mean.shape}, but its observation space "
            f"{'has shape ' + str(shape) if shape is not None else 'has no such key'}."
        )


def _key(key: Any, label: str) -> str:
    if not isinstance(key, str):
        raise InvalidSourceError(f"{label}: a key of its dict observation is {_kind(key)}, not a string.")
    return key


def _names(keys: Any) -> str:
    return _clean(", ".join(repr(k) if isinstance(k, str) else _kind(k) for k in keys))


def _kind(value: Any) -> str:
    """What a value from the file is, for a message: its recorded class, or a short repr of a plain value."""
    if isinstance(value, _StandIn):
        return f"a {_clean(value.pickled_name)}"
    if isinstance(value, _ArrayRecord | _DtypeRecord | _Marker):
        return "a numpy array" if isinstance(value, _ArrayRecord) else "a numpy name"
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if abs(value) < 10**20 else f"a {value.bit_length()}-bit integer"
    if isinstance(value, str):
        return _clean(repr(value), 80)
    return f"a {type(value).__name__}"


def _check_target(stats: VecNormalizeStats, space: spaces.Space) -> None:
    """The env's observations are those the statistics are for: the same keys and shapes where normalised."""
    source = stats.source or "the VecNormalize statistics"
    if isinstance(stats.obs, dict):
        if not isinstance(space, spaces.Dict):
            raise TransferConfigError(
                f"{source} are for dict observations (keys {_names(stats.obs)}); the environment's observation space "
                f"is {type(space).__name__} of shape {space.shape}."
            )
        for key, stats_of_key in stats.obs.items():
            if key not in space.spaces:
                raise TransferConfigError(
                    f"{source} normalise observation key {key!r}, which the environment's observations do not have "
                    f"(keys {_names(space.spaces)})."
                )
            if space.spaces[key].shape != stats_of_key.mean.shape:
                raise TransferConfigError(
                    f"{source} are for observations {key!r} of shape {stats_of_key.mean.shape}; the environment's "
                    f"have shape {space.spaces[key].shape}."
                )
    elif stats.obs is not None:
        if isinstance(space, spaces.Dict):
            raise TransferConfigError(
                f"{source} are for observations of shape {stats.obs.mean.shape}; the environment's observations are "
                f"a dict (keys {_names(space.spaces)})."
            )
        if space.shape != stats.obs.mean.shape:
            raise TransferConfigError(
                f"{source} are for observations of shape {stats.obs.mean.shape}; the environment's observations have "
                f"shape {space.shape}."
            )


def _running_mean_std(stats: RunningStats) -> RunningMeanStd:
    rms = RunningMeanStd(shape=stats.mean.shape)
    rms.mean, rms.var, rms.count = stats.mean.copy(), stats.var.copy(), stats.count  # writable copies: SB3 updates them
    return rms
