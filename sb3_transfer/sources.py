"""Reading pretrained sources into a :class:`SourceNetwork`, without unpickling anything unless trusted.

A source is an SB3 ``.zip``, an SB3 algorithm, an SB3 policy, a plain ``nn.Module`` (an encoder, which becomes the
features extractor) or a state dict. SB3 zips are read from their JSON metadata and ``policy.pth`` alone, the latter
with ``torch.load(weights_only=True)``; the cloudpickled parts of ``data`` and the optimizer state are never
unpickled unless ``trust_source=True``. This is also what lets zips written by SB3 1.x, whose pickles name the old
``gym`` package, be read on a machine that only has gymnasium.

A zip is a stranger's file, so what reading it costs is bounded by what it really holds, never by the sizes its
headers declare. Each limit is a module constant, named in the error it raises, that a caller may raise or lower:

- only a regular file is opened (a FIFO or ``/dev/zero`` would never end);
- no single read of a zip's structure exceeds ``MAX_DIRECTORY_BYTES`` (its directory takes ~60 bytes a member);
- members are decompressed 64 KiB at a time and stopped at their limit: ``data`` at ``MAX_DATA_BYTES`` and
  ``MAX_JSON_ITEMS`` (a parsed JSON item costs up to ~25 times its text), ``_stable_baselines3_version`` at
  ``MAX_VERSION_BYTES``, ``policy.pth`` at ``MAX_WEIGHTS_BYTES``; only stored and deflated members are read, and a
  deflated one (or record) may unpack to at most ``MAX_INFLATION`` times its compressed size past
  ``MIN_INFLATION_BYTES`` (weights barely compress; a bomb does);
- ``policy.pth``, itself a zip in PyTorch's format, is unpacked the same way record by record (``MAX_WEIGHTS_BYTES``
  in all, ``MAX_PICKLE_BYTES`` for the pickle that describes the tensors, which is checked to be a well-formed pickle
  before PyTorch reads it) and packed again uncompressed, so that PyTorch allocates exactly the bytes read here;
- tensors must hold the data they claim: none is empty, none overlaps another (a storage is counted once, however
  many tensors view it), none is NaN or infinite unless ``allow_nonfinite=True``; no layer is wider than
  ``MAX_LAYER_SIZE``; activations are read only from an allow-list of element-wise ones; metadata that disagrees
  with the tensor shapes is refused; strings from the file are shown escaped and cut at ``MAX_STRING_CHARS``.

Peak memory: let ``W`` be the larger of ``policy.pth``'s size and what its records unpack to, at most
``MAX_WEIGHTS_BYTES`` (for a zip as SB3 writes it, the size of the online and target networks' tensors; for deflated
records, at most ``MAX_INFLATION`` times their compressed size or ``MIN_INFLATION_BYTES``). Reading a zip
takes at most about ``2 W`` (``policy.pth`` and its records while unpacking; the records and the tensors loaded from
them next), plus its ``data`` member (at most ``MAX_DATA_BYTES``; about twice its size while parsed, as
``MAX_JSON_ITEMS`` keeps its objects few) and up to ~80 MB of objects built from a pickle of ``MAX_PICKLE_BYTES``.
Measured (``benchmarks/results/reader_memory.md``): 196 MB to read a DQN whose ``policy.pth`` is 98 MB; 67 MB for a
2.6 MB file whose record inflates to 2.5 GiB, refused at ``MIN_INFLATION_BYTES``; at most 80 MB for every crafted file.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import pickle
import pickletools
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch as th
from stable_baselines3.common import torch_layers
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from torch import nn

from sb3_transfer import adapters, extractors
from sb3_transfer.encoders import build_module
from sb3_transfer.errors import (
    InvalidSourceError,
    SourceNotFoundError,
    TransferConfigError,
    TransferError,
    UnsafeSourceError,
    UnsupportedSourceError,
)
from sb3_transfer.groups import (
    ADAPTER,
    FEATURES,
    MODULE_LAYOUT,
    PolicyLayout,
    by_group,
    detect_layout,
    distinct,
    layout_of,
)

SUPPORTED_ALGOS = ("DQN", "QRDQN", "PPO", "A2C", "MaskablePPO", "SAC", "TQC", "TD3", "DDPG")

# Limits on what a file may make the reader allocate (see the module docstring), checked against the bytes really
# read, never against the sizes a header declares. Module constants, so that a caller may raise or lower them.
#: SB3's JSON metadata (``data``): a few kB, a few MB with image observations.
MAX_DATA_BYTES = 64 * 2**20
#: JSON items (counted as ``[``, ``{`` and ``,``) in ``data``: SB3 writes a few hundred; parsed, each costs ~25x its text.
MAX_JSON_ITEMS = 100_000
#: The ``_stable_baselines3_version`` member (SB3 writes a few bytes, e.g. ``2.3.2``).
MAX_VERSION_BYTES = 1024
#: ``pytorch_variables.pth``, and the records it unpacks to in all (SAC writes its entropy coefficient there: one
#: number, under 2 kB).
MAX_VARIABLES_BYTES = 2**20
#: The entropy coefficients a SAC / TQC file may give: outside them the file's value is not used (a note says so).
ENT_COEF_RANGE = (1e-8, 1e3)
#: ``policy.pth``, and the records it unpacks to in all.
MAX_WEIGHTS_BYTES = 2 * 2**30
#: How many times its compressed size a member or record may unpack to, past ``MIN_INFLATION_BYTES``. Weights barely
#: compress (deflate saves ~8% on float32 weights), so a record that inflates 1000-fold is a bomb, not a network.
MAX_INFLATION = 20
#: What any member or record may unpack to whatever its compressed size (small files of zeros are fine).
MIN_INFLATION_BYTES = 64 * 2**20
#: The pickle in ``policy.pth`` that describes its tensors: ~150 bytes a tensor.
MAX_PICKLE_BYTES = 2**20
#: Any single read of a zip's structure: its central directory (~60 bytes a member; SB3 writes 6 members). At least
#: ``_MIN_READ``, which zipfile needs to find the directory.
MAX_DIRECTORY_BYTES = 2**20
#: Largest layer size (units, features, filters) a source may have or an untrusted file may ask for.
MAX_LAYER_SIZE = 2**16
#: Longest string from a file shown in notes, descriptions and messages (the rest is cut).
MAX_STRING_CHARS = 200

# Decompressing this much at a time keeps a member's memory to what it really unpacks to.
_CHUNK = 2**16
# zipfile reads up to 64 KiB + 22 bytes at once looking for a zip's end record (past its comment).
_MIN_READ = 2**17
# What a legacy (PyTorch < 1.6) policy.pth starts with: a pickle of its magic number.
_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
# zipfile's two compressions that decompress within a byte limit (bzip2 and lzma would unpack a block at once).
_READABLE_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# Errors that reading a damaged zip raises (zipfile's own, and those of the structures it decodes).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    OSError,
    ValueError,
    struct.error,
    OverflowError,
    KeyError,
    IndexError,
)

#: Activations an untrusted file may name: element-wise, without parameters, built without arguments, and keeping the
#: layer's width (``GLU`` halves it, ``PReLU`` has weights, ``Threshold`` needs arguments, ``Softmax`` is not
#: element-wise), as ``{module: names}`` of their ``str()`` ``<class 'torch.nn.modules.<module>.<name>'>``.
SAFE_ACTIVATIONS: dict[str, frozenset[str]] = {
    "activation": frozenset(
        {
            "CELU",
            "ELU",
            "GELU",
            "Hardshrink",
            "Hardsigmoid",
            "Hardswish",
            "Hardtanh",
            "LeakyReLU",
            "LogSigmoid",
            "Mish",
            "RReLU",
            "ReLU",
            "ReLU6",
            "SELU",
            "SiLU",
            "Sigmoid",
            "Softplus",
            "Softshrink",
            "Softsign",
            "Tanh",
            "Tanhshrink",
        }
    ),
    "linear": frozenset({"Identity"}),
}

# Keyword arguments of SB3's extractors that an untrusted zip may set, with their types.
_SAFE_EXTRACTOR_KWARGS: dict[str, dict[str, type]] = {
    "NatureCNN": {"features_dim": int, "normalized_image": bool},
    "CombinedExtractor": {"cnn_output_dim": int, "normalized_image": bool},
    "FlattenExtractor": {},
    "SmallCNN": {"features_dim": int, "n_filters": int, "normalized_image": bool},
    # A description from a file builds only allow-listed layers and calls (sb3_transfer.encoders), and only when
    # its tensors are those the file holds (_check_description): what it allocates is what the file really holds.
    "GraphExtractor": {"description": dict, "features_dim": int},
}

#: Features extractor classes a zip may name that are safe to import by name.
_KNOWN_EXTRACTORS: dict[str, type[nn.Module]] = {
    f"{cls.__module__}.{cls.__qualname__}": cls
    for cls in (
        torch_layers.FlattenExtractor,
        torch_layers.NatureCNN,
        torch_layers.CombinedExtractor,
        adapters.InputAdapter,
        adapters.ModuleExtractor,
        extractors.SmallCNN,
        extractors.GraphExtractor,
    )
}

# Policy modules of algorithms we recognise but cannot transplant from, to name them in the error.
_OTHER_ALGOS = {
    "sb3_contrib.common.recurrent.policies": "RecurrentPPO",
    "sb3_contrib.ars.policies": "ARS",
    "sb3_contrib.crossq.policies": "CrossQ",
}
_OTHER_KEY_HINTS = {
    "mlp_extractor.shared_net.": "PPO / A2C with layers shared by actor and critic (SB3 < 1.8)",
}
# The algorithm that trained a policy, from its policy's module where the layout is shared (and, for the actor-critic
# and TD3 layouts, the fields of SB3's data: see read_zip).
_ALGO_OF_MODULE = {
    "sb3_contrib.common.maskable.policies": "MaskablePPO",
    "stable_baselines3.sac.policies": "SAC",
    "sb3_contrib.tqc.policies": "TQC",
    "stable_baselines3.td3.policies": "TD3",
}


@dataclass
class SourceNetwork:
    """
    A pretrained network as sb3-transfer sees it: the online network's tensors and what is known of its
    architecture. Built by :func:`read_source`.

    :param tensors: The online network's tensors, named as in the source policy's ``state_dict()``
        (``q_net.q_net.0.weight``...; ``features_extractor.module.*`` for an encoder).
    :param algo: The policy family (the :data:`~sb3_transfer.groups.LAYOUTS` entry): ``"DQN"``, ``"QRDQN"``,
        ``"ActorCritic"`` (PPO, A2C, MaskablePPO), ``"SAC"`` (SAC, TQC), ``"TD3"`` (TD3, DDPG), or ``"module"`` (a
        plain encoder).
    :param description: What the source is, for reports.
    :param layout: How its tensors form named layer groups (:data:`~sb3_transfer.groups.LAYOUTS`).
    :param n_actions: Number of actions of the source task (for Box actions, of action dimensions), when known.
    :param n_quantiles: Number of quantiles of the head (QR-DQN) or of each critic (TQC); 1 otherwise.
    :param net_arch: Hidden layer sizes, read from the tensor shapes: a list, or as SB3's algorithms take a dict
        (``{"pi": [...], "vf": [...]}`` for PPO, ``{"pi": [...], "qf": [...]}`` for SAC / TD3).
    :param activation_fn: Activation between hidden layers.
    :param features_extractor_class: The source's features extractor class, when it could be resolved safely.
    :param features_extractor_name: Its qualified name, as recorded.
    :param features_extractor_kwargs: Its keyword arguments, where recorded or inferred.
    :param normalize_images: The source policy's ``normalize_images``, when recorded.
    :param module: The encoder, for a ``"module"`` source.
    :param sb3_version: SB3 version that wrote the zip, when known.
    :param notes: Assumptions made while reading, shown in the transfer report.
    :param trained_with: The algorithm that trained it, when known (``"PPO"``, ``"A2C"``, ``"DQN"``...).
    :param continuous: Whether its actions are a Box: the action head is the mean, with ``log_std`` beside it.
    :param share_features_extractor: For an actor-critic: whether actor and critic share the features extractor.
    :param use_sde: For an actor-critic with Box actions: whether it explores with gSDE (its ``log_std`` is a matrix).
    :param n_critics: For SAC / TD3 / TQC: the number of critics.
    :param ent_coef: For SAC / TQC: the entropy coefficient it had learnt (or was given), when the file records it.
    """

    tensors: dict[str, th.Tensor]
    algo: str
    description: str
    layout: PolicyLayout = MODULE_LAYOUT
    n_actions: int | None = None
    n_quantiles: int = 1
    net_arch: list[int] | dict[str, list[int]] = field(default_factory=list)
    activation_fn: type[nn.Module] = nn.ReLU
    features_extractor_class: type[nn.Module] | None = None
    features_extractor_name: str = ""
    features_extractor_kwargs: dict[str, Any] = field(default_factory=dict)
    normalize_images: bool | None = None
    module: nn.Module | None = None
    sb3_version: str | None = None
    notes: list[str] = field(default_factory=list)
    trained_with: str | None = None
    continuous: bool = False
    share_features_extractor: bool | None = None
    use_sde: bool = False
    n_critics: int | None = None
    ent_coef: float | None = None

    @property
    def group_names(self) -> dict[str, dict[str, str]]:
        """The tensor names by named layer group: ``{group: {local name: name}}``."""
        return self.layout.split(self.tensors)

    @property
    def groups(self) -> dict[str, dict[str, th.Tensor]]:
        """The tensors by named layer group (see :mod:`sb3_transfer.groups`): ``{group: {local name: tensor}}``."""
        return by_group(self.tensors, self.group_names)

    @property
    def input_dim(self) -> int | None:
        """The vector input size the pretrained layers expect, or ``None`` when they take images or dicts."""
        groups = self.groups
        if self.module is not None:
            layer = adapters.first_layer(self.module)
            return layer.in_features if isinstance(layer, nn.Linear) else None
        adapter = next((g for name, g in groups.items() if name.rpartition(".")[2] == ADAPTER), None)
        if adapter:
            return int(adapter["weight"].shape[1])
        if any(g for name, g in groups.items() if name.rpartition(".")[2] == FEATURES):
            return None
        if self.features_extractor_name.endswith(".NatureCNN"):
            return None
        first = next((g for name, g in groups.items() if _is_layer(name) and "weight" in g), None)
        return int(first["weight"].shape[1]) if first else None

    @property
    def adapted_dim(self) -> int | None:
        """When the source itself carries an input adapter, the size it adapts to."""
        adapter = next((g for name, g in self.groups.items() if name.rpartition(".")[2] == ADAPTER), None)
        return int(adapter["weight"].shape[0]) if adapter else None


def read_source(source: Any, trust_source: bool = False, allow_nonfinite: bool = False) -> SourceNetwork:
    """
    Read a pretrained source.

    :param source: Path to an SB3 ``.zip``; an SB3 algorithm; an SB3 policy; an ``nn.Module`` (an encoder); a
        state dict of an SB3 DQN / QR-DQN / actor-critic policy; or a :class:`SourceNetwork` already read (returned as it is).
    :param trust_source: Allow unpickling the zip's metadata (needed only for custom classes, e.g. a custom
        features extractor or activation function). Never set it for a file from a stranger.
    :param allow_nonfinite: Accept NaN or infinite weights (refused by default: they make every Q-value NaN).
    :return: The source network.
    """
    if isinstance(source, SourceNetwork):
        return source
    if isinstance(source, str | os.PathLike):
        return read_zip(source, trust_source=trust_source, allow_nonfinite=allow_nonfinite)
    if isinstance(source, BaseAlgorithm):
        network = _from_policy(source.policy, f"{type(source).__name__} model", allow_nonfinite=allow_nonfinite)
        network.trained_with = _sb3_algorithm(type(source))
        log_coef = getattr(source, "log_ent_coef", None)  # SAC's learnt entropy coefficient (its fixed one otherwise)
        coef = getattr(source, "ent_coef_tensor", None) if log_coef is None else log_coef.detach().exp()
        if isinstance(coef, th.Tensor) and coef.numel() == 1:
            network.ent_coef = _checked_ent_coef(float(coef), network.notes)
        return network
    if isinstance(source, BasePolicy):
        return _from_policy(source, f"{type(source).__name__}", allow_nonfinite=allow_nonfinite)
    if isinstance(source, nn.Module):
        label = f"{type(source).__name__} module"
        tensors = {f"{FEATURES}.module.{k}": v.detach().clone() for k, v in source.state_dict().items()}
        _check_finite(tensors, label, allow_nonfinite)
        return SourceNetwork(tensors, "module", label, module=source)
    if isinstance(source, Mapping):
        return _from_state_dict(source, "state dict", {}, allow_nonfinite=allow_nonfinite)
    raise InvalidSourceError(
        f"Cannot use a {type(source).__name__} as a pretrained source: pass a path to an SB3 .zip, an SB3 model or "
        f"policy ({', '.join(SUPPORTED_ALGOS)}), an nn.Module, or a state dict."
    )


def read_zip(path: str | os.PathLike, trust_source: bool = False, allow_nonfinite: bool = False) -> SourceNetwork:
    """
    Read an SB3 ``.zip`` (any SB3 release from 1.0) without unpickling anything unless ``trust_source``, within the
    memory limits of this module (see its docstring).

    :param path: The file; as with SB3's ``load``, ``.zip`` is appended when the path without it does not exist.
    :param trust_source: Allow unpickling the cloudpickled metadata (custom classes). Never for untrusted files.
    :param allow_nonfinite: Accept NaN or infinite weights (refused by default).
    :return: The source network.
    """
    path = _find_file(Path(path))
    label = f"'{_clean(path, 4 * MAX_STRING_CHARS)}'"
    with _open_regular_file(path, label) as file:
        members, unread = _read_members(file, label)
    data = _parse_data(members.pop("data").getvalue(), label)
    version_file = members.pop("_stable_baselines3_version", None)
    version = _clean(version_file.getvalue().decode("utf-8", "replace").strip()) if version_file else None
    # Handed over, not kept here, so that policy.pth's bytes are freed once unpacked.
    state_dict = _load_weights(members.pop("policy.pth"), label, trust_source)
    meta = {**_zip_metadata(data, trust_source, label), "trusted": trust_source}
    network = _from_state_dict(state_dict, label, meta, allow_nonfinite=allow_nonfinite)
    if network.algo == "ActorCritic":  # PPO records its clipping, TRPO its conjugate gradient steps, A2C neither
        network.trained_with = _ALGO_OF_MODULE.get(meta["policy_module"]) or (
            "PPO" if "clip_range" in data else "TRPO" if "cg_max_steps" in data else "A2C"
        )
    elif network.algo == "TD3" and data.get("policy_delay") == 1 and data.get("target_noise_clip") == 0.0:
        network.trained_with = "DDPG"  # SB3's DDPG is TD3 without delayed updates and target smoothing
    if network.algo == "SAC":
        network.ent_coef = _ent_coef(data, members.pop("pytorch_variables.pth", None), label, network.notes)
    network.notes += [f"{name} is not read: {_clean(why, 2 * MAX_STRING_CHARS)}" for name, why in unread.items()]
    network.description = f"{label} ({network.trained_with or network.algo}" + (f", SB3 {version})" if version else ")")
    network.sb3_version = version
    return network


def _sb3_algorithm(cls: type) -> str | None:
    """The SB3 / sb3-contrib algorithm an algorithm class is or derives from (``"DQN"`` for ``TransferDQN``)."""
    return next((c.__name__ for c in cls.__mro__ if c.__module__.startswith(("stable_baselines3", "sb3_contrib"))), None)


def _clean(text: Any, limit: int | None = None) -> str:
    """
    A string from a file as it may be shown: non-printable characters (newlines, terminal escapes) escaped as in a
    Python literal, and cut at ``limit`` (default ``MAX_STRING_CHARS``) characters.
    """
    text = text if isinstance(text, str) else str(text)
    limit = MAX_STRING_CHARS if limit is None else limit
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit])
    return shown if len(text) <= limit else f"{shown}... ({len(text)} characters)"


def _find_file(path: Path, what: str = "Pretrained source", suffix: str | None = ".zip") -> Path:
    """
    The source file: ``path``, or ``path`` + ``suffix`` when only that exists (as SB3's ``load`` finds a zip).
    ``what`` names the file in errors.
    """
    label = f"'{_clean(path, 4 * MAX_STRING_CHARS)}'"
    candidates = [path, path.with_name(path.name + suffix)] if path.name and suffix else [path]
    for candidate in candidates:
        try:
            os.stat(candidate)
            return candidate
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, ValueError) as e:  # a path too long, with a NUL byte, unreadable folder...
            raise InvalidSourceError(f"{what} {label} cannot be read: {_clean(e)}.") from e
    raise SourceNotFoundError(f"{what} {label} does not exist.")


def _open_regular_file(
    path: Path, label: str, what: str = "Pretrained source", expected: str = "an SB3 .zip file"
) -> IO[bytes]:
    """
    The file opened for reading, after checking it is a regular file: a FIFO or a device could be read forever.
    ``what`` names the file in errors, ``expected`` says what it should be.
    """
    not_regular = f"{what} {label} is not a regular file (a pipe, socket or device); give {expected}."
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise InvalidSourceError(f"{what} {label} is a directory, not {expected}.")
        if not stat.S_ISREG(mode):
            raise InvalidSourceError(not_regular)
        # Non-blocking, so that a file swapped for a FIFO since the check cannot block open(); fstat tells the truth.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise InvalidSourceError(f"{what} {label} cannot be opened: {_clean(e)}.") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidSourceError(not_regular)
    return os.fdopen(fd, "rb")


class _CappedReads:
    """
    A file whose every single read is capped (by default at ``MAX_DIRECTORY_BYTES``): ``zipfile`` reads a zip's
    central directory in one read of the size the zip declares, and ``pickletools`` reads an opcode's argument in one
    read of the size the pickle declares, so the cap bounds those. Members are read through it in ``_CHUNK`` reads.
    """

    def __init__(self, file: IO[bytes], label: str, what: str, limit: int | None = None, limit_name: str = "") -> None:
        self._file, self._label, self._what = file, label, what
        self._limit = max(MAX_DIRECTORY_BYTES, _MIN_READ) if limit is None else limit
        self._limit_name = limit_name or "MAX_DIRECTORY_BYTES"

    def _check(self, n: int) -> None:
        if n > self._limit:
            raise InvalidSourceError(
                f"{self._label}: {self._what} asks to read {n} bytes at once, more than the limit of {self._limit} "
                f"(sb3_transfer.sources.{self._limit_name}): it is damaged or oversized; refused."
            )

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            position = self._file.tell()
            n = self._file.seek(0, os.SEEK_END) - position
            self._file.seek(position)
        self._check(n)
        return self._file.read(n)

    def readline(self, n: int | None = -1) -> bytes:
        line = self._file.readline(self._limit + 1 if n is None or n < 0 else min(n, self._limit + 1))
        self._check(len(line))
        return line

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        return True


def _copy(source: IO[bytes], sink: IO[bytes], limit: int, too_large: str) -> int:
    """Copy a stream ``_CHUNK`` bytes at a time (a zip member: decompressed that much at a time) up to ``limit`` bytes."""
    total = 0
    while chunk := source.read(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise InvalidSourceError(too_large)
        sink.write(chunk)
    return total


def _inflation_limit(info: zipfile.ZipInfo, held: int, limit: int, too_large: str, what: str) -> tuple[int, str]:
    """
    The bytes a member or record may unpack to: ``limit``, or for a deflated one less where ``MAX_INFLATION`` bounds
    it; and the message that says which limit it passed. ``held``, the bytes of its archive, bounds the compressed
    size its header may claim.
    """
    if info.compress_type != zipfile.ZIP_DEFLATED:  # stored: it unpacks to what it holds
        return limit, too_large
    compressed = min(info.compress_size, held)
    bound = max(MIN_INFLATION_BYTES, MAX_INFLATION * compressed)
    if bound >= limit:
        return limit, too_large
    return bound, (
        f"{what} unpacks to more than {MAX_INFLATION} times its compressed size of "
        f"{compressed} bytes (sb3_transfer.sources.MAX_INFLATION, past MIN_INFLATION_BYTES): a decompression bomb, "
        "not weights; refused."
    )


def _read_member(archive: zipfile.ZipFile, name: str, limit: int, label: str, limit_name: str, file_size: int) -> io.BytesIO:
    """
    A zip member, decompressed within ``limit`` bytes (and ``MAX_INFLATION`` times its compressed size) whatever its
    header declares. ``file_size``, the zip's size, bounds the compressed size a header may claim.
    """
    info = archive.getinfo(name)
    too_large = (
        f"{label}: its '{_clean(name)}' member unpacks to more than {limit} bytes "
        f"(sb3_transfer.sources.{limit_name}); refused."
    )
    if info.compress_type not in _READABLE_COMPRESSIONS:
        raise InvalidSourceError(
            f"{label}: its '{_clean(name)}' member is compressed with method {info.compress_type}; SB3 stores members "
            "uncompressed, and only stored or deflated ones are read."
        )
    if info.file_size > limit:  # a true header is refused at once; a false one is caught while decompressing
        raise InvalidSourceError(too_large)
    limit, too_large = _inflation_limit(info, file_size, limit, too_large, f"{label}: its '{_clean(name)}' member")
    buffer = io.BytesIO()
    with archive.open(info) as member:
        _copy(member, buffer, limit, too_large)
    buffer.seek(0)
    return buffer


#: Members the network does not depend on: one that cannot be read within its limits is left out with a note.
_OPTIONAL_MEMBERS = ("pytorch_variables.pth",)


def _read_members(file: IO[bytes], label: str) -> tuple[dict[str, io.BytesIO], dict[str, str]]:
    """
    The members of an SB3 zip that are read: ``data``, ``policy.pth``, ``_stable_baselines3_version`` and
    ``pytorch_variables.pth``; and the optional members that could not be read within their limits, with why.
    """
    try:
        head = file.read(30 + 1024)
        file_size = file.seek(0, os.SEEK_END)
        file.seek(0)
        if not zipfile.is_zipfile(file) and not head.startswith(b"PK\x03\x04"):
            raise InvalidSourceError(f"Pretrained source {label} is not a zip archive (SB3 models are saved as .zip files).")
        with zipfile.ZipFile(_CappedReads(file, label, "its zip directory")) as archive:  # type: ignore[arg-type]
            members = set(archive.namelist())
            # A cut-off SB3 zip can still look like a zip: of the PyTorch archive stored inside it.
            first_member = head[30 : 30 + int.from_bytes(head[26:28], "little")].decode("utf-8", "replace")
            if head.startswith(b"PK\x03\x04") and first_member not in members:
                raise zipfile.BadZipFile(f"its first member '{first_member}' is missing from its directory")
            missing = {"data", "policy.pth"} - members
            if missing:
                held = sorted(members)
                shown = ", ".join(_clean(m) for m in held[:10]) + (f" and {len(held) - 10} more" if len(held) > 10 else "")
                raise InvalidSourceError(
                    f"{label} is a zip archive but not an SB3 model: it lacks {', '.join(sorted(missing))} "
                    f"(it holds {shown or 'nothing'})."
                )
            limits = {
                "data": (MAX_DATA_BYTES, "MAX_DATA_BYTES"),
                "policy.pth": (MAX_WEIGHTS_BYTES, "MAX_WEIGHTS_BYTES"),
                "_stable_baselines3_version": (MAX_VERSION_BYTES, "MAX_VERSION_BYTES"),
                "pytorch_variables.pth": (MAX_VARIABLES_BYTES, "MAX_VARIABLES_BYTES"),
            }
            read, unread = {}, {}
            for name, (limit, limit_name) in limits.items():
                if name not in members:
                    continue
                try:
                    read[name] = _read_member(archive, name, limit, label, limit_name, file_size)
                except InvalidSourceError as e:
                    if name not in _OPTIONAL_MEMBERS:
                        raise
                    unread[name] = str(e)  # the network does not depend on it: said in a note, not refused
            return read, unread
    except TransferError:
        raise
    except _ZIP_ERRORS as e:
        raise InvalidSourceError(f"{label} is a damaged, truncated or unsupported zip archive: {_clean(e)}") from e


def _ent_coef(data: dict[str, Any], variables: io.BytesIO | None, label: str, notes: list[str]) -> float | None:
    """
    A SAC / TQC model's entropy coefficient: the fixed one of its ``data``, or the one it learnt (``"auto"``), from
    ``pytorch_variables.pth`` read as weights are (no unpickling). ``None``, with a note, when it cannot be read: the
    network does not depend on it.
    """
    recorded = data.get("ent_coef")
    if isinstance(recorded, int | float) and not isinstance(recorded, bool):
        return _checked_ent_coef(float(recorded), notes)
    if variables is None:
        return None
    try:
        values = _load_weights(
            variables,
            label,
            trust_source=False,
            member="pytorch_variables.pth",
            limit=(MAX_VARIABLES_BYTES, "MAX_VARIABLES_BYTES"),
        )
    except TransferError as e:
        notes.append(f"the entropy coefficient is not read: {_clean(e)}")
        return None
    log_coef = values.get("log_ent_coef")
    if not isinstance(log_coef, th.Tensor) or log_coef.numel() != 1 or not log_coef.is_floating_point():
        return None
    log_value = float(log_coef.detach().reshape(()))
    return _checked_ent_coef(math.exp(min(log_value, 700.0)) if math.isfinite(log_value) else math.nan, notes)


def _checked_ent_coef(value: float, notes: list[str]) -> float | None:
    low, high = ENT_COEF_RANGE
    if math.isfinite(value) and low <= value <= high:
        return value
    notes.append(
        f"the entropy coefficient the file records ({value:.3g}) is not used: outside [{low:g}, {high:g}] "
        "(sb3_transfer.sources.ENT_COEF_RANGE)."
    )
    return None


def _parse_data(content: bytes, label: str) -> dict[str, Any]:
    """SB3's JSON metadata, refused before parsing when it holds more items than SB3 writes (each costs ~25x its text)."""
    items = content.count(b"[") + content.count(b"{") + content.count(b",")
    if items > MAX_JSON_ITEMS:
        raise InvalidSourceError(
            f"{label}: its 'data' member holds {items} JSON items, more than the limit of {MAX_JSON_ITEMS} "
            "(sb3_transfer.sources.MAX_JSON_ITEMS; SB3 writes a few hundred); refused."
        )
    try:
        data = json.loads(content)
    except (ValueError, RecursionError) as e:
        raise InvalidSourceError(f"{label}: its 'data' member is not SB3's JSON metadata ({_clean(e)}).") from e
    if not isinstance(data, dict):
        raise InvalidSourceError(f"{label}: its 'data' member is not SB3's JSON metadata (a {type(data).__name__}).")
    return data


def _load_weights(
    weights: io.BytesIO,
    label: str,
    trust_source: bool,
    member: str = "policy.pth",
    limit: tuple[int, str] | None = None,
) -> Mapping[Any, Any]:
    """
    ``policy.pth``'s state dict (or another member's, such as ``pytorch_variables.pth``): unpacked within the limits
    (``limit``: the bytes its records may unpack to in all, and the constant's name; default ``MAX_WEIGHTS_BYTES``), its
    pickle checked, then read by ``torch.load``.
    """
    weights = _unpack_weights(weights, label, member, limit)  # rebinding frees the member's own bytes before loading
    try:
        state_dict = th.load(weights, map_location="cpu", weights_only=not trust_source)
    except pickle.UnpicklingError as e:
        # The pickle is well formed (checked above). PyTorch refuses it either for the classes or functions it names
        # (unsafe: only trust makes it readable) or for what it does with what it may name (damaged).
        if not re.search(r"Unsupported global|add_safe_globals", str(e)):
            # PyTorch's message wraps the reason (after "WeightsUnpickler error:") in advice that does not apply here.
            lines = str(e).rsplit("WeightsUnpickler error:", 1)[-1].strip().splitlines()
            reason = _clean(lines[0] if lines else type(e).__name__, 2 * MAX_STRING_CHARS)
            raise InvalidSourceError(f"{label}: {member} is damaged: PyTorch cannot read its pickle ({reason}).") from e
        named = m.group(1) if (m := re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))) else None
        raise UnsafeSourceError(
            f"{label}: {member} holds objects other than tensors"
            + (f" ({_clean(named)})" if named else "")
            + ", and loading them could run code from the file. If you trust its author, pass trust_source=True."
        ) from e
    except Exception as e:
        raise InvalidSourceError(
            f"{label}: {member} cannot be read as PyTorch weights ({type(e).__name__}: {_clean(e, 2 * MAX_STRING_CHARS)})."
        ) from e
    if not isinstance(state_dict, Mapping):
        raise InvalidSourceError(f"{label}: {member} holds a {type(state_dict).__name__}, not a state dict.")
    return state_dict


def _unpack_weights(
    weights: io.BytesIO,
    label: str,
    member: str = "policy.pth",
    limit: tuple[int, str] | None = None,
) -> io.BytesIO:
    """
    ``policy.pth`` as ``torch.load`` is to read it. PyTorch's zip format (PyTorch >= 1.6) is unpacked record by record
    within ``MAX_WEIGHTS_BYTES`` in all and packed again uncompressed: PyTorch then allocates exactly the bytes read
    here, whatever the headers declared. The legacy format (a sequence of pickles, then the tensor data) is checked
    pickle by pickle. Either way the pickle describing the tensors is checked to be a well-formed pickle, so that a
    damaged file is told apart from one that holds objects other than tensors.
    """
    damaged = f"{label}: {member} is damaged"
    magic = weights.read(len(_LEGACY_MAGIC))
    weights.seek(0)
    if magic.startswith(b"PK\x03\x04"):  # what torch.load takes for its zip format
        try:
            # (The module's constant read now, not when the function was defined: callers may change it.)
            return _repack_torch_zip(weights, label, member, limit or (MAX_WEIGHTS_BYTES, "MAX_WEIGHTS_BYTES"))
        except TransferError:
            raise
        except _ZIP_ERRORS as e:
            raise InvalidSourceError(f"{damaged}: it is not a readable PyTorch archive ({_clean(e)}).") from e
    if magic != _LEGACY_MAGIC:
        raise InvalidSourceError(f"{damaged}: it is neither of PyTorch's formats (a zip archive, or pickles).")
    for what in ("magic number", "protocol version", "system info", "state dict", "storage keys"):
        _check_pickle(weights, label, f"{member}'s {what}")
    weights.seek(0)
    return weights


def _repack_torch_zip(weights: io.BytesIO, label: str, member: str, budget: tuple[int, str]) -> io.BytesIO:
    """PyTorch's zip archive, its records read within the limits and written again uncompressed."""
    packed = io.BytesIO()
    capped = _CappedReads(weights, label, f"{member}'s zip directory")
    with zipfile.ZipFile(capped) as archive, zipfile.ZipFile(packed, "w") as out:  # type: ignore[arg-type]
        records = archive.infolist()
        names = [record.filename for record in records]
        if len(set(names)) != len(names):
            raise InvalidSourceError(f"{label}: {member} is damaged: its archive names a record twice.")
        # Records that overlap would be read again and again: a few kB could stand for gigabytes.
        with weights.getbuffer() as view:
            size = view.nbytes
        if sum(record.compress_size for record in records) > size:
            raise InvalidSourceError(f"{label}: {member} is damaged: its archive's records overlap.")
        total = 0
        for record in records:
            if record.filename.endswith("/.format_version"):
                # It tells PyTorch it may compute where records start from its alignment: no longer so once repacked.
                continue
            name = _clean(record.filename)
            if record.compress_type not in _READABLE_COMPRESSIONS:
                method = record.compress_type
                raise InvalidSourceError(f"{label}: {member}'s record '{name}' is compressed with method {method}; refused.")
            pickled = record.filename.endswith(".pkl")
            max_bytes, max_name = budget
            limit = min(MAX_PICKLE_BYTES, max_bytes - total) if pickled else max_bytes - total
            too_large = (
                f"{label}: {member}'s pickle '{name}' unpacks to more than {MAX_PICKLE_BYTES} bytes "
                "(sb3_transfer.sources.MAX_PICKLE_BYTES); refused."
                if pickled
                else f"{label}: {member}'s records unpack to more than {max_bytes} bytes in all "
                f"(sb3_transfer.sources.{max_name}); refused at record '{name}'."
            )
            limit, too_large = _inflation_limit(record, size, limit, too_large, f"{label}: {member}'s record '{name}'")
            with archive.open(record) as source, out.open(record.filename, "w", force_zip64=True) as sink:
                if pickled:
                    pickle_bytes = io.BytesIO()
                    total += _copy(source, pickle_bytes, limit, too_large)
                    pickle_bytes.seek(0)
                    _check_pickle(pickle_bytes, label, f"{member}'s '{name}'")
                    sink.write(pickle_bytes.getvalue())
                else:
                    total += _copy(source, sink, limit, too_large)
    packed.seek(0)
    return packed


def _check_pickle(stream: IO[bytes], label: str, what: str) -> None:
    """
    Check that ``stream`` (from its position) holds one well-formed pickle of at most ``MAX_PICKLE_BYTES``, without
    running it: opcodes are only parsed (``pickletools.genops``). Leaves ``stream`` after the pickle.
    """
    start = stream.tell()
    capped = _CappedReads(stream, label, what, MAX_PICKLE_BYTES, "MAX_PICKLE_BYTES")
    try:
        for _opcode, _arg, position in pickletools.genops(capped):  # type: ignore[arg-type]  # it reads like a file
            if position is not None and position - start > MAX_PICKLE_BYTES:
                raise InvalidSourceError(
                    f"{label}: {what} is longer than {MAX_PICKLE_BYTES} bytes "
                    "(sb3_transfer.sources.MAX_PICKLE_BYTES); refused."
                )
    except TransferError:
        raise
    except Exception as e:  # pickletools raises ValueError mostly, but any error here means the bytes are no pickle
        raise InvalidSourceError(f"{label}: policy.pth is damaged: {what} is not a well-formed pickle ({_clean(e)}).") from e


def _zip_metadata(data: dict[str, Any], trust_source: bool, label: str) -> dict[str, Any]:
    """The architecture facts of SB3's ``data`` JSON: the readable fields, or the unpickled ones when trusted."""
    policy_class = data.get("policy_class")
    module = policy_class.get("__module__", "") if isinstance(policy_class, dict) else ""
    policy_init = policy_class.get("__init__", "") if isinstance(policy_class, dict) else ""
    class_name = m.group(1) if (m := re.match(r"<function (\w+)\.__init__", str(policy_init))) else ""
    policy_kwargs = data.get("policy_kwargs") or {}
    if trust_source and isinstance(policy_kwargs, dict) and ":serialized:" in policy_kwargs:
        import cloudpickle

        try:
            policy_kwargs = cloudpickle.loads(base64.b64decode(policy_kwargs[":serialized:"]))
        except Exception as e:
            reason = f"{type(e).__name__}: {_clean(e)}"
            raise InvalidSourceError(f"{label}: its policy_kwargs cannot be unpickled ({reason}).") from e
    elif isinstance(policy_kwargs, dict):
        policy_kwargs = {k: v for k, v in policy_kwargs.items() if not k.startswith(":")}
    action_space = data.get("action_space")
    n_actions = action_space.get("n") if isinstance(action_space, dict) else None
    shape = action_space.get("_shape") if isinstance(action_space, dict) else None
    box = isinstance(action_space, dict) and str(action_space.get(":type:", "")).endswith(".Box'>")
    if n_actions is None and box and isinstance(shape, list | str):  # JSON: a list (SB3 2.x) or its str()
        m = re.fullmatch(r"\[([0-9]{1,9})\]", str(shape).replace(" ", ""))
        n_actions = m.group(1) if m else None  # a Box of one dimension: its size is what the action head gives
    return {
        "policy_module": module,
        "policy_class_name": class_name,
        "policy_kwargs": policy_kwargs if isinstance(policy_kwargs, dict) else {},
        "n_actions": int(str(n_actions)) if re.fullmatch(r"[0-9]{1,9}", str(n_actions)) else None,
        "action_space_type": action_space.get(":type:", "") if isinstance(action_space, dict) else "",
    }


#: The architecture attributes SB3's DQN / QR-DQN policies keep (public attributes of the built policy).
_ARCHITECTURE_ATTRIBUTES = (
    "net_arch",
    "activation_fn",
    "features_extractor_class",
    "features_extractor_kwargs",
    "normalize_images",
    "n_quantiles",
    "share_features_extractor",
    "n_critics",
)


def _from_policy(policy: BasePolicy, label: str, allow_nonfinite: bool = False) -> SourceNetwork:
    try:
        layout_of(policy)
    except TransferConfigError:
        raise _unsupported(label, type(policy).__module__, list(policy.state_dict())) from None
    sb3_class = next(
        (c for c in type(policy).__mro__ if c.__module__.startswith(("stable_baselines3", "sb3_contrib"))), type(policy)
    )
    meta = {
        "policy_module": sb3_class.__module__,
        "policy_class_name": type(policy).__name__,
        "policy_kwargs": {k: getattr(policy, k) for k in _ARCHITECTURE_ATTRIBUTES if hasattr(policy, k)},
        "n_actions": action_units(policy.action_space),
        "trusted": True,  # a live object: its classes are already imported
    }
    return _from_state_dict(policy.state_dict(), label, meta, allow_nonfinite=allow_nonfinite)


def action_units(space: Any) -> int | None:
    """
    The rows of an action head per quantile: a Discrete space's actions, a 1-d Box's dimensions (``None`` for other
    spaces, whose heads are carried only when their shapes match).

    :param space: An action space.
    """
    if hasattr(space, "n") and not hasattr(space, "nvec"):
        return int(space.n)
    shape = getattr(space, "shape", None)
    return int(shape[0]) if type(space).__name__ == "Box" and shape is not None and len(shape) == 1 else None


def _check_tensors(state_dict: Mapping[Any, Any], label: str, allow_nonfinite: bool = False) -> dict[str, th.Tensor]:
    """
    The state dict's tensors, each a dense CPU float tensor with the data it claims: named by a printable string, not
    empty, no stride-0 blow-ups, no two overlapping (a storage is counted once, however many tensors view it: 40
    views of one 16 MiB storage would build 40 layers of 16 MiB each), finite unless ``allow_nonfinite``. A name that
    repeats an earlier tensor exactly (a module saved under two names, as an actor-critic's shared features extractor
    is) is left out: it holds nothing of its own.
    """
    state_dict, _ = distinct({k: v for k, v in state_dict.items() if isinstance(v, th.Tensor)})
    tensors = {}
    extents = []
    for key, value in state_dict.items():
        if not isinstance(value, th.Tensor):
            continue
        if not isinstance(key, str):
            raise InvalidSourceError(f"{label}: state dict key {_clean(repr(key))} is not a string.")
        if len(key) > MAX_STRING_CHARS or not key.isprintable():
            raise InvalidSourceError(
                f"{label}: tensor name '{_clean(key)}' is not a module path (non-printable characters, or longer "
                f"than {MAX_STRING_CHARS} characters)."
            )
        counter = key.endswith("num_batches_tracked") and value.dtype == th.int64  # BatchNorm's step counter
        if value.layout != th.strided or value.device.type != "cpu" or not (value.is_floating_point() or counter):
            raise InvalidSourceError(
                f"{label}: tensor '{key}' is not a dense float tensor on the CPU "
                f"({value.layout}, {value.dtype}, {value.device})."
            )
        if value.numel() == 0:
            raise InvalidSourceError(
                f"{label}: tensor '{key}' has no elements (shape {tuple(value.shape)}): a layer of width 0; refused."
            )
        # The bytes the tensor spans in its storage; fewer than it claims means its elements alias one another.
        last = sum((size - 1) * stride for size, stride in zip(value.shape, value.stride(), strict=True))
        span = (last + 1) * value.element_size()
        nbytes = value.numel() * value.element_size()
        if span < nbytes or value.untyped_storage().nbytes() < nbytes:
            raise InvalidSourceError(f"{label}: tensor '{key}' claims more elements than its data holds; refused.")
        extents.append((value.data_ptr(), value.data_ptr() + span, nbytes, key))
        tensors[key] = value
    _check_overlaps(extents, label)
    _check_finite(tensors, label, allow_nonfinite)
    return tensors


def _check_overlaps(extents: list[tuple[int, int, int, str]], label: str) -> None:
    """
    Refuse tensors that share their data. ``extents`` holds each tensor's memory range ``(start, end)``, its size in
    bytes and its name; where ranges overlap, the tensors claim more bytes between them than the range holds.
    """
    blocks: list[tuple[int, list[int], list[str]]] = []  # runs of overlapping ranges: start, [end, bytes claimed], names
    for start, end, nbytes, key in sorted(extents):
        if blocks and start < blocks[-1][1][0]:
            ends_claimed, names = blocks[-1][1], blocks[-1][2]
            ends_claimed[0], ends_claimed[1] = max(ends_claimed[0], end), ends_claimed[1] + nbytes
            names.append(key)
        else:
            blocks.append((start, [end, nbytes], [key]))
    for start, (end, claimed), names in blocks:
        if claimed > end - start:
            shown = ", ".join(f"'{n}'" for n in names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            raise InvalidSourceError(
                f"{label}: tensors {shown} share their data (views of one storage: {claimed} bytes claimed of "
                f"{end - start} held); each tensor of a source must hold its own data. Refused."
            )


def _check_finite(tensors: Mapping[str, th.Tensor], label: str, allow_nonfinite: bool) -> None:
    """Refuse NaN and infinite weights (every Q-value would be NaN, the greedy action always 0) unless allowed."""
    if allow_nonfinite:
        return
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(th.isfinite(value).all()):
            bad = int(value.numel() - th.isfinite(value).sum())
            raise InvalidSourceError(
                f"{label}: tensor '{key}' holds {bad} NaN or infinite values (of {value.numel()}): the network diverged "
                "or the file is damaged. To transplant it anyway, read it with read_source(..., allow_nonfinite=True) "
                "and pass the SourceNetwork that returns."
            )


def _is_layer(group: str) -> bool:
    """Whether a group is one Linear layer: an adapter, a trunk layer or a head (``pi.trunk.0``, ``vf.head``...)."""
    return bool(re.fullmatch(r"(\w+\.)*(trunk\.\d+|head|adapter)", group))


def _log_std_shapes(weight: th.Tensor) -> list[th.Size]:
    """The shapes an action net's ``log_std`` may have: per output; gSDE's per latent unit and output (or 1)."""
    outputs, latent = weight.shape
    return [th.Size([outputs]), th.Size([latent, outputs]), th.Size([latent, 1])]


def _check_layers(groups: dict[str, dict[str, th.Tensor]], label: str) -> None:
    """
    The adapter, trunk and head groups are Linear layers (a weight and a bias; an actor's head may hold ``log_std``
    too: one per output, gSDE's one per latent unit and output, or SAC's layer of the mean's shape), none wider than
    ``MAX_LAYER_SIZE``.
    """
    for group, layer in groups.items():
        if _is_layer(group):
            weight, bias, log_std = layer.get("weight"), layer.get("bias"), layer.get("log_std")
            extra = set(layer) - {"weight", "bias", "log_std", "log_std.weight", "log_std.bias"}
            # SAC's log_std layer gives what the mean layer gives, from the same inputs.
            like_mean = {"log_std.weight": weight.shape, "log_std.bias": weight.shape[:1]} if weight is not None else {}
            if (
                weight is None
                or weight.dim() != 2
                or extra
                or (bias is not None and bias.shape != weight.shape[:1])
                or (log_std is not None and log_std.shape not in _log_std_shapes(weight))
                or any(layer[k].shape != shape for k, shape in like_mean.items() if k in layer)
            ):
                shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in layer.items())
                raise InvalidSourceError(f"{label}: layer {group} is not a Linear layer's weight and bias ({shapes}).")
            if weight.shape[0] > MAX_LAYER_SIZE:
                raise InvalidSourceError(
                    f"{label}: layer {group} has {weight.shape[0]} units (weight {tuple(weight.shape)}), more than the "
                    f"limit of {MAX_LAYER_SIZE} (sb3_transfer.sources.MAX_LAYER_SIZE); refused."
                )
    # Each layer takes what the one before gives: the architecture built from these sizes holds no layer the file
    # does not (two 65536-unit layers in a row would need their 16 GiB weight in the file too).
    previous: dict[str, tuple[str, int]] = {}
    for group, layer in groups.items():
        prefix, _, last = group.rpartition(".")
        if not _is_layer(group) or last == ADAPTER:
            continue
        network = prefix[: -len("trunk")].rstrip(".") if prefix.endswith("trunk") else prefix
        weight = layer["weight"]
        if network in previous and previous[network][1] != weight.shape[1]:
            before, width = previous[network]
            raise InvalidSourceError(
                f"{label}: layer {group} takes {weight.shape[1]} inputs, but layer {before} before it gives {width}; refused."
            )
        previous[network] = (group, int(weight.shape[0]))


def _from_state_dict(
    state_dict: Mapping[str, Any], label: str, meta: dict[str, Any], allow_nonfinite: bool = False
) -> SourceNetwork:
    module = meta.get("policy_module", "")
    # Which network it is, from the names alone, first: a model of another algorithm is told so, whatever its tensors
    # (a PPO CnnPolicy's extractor is saved under three names that share one storage, which the checks below refuse).
    found = detect_layout(k for k, v in state_dict.items() if isinstance(k, str) and isinstance(v, th.Tensor))
    # A Q-network's own state dict (no policy prefix, e.g. policy.q_net.state_dict()) is accepted from live objects
    # only; a zip always holds a whole policy.
    keys = [k for k in state_dict if isinstance(k, str)]
    other = module in _OTHER_ALGOS or any(k.startswith(tuple(_OTHER_KEY_HINTS)) for k in keys)
    if found is None or (found[1] and module) or other:
        raise _unsupported(label, module, keys)
    tensors = _check_tensors(state_dict, label, allow_nonfinite)
    layout, prefix = found
    strays = [k for k in tensors if k.startswith(tuple(f"{path}." for path in layout.aliases))]
    if strays:  # (exact aliases of the module they name are gone already)
        raise InvalidSourceError(
            f"{label}: tensor '{_clean(strays[0])}' is not the same as the module it stands for "
            f"({', '.join(layout.aliases)} is the features_extractor in SB3); refused."
        )
    # Target networks follow the online ones; aliases repeat another module.
    skipped = tuple(f"{path}." for path in (*(target for _, target in layout.targets), *layout.aliases))
    tensors = {f"{prefix}{k}": v for k, v in tensors.items() if not f"{prefix}{k}".startswith(skipped)}
    algo = layout.name

    kwargs = dict(meta.get("policy_kwargs") or {})
    notes: list[str] = []
    try:
        names = layout.split(tensors)
    except TransferConfigError as e:
        raise InvalidSourceError(f"{label}: {e}") from e
    groups = by_group(tensors, names)
    _check_layers(groups, label)
    head = groups.get(layout.action_head, {}).get("weight")
    if head is None:
        output = next(p.path for p in layout.parts if p.kind != "extractor")
        raise InvalidSourceError(f"{label}: the {layout.name} policy has no action output layer ({output}.*.weight).")
    widths = {p.rstrip("."): _widths(groups, p) for p in dict.fromkeys(part.prefix for part in layout.parts)}
    net_arch: list[int] | dict[str, list[int]]
    if layout.net_arch:
        net_arch = {key: _widths(groups, prefix) for key, prefix in layout.net_arch}
    else:
        net_arch = widths[""] if list(widths) == [""] else {k: widths[k] for k in sorted(widths) if k}
    log_std = groups.get(layout.action_head, {}).get("log_std")
    continuous = layout.continuous or log_std is not None
    use_sde = log_std is not None and log_std.dim() == 2
    n_actions, n_quantiles = _actions_and_quantiles(int(head.shape[0]), algo, meta.get("n_actions"), kwargs, notes, label)
    critic_heads = [g for name, g in groups.items() if re.fullmatch(r"critic\.qf\d+\.head", name)]
    if critic_heads:  # TQC's critics give quantiles, SAC's and TD3's one value
        n_quantiles = int(critic_heads[0]["weight"].shape[0])
    activation_fn = _activation(kwargs.get("activation_fn"), notes, label, layout.activation_fn)
    share = kwargs.get("share_features_extractor")
    share = {"True": True, "False": False}.get(share, share) if isinstance(share, str) else share
    if any(g.startswith(("vf.", "critic.")) and g.rpartition(".")[2] in (FEATURES, ADAPTER) for g in groups):
        share = False  # the critic has an extractor of its own, whatever the metadata says
    extractor_name, extractor_class, extractor_kwargs = _extractor(kwargs, meta.get("policy_class_name", ""), groups, notes)
    if not meta.get("trusted"):
        extractor_kwargs = _safe_extractor_kwargs(extractor_name, extractor_kwargs, notes)
    if extractor_class is extractors.GraphExtractor and not _check_description(extractor_kwargs, groups, notes):
        extractor_class = None
    normalize_images = kwargs.get("normalize_images")
    return SourceNetwork(
        tensors=tensors,
        algo=algo,
        description=label,
        layout=layout,
        n_actions=n_actions,
        n_quantiles=n_quantiles,
        net_arch=net_arch,
        activation_fn=activation_fn,
        features_extractor_class=extractor_class,
        features_extractor_name=extractor_name,
        features_extractor_kwargs=extractor_kwargs,
        normalize_images=normalize_images if isinstance(normalize_images, bool) else None,
        notes=notes,
        trained_with=_ALGO_OF_MODULE.get(module) or (algo if algo in SUPPORTED_ALGOS else None),
        continuous=continuous,
        share_features_extractor=share if isinstance(share, bool) and algo != "DQN" and algo != "QRDQN" else None,
        use_sde=use_sde,
        n_critics=len(critic_heads) or None,
    )


def _widths(groups: dict[str, dict[str, th.Tensor]], prefix: str) -> list[int]:
    """The hidden layer sizes of one network (``prefix`` ``"pi."``, or ``""`` for a Q-network)."""
    layer = re.compile(rf"{re.escape(prefix)}trunk\.\d+")
    return [int(g["weight"].shape[0]) for name, g in groups.items() if layer.fullmatch(name)]


def _unsupported(label: str, module: str, tensors: Sequence[str]) -> InvalidSourceError:
    algo = _OTHER_ALGOS.get(module) or next(
        (v for k, v in _OTHER_KEY_HINTS.items() if any(t.startswith(k) for t in tensors)), None
    )
    if algo:
        return UnsupportedSourceError(
            f"{label} is a model of {algo}; sb3-transfer transplants from {', '.join(SUPPORTED_ALGOS)} only so far "
            "(the policies whose layer groups it maps)."
        )
    return InvalidSourceError(
        f"{label} does not hold an SB3 DQN / QR-DQN Q-network, an actor-critic policy or a SAC / TD3 / TQC actor and "
        "critics (no 'q_net.q_net.*', 'quantile_net.quantile_net.*', 'action_net.*' and 'value_net.*', or 'actor.mu*' "
        "and 'critic.qf0.*' tensors; found "
        f"{', '.join(_clean(t, 80) for t in tensors[:5]) or 'none'}). To use a plain encoder, pass the nn.Module itself."
    )


def _actions_and_quantiles(
    out_dim: int, algo: str, n_actions: int | None, kwargs: dict[str, Any], notes: list[str], label: str
) -> tuple[int, int]:
    """The head's split into actions and quantiles: from the metadata where recorded, which must agree with it."""
    head = f"its head has {out_dim} outputs"
    if n_actions is not None and (n_actions < 1 or out_dim % n_actions):
        raise InvalidSourceError(
            f"{label}: its metadata says action_space.n = {n_actions}, but {head}: the file is inconsistent; refused."
        )
    if algo != "QRDQN":
        if n_actions is not None and n_actions != out_dim:
            raise InvalidSourceError(
                f"{label}: its metadata says the action space has {n_actions} actions, but {head} (one per action); refused."
            )
        return out_dim, 1
    n_quantiles = kwargs.get("n_quantiles")
    if n_quantiles is not None and (type(n_quantiles) is not int or n_quantiles < 1 or out_dim % n_quantiles):
        raise InvalidSourceError(
            f"{label}: its policy_kwargs say n_quantiles = {_clean(repr(n_quantiles))}, which is not a whole number "
            f"of quantiles per action of its head's {out_dim} outputs; refused."
        )
    if n_actions is not None and n_quantiles is not None and n_actions * n_quantiles != out_dim:
        raise InvalidSourceError(
            f"{label}: its metadata says action_space.n = {n_actions} and n_quantiles = {n_quantiles}, "
            f"{n_actions * n_quantiles} outputs, but {head}; refused."
        )
    if n_actions is not None:
        return n_actions, out_dim // n_actions
    if n_quantiles is not None:
        return out_dim // n_quantiles, n_quantiles
    if out_dim % 200 == 0:  # sb3-contrib's default n_quantiles
        notes.append("n_quantiles is not recorded; assumed sb3-contrib's default 200 from the head's shape.")
        return out_dim // 200, 200
    raise InvalidSourceError(
        f"{label}: cannot tell how the {out_dim} outputs of its QR-DQN head split into actions and quantiles; "
        "pass the model or policy itself, which know."
    )


def _activation(recorded: Any, notes: list[str], label: str, default: type[nn.Module] = nn.ReLU) -> type[nn.Module]:
    """
    The activation class: a live one as it is (the user's, or unpickled from a trusted file); from an untrusted file's
    ``str()`` of it, only one of ``SAFE_ACTIVATIONS``; the policy class's ``default`` when none is recorded.
    """
    if recorded is None:
        return default
    if isinstance(recorded, type) and issubclass(recorded, nn.Module):
        return recorded
    m = re.fullmatch(r"<class 'torch\.nn\.modules\.(\w+)\.(\w+)'>", recorded) if isinstance(recorded, str) else None
    activation = getattr(nn, m.group(2), None) if m and m.group(2) in SAFE_ACTIVATIONS.get(m.group(1), ()) else None
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation
    allowed = ", ".join(sorted(set().union(*SAFE_ACTIVATIONS.values())))
    raise InvalidSourceError(
        f"{label}: its policy_kwargs name activation_fn {_clean(recorded)}, which is not one of the element-wise "
        f"activations read from an untrusted file ({allowed}). If it is a custom activation and you trust the file, "
        "pass trust_source=True to unpickle it."
    )


def _extractor(
    kwargs: dict[str, Any], policy_class_name: str, groups: dict[str, dict[str, th.Tensor]], notes: list[str]
) -> tuple[str, type[nn.Module] | None, dict[str, Any]]:
    cls, name = _resolve_class(kwargs.get("features_extractor_class"))
    extractor_kwargs = kwargs.get("features_extractor_kwargs")
    extractor_kwargs = dict(extractor_kwargs) if isinstance(extractor_kwargs, dict) else {}
    if cls is adapters.InputAdapter:
        # A model fine-tuned behind an adapter: what matters for a new target is the extractor behind it.
        cls, name = _resolve_class(extractor_kwargs.get("extractor_class"))
        inner_kwargs = extractor_kwargs.get("extractor_kwargs")
        extractor_kwargs = dict(inner_kwargs) if isinstance(inner_kwargs, dict) else {}
    features = groups.get(FEATURES) or groups.get(f"pi.{FEATURES}") or groups.get(f"actor.{FEATURES}") or {}
    if not name:  # not recorded: the policy class's default, recognisable from the weights too
        if policy_class_name == "CnnPolicy" or "cnn.0.weight" in features:
            cls = torch_layers.NatureCNN
        elif policy_class_name == "MultiInputPolicy" or any(k.startswith("extractors.") for k in features):
            cls = torch_layers.CombinedExtractor
        else:
            cls = torch_layers.FlattenExtractor
        name = f"{cls.__module__}.{cls.__qualname__}"
    # (A weight of no dimension, from a damaged file, tells nothing: the transplant then names the mismatch.)
    if cls in (torch_layers.NatureCNN, extractors.SmallCNN) and features.get("linear.0.weight", th.empty(())).dim():
        extractor_kwargs["features_dim"] = int(features["linear.0.weight"].shape[0])
    if cls is extractors.SmallCNN and features.get("cnn.0.weight", th.empty(())).dim():
        extractor_kwargs["n_filters"] = int(features["cnn.0.weight"].shape[0])
    if cls is adapters.ModuleExtractor and not isinstance(extractor_kwargs.get("module"), nn.Module):
        cls = None
    if cls is None:
        notes.append(f"features extractor {name} is not rebuilt from an untrusted file (no unpickling).")
    return name, cls, extractor_kwargs


def _resolve_class(recorded: Any) -> tuple[type[nn.Module] | None, str]:
    """A recorded class (a live class, or its ``str()`` in an untrusted zip) and its qualified name."""
    if recorded is None:
        return None, ""
    if isinstance(recorded, type):
        return recorded, f"{recorded.__module__}.{recorded.__qualname__}"
    name = m.group(1) if (m := re.match(r"<class '([\w.]+)'>", str(recorded))) else str(recorded)
    return _KNOWN_EXTRACTORS.get(name), _clean(name)  # the name is shown in notes and errors


def _check_description(kwargs: dict[str, Any], groups: dict[str, dict[str, th.Tensor]], notes: list[str]) -> bool:
    """Whether an encoder description builds, and into exactly the features extractor's tensors the source holds."""
    try:
        built = build_module(kwargs["description"], device="meta")
    except (InvalidSourceError, KeyError) as e:
        notes.append(f"the encoder description of the features extractor is not used: {_clean(str(e))}")
        return False
    shapes = {f"module.{k}": tuple(v.shape) for k, v in built.state_dict().items()}
    held = {k: tuple(v.shape) for k, v in (groups.get(FEATURES) or groups.get(f"actor.{FEATURES}") or {}).items()}
    if shapes != held or "features_dim" not in kwargs:
        notes.append("the encoder description of the features extractor does not match the tensors the file holds.")
        return False
    return True


def _safe_extractor_kwargs(name: str, kwargs: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Of an untrusted file's extractor kwargs, keep those SB3's extractors take, with the right types."""
    allowed = _SAFE_EXTRACTOR_KWARGS.get(name.rsplit(".", 1)[-1], {})
    # Sizes are bounded: a file may not make the target network allocate without limit.
    kept = {
        k: v
        for k, v in kwargs.items()
        if k in allowed and type(v) is allowed[k] and (type(v) is not int or 1 <= v <= MAX_LAYER_SIZE)
    }
    dropped = sorted(_clean(k) for k in set(kwargs) - set(kept))
    if dropped:
        shown = ", ".join(dropped[:10]) + (f" and {len(dropped) - 10} more" if len(dropped) > 10 else "")
        notes.append(f"features_extractor_kwargs {shown} from the file are not used (unknown or mistyped).")
    return kept
