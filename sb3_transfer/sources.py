"""Reading pretrained sources into a :class:`SourceNetwork`, without unpickling anything unless trusted.

A source is an SB3 ``.zip``, an SB3 algorithm, an SB3 policy, a plain ``nn.Module`` (an encoder, which becomes the
features extractor) or a state dict. SB3 zips are read from their JSON metadata and ``policy.pth`` alone, the latter
with ``torch.load(weights_only=True)``; the cloudpickled parts of ``data`` and the optimizer state are never
unpickled unless ``trust_source=True``. This is also what lets zips written by SB3 1.x, whose pickles name the old
``gym`` package, be read on a machine that only has gymnasium.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3.common import torch_layers
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from torch import nn

from sb3_transfer import adapters, extractors
from sb3_transfer.errors import (
    InvalidSourceError,
    SourceNotFoundError,
    TransferConfigError,
    UnsafeSourceError,
    UnsupportedSourceError,
)
from sb3_transfer.groups import ADAPTER, FEATURES, HEAD, MODULE_LAYOUT, PolicyLayout, by_group, detect_layout, layout_of

SUPPORTED_ALGOS = ("DQN", "QRDQN")

# Caps on what a zip member may unpack to, so that a small file cannot exhaust memory.
MAX_DATA_BYTES = 64 * 2**20
MAX_WEIGHTS_BYTES = 2 * 2**30
#: Largest layer size (features, filters) an untrusted file may ask for without weights that show it.
MAX_LAYER_SIZE = 2**16

# Keyword arguments of SB3's extractors that an untrusted zip may set, with their types.
_SAFE_EXTRACTOR_KWARGS: dict[str, dict[str, type]] = {
    "NatureCNN": {"features_dim": int, "normalized_image": bool},
    "CombinedExtractor": {"cnn_output_dim": int, "normalized_image": bool},
    "FlattenExtractor": {},
    "SmallCNN": {"features_dim": int, "n_filters": int, "normalized_image": bool},
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
    )
}

# Policy modules of algorithms we recognise but cannot transplant from, to name them in the error.
_OTHER_ALGOS = {
    "stable_baselines3.common.policies": "an actor-critic algorithm (PPO / A2C)",
    "stable_baselines3.ppo.policies": "PPO",
    "stable_baselines3.a2c.policies": "A2C",
    "stable_baselines3.sac.policies": "SAC",
    "stable_baselines3.td3.policies": "TD3 / DDPG",
    "sb3_contrib.tqc.policies": "TQC",
    "sb3_contrib.common.recurrent.policies": "RecurrentPPO",
    "sb3_contrib.common.maskable.policies": "MaskablePPO",
    "sb3_contrib.trpo.policies": "TRPO",
    "sb3_contrib.ars.policies": "ARS",
    "sb3_contrib.crossq.policies": "CrossQ",
}
_OTHER_KEY_HINTS = {
    "action_net.": "an actor-critic algorithm (PPO / A2C / TRPO)",
    "actor.": "an actor-critic algorithm (SAC / TD3)",
}


@dataclass
class SourceNetwork:
    """
    A pretrained network as sb3-transfer sees it: the online network's tensors and what is known of its
    architecture. Built by :func:`read_source`.

    :param tensors: The online network's tensors, named as in the source policy's ``state_dict()``
        (``q_net.q_net.0.weight``...; ``features_extractor.module.*`` for an encoder).
    :param algo: ``"DQN"``, ``"QRDQN"`` or ``"module"`` (a plain encoder).
    :param description: What the source is, for reports.
    :param layout: How its tensors form named layer groups (:data:`~sb3_transfer.groups.LAYOUTS`).
    :param n_actions: Number of actions of the source task, when known.
    :param n_quantiles: Number of quantiles (QR-DQN); 1 for DQN.
    :param net_arch: Hidden layer sizes, read from the tensor shapes.
    :param activation_fn: Activation between hidden layers.
    :param features_extractor_class: The source's features extractor class, when it could be resolved safely.
    :param features_extractor_name: Its qualified name, as recorded.
    :param features_extractor_kwargs: Its keyword arguments, where recorded or inferred.
    :param normalize_images: The source policy's ``normalize_images``, when recorded.
    :param module: The encoder, for a ``"module"`` source.
    :param sb3_version: SB3 version that wrote the zip, when known.
    :param notes: Assumptions made while reading, shown in the transfer report.
    """

    tensors: dict[str, th.Tensor]
    algo: str
    description: str
    layout: PolicyLayout = MODULE_LAYOUT
    n_actions: int | None = None
    n_quantiles: int = 1
    net_arch: list[int] = field(default_factory=list)
    activation_fn: type[nn.Module] = nn.ReLU
    features_extractor_class: type[nn.Module] | None = None
    features_extractor_name: str = ""
    features_extractor_kwargs: dict[str, Any] = field(default_factory=dict)
    normalize_images: bool | None = None
    module: nn.Module | None = None
    sb3_version: str | None = None
    notes: list[str] = field(default_factory=list)

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
        if ADAPTER in groups:
            return int(groups[ADAPTER]["weight"].shape[1])
        if groups.get(FEATURES) or self.features_extractor_name.endswith(".NatureCNN"):
            return None
        first = next((g for name, g in groups.items() if name.startswith("trunk.") or name == HEAD), None)
        return int(first["weight"].shape[1]) if first else None

    @property
    def adapted_dim(self) -> int | None:
        """When the source itself carries an input adapter, the size it adapts to."""
        adapter = self.groups.get(ADAPTER)
        return int(adapter["weight"].shape[0]) if adapter else None


def read_source(source: Any, trust_source: bool = False) -> SourceNetwork:
    """
    Read a pretrained source.

    :param source: Path to an SB3 ``.zip``; an SB3 algorithm; an SB3 policy; an ``nn.Module`` (an encoder); a
        state dict of an SB3 DQN / QR-DQN policy; or a :class:`SourceNetwork` already read (returned as it is).
    :param trust_source: Allow unpickling the zip's metadata (needed only for custom classes, e.g. a custom
        features extractor or activation function). Never set it for a file from a stranger.
    :return: The source network.
    """
    if isinstance(source, SourceNetwork):
        return source
    if isinstance(source, str | os.PathLike):
        return read_zip(source, trust_source=trust_source)
    if isinstance(source, BaseAlgorithm):
        return _from_policy(source.policy, f"{type(source).__name__} model")
    if isinstance(source, BasePolicy):
        return _from_policy(source, f"{type(source).__name__}")
    if isinstance(source, nn.Module):
        tensors = {f"{FEATURES}.module.{k}": v.detach().clone() for k, v in source.state_dict().items()}
        return SourceNetwork(tensors, "module", f"{type(source).__name__} module", module=source)
    if isinstance(source, Mapping):
        return _from_state_dict(source, "state dict", {})
    raise InvalidSourceError(
        f"Cannot use a {type(source).__name__} as a pretrained source: pass a path to an SB3 .zip, an SB3 DQN/QR-DQN "
        "model or policy, an nn.Module, or a state dict."
    )


def read_zip(path: str | os.PathLike, trust_source: bool = False) -> SourceNetwork:
    """
    Read an SB3 ``.zip`` (any SB3 release from 1.0) without unpickling anything unless ``trust_source``.

    :param path: The file; as with SB3's ``load``, ``.zip`` is appended when the path without it does not exist.
    :param trust_source: Allow unpickling the cloudpickled metadata (custom classes). Never for untrusted files.
    :return: The source network.
    """
    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".zip").exists():
        path = path.with_name(path.name + ".zip")
    if not path.exists():
        raise SourceNotFoundError(f"Pretrained source '{path}' does not exist.")
    if path.is_dir():
        raise InvalidSourceError(f"Pretrained source '{path}' is a directory, not an SB3 .zip file.")
    with open(path, "rb") as file:
        head = file.read(30 + 1024)
    if not zipfile.is_zipfile(path) and not head.startswith(b"PK\x03\x04"):
        raise InvalidSourceError(f"Pretrained source '{path}' is not a zip archive (SB3 models are saved as .zip files).")
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            # A cut-off SB3 zip can still look like a zip: of the PyTorch archive stored inside it.
            first_member = head[30 : 30 + int.from_bytes(head[26:28], "little")].decode("utf-8", "replace")
            if head.startswith(b"PK\x03\x04") and first_member not in members:
                raise zipfile.BadZipFile(f"its first member '{first_member}' is missing from its directory")
            missing = {"data", "policy.pth"} - members
            if missing:
                raise InvalidSourceError(
                    f"'{path}' is a zip archive but not an SB3 model: it lacks {', '.join(sorted(missing))} "
                    f"(it holds {', '.join(sorted(members)) or 'nothing'})."
                )
            for name, cap in (("data", MAX_DATA_BYTES), ("policy.pth", MAX_WEIGHTS_BYTES)):
                if archive.getinfo(name).file_size > cap:
                    raise InvalidSourceError(f"'{path}': its '{name}' member unpacks to more than {cap} bytes; refused.")
            data_bytes = archive.read("data")
            policy_bytes = archive.read("policy.pth")
            version_file = "_stable_baselines3_version"
            version = archive.read(version_file).decode("utf-8", "replace").strip() if version_file in members else None
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError, OSError) as e:
        raise InvalidSourceError(f"'{path}' is a damaged, truncated or unsupported zip archive: {e}") from e
    try:
        data = json.loads(data_bytes)
    except (ValueError, RecursionError) as e:
        raise InvalidSourceError(f"'{path}': its 'data' member is not SB3's JSON metadata ({e}).") from e
    if not isinstance(data, dict):
        raise InvalidSourceError(f"'{path}': its 'data' member is not SB3's JSON metadata (a {type(data).__name__}).")
    try:
        state_dict = th.load(io.BytesIO(policy_bytes), map_location="cpu", weights_only=not trust_source)
    except pickle.UnpicklingError as e:
        raise UnsafeSourceError(
            f"'{path}': policy.pth holds objects other than tensors, and loading them could run code from the file. "
            "If you trust its author, pass trust_source=True."
        ) from e
    except Exception as e:
        raise InvalidSourceError(f"'{path}': policy.pth cannot be read as PyTorch weights ({type(e).__name__}: {e}).") from e
    if not isinstance(state_dict, Mapping):
        raise InvalidSourceError(f"'{path}': policy.pth holds a {type(state_dict).__name__}, not a state dict.")
    meta = {**_zip_metadata(data, trust_source, path), "trusted": trust_source}
    network = _from_state_dict(state_dict, f"'{path}'", meta)
    network.description = f"'{path}' ({network.algo}" + (f", SB3 {version})" if version else ")")
    network.sb3_version = version
    return network


def _zip_metadata(data: dict[str, Any], trust_source: bool, path: Path) -> dict[str, Any]:
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
            raise InvalidSourceError(f"'{path}': its policy_kwargs cannot be unpickled ({type(e).__name__}: {e}).") from e
    elif isinstance(policy_kwargs, dict):
        policy_kwargs = {k: v for k, v in policy_kwargs.items() if not k.startswith(":")}
    action_space = data.get("action_space")
    n_actions = action_space.get("n") if isinstance(action_space, dict) else None
    return {
        "policy_module": module,
        "policy_class_name": class_name,
        "policy_kwargs": policy_kwargs if isinstance(policy_kwargs, dict) else {},
        "n_actions": int(n_actions) if re.fullmatch(r"[0-9]{1,9}", str(n_actions)) else None,
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
)


def _from_policy(policy: BasePolicy, label: str) -> SourceNetwork:
    try:
        layout_of(policy)
    except TransferConfigError:
        raise _unsupported(label, type(policy).__module__, policy.state_dict()) from None
    meta = {
        "policy_module": type(policy).__module__,
        "policy_class_name": type(policy).__name__,
        "policy_kwargs": {k: getattr(policy, k) for k in _ARCHITECTURE_ATTRIBUTES if hasattr(policy, k)},
        "n_actions": int(policy.action_space.n) if hasattr(policy.action_space, "n") else None,
        "trusted": True,  # a live object: its classes are already imported
    }
    return _from_state_dict(policy.state_dict(), label, meta)


def _check_tensors(state_dict: Mapping[Any, Any], label: str) -> dict[str, th.Tensor]:
    """The state dict's tensors, each a dense CPU float tensor with the data it claims (no stride-0 blow-ups)."""
    tensors = {}
    for key, value in state_dict.items():
        if not isinstance(value, th.Tensor):
            continue
        if not isinstance(key, str):
            raise InvalidSourceError(f"{label}: state dict key {key!r} is not a string.")
        counter = key.endswith("num_batches_tracked") and value.dtype == th.int64  # BatchNorm's step counter
        if value.layout != th.strided or value.device.type != "cpu" or not (value.is_floating_point() or counter):
            raise InvalidSourceError(
                f"{label}: tensor '{key}' is not a dense float tensor on the CPU "
                f"({value.layout}, {value.dtype}, {value.device})."
            )
        if value.untyped_storage().nbytes() < value.numel() * value.element_size():
            raise InvalidSourceError(f"{label}: tensor '{key}' claims more elements than its data holds; refused.")
        tensors[key] = value
    return tensors


def _check_layers(groups: dict[str, dict[str, th.Tensor]], label: str) -> None:
    for group, layer in groups.items():
        if group.startswith("trunk.") or group == "head":
            weight, bias = layer.get("weight"), layer.get("bias")
            extra = set(layer) - {"weight", "bias"}
            if weight is None or weight.dim() != 2 or extra or (bias is not None and bias.shape != weight.shape[:1]):
                shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in layer.items())
                raise InvalidSourceError(f"{label}: layer {group} is not a Linear layer's weight and bias ({shapes}).")


def _from_state_dict(state_dict: Mapping[str, Any], label: str, meta: dict[str, Any]) -> SourceNetwork:
    tensors = _check_tensors(state_dict, label)
    module = meta.get("policy_module", "")
    found = detect_layout(tensors)
    # A Q-network's own state dict (no policy prefix, e.g. policy.q_net.state_dict()) is accepted from live objects
    # only; a zip always holds a whole policy.
    if found is None or (found[1] and module):
        raise _unsupported(label, module, tensors)
    layout, prefix = found
    targets = tuple(f"{target}." for _, target in layout.targets)  # they follow the online networks
    tensors = {f"{prefix}{k}": v for k, v in tensors.items() if not f"{prefix}{k}".startswith(targets)}
    algo = layout.name

    kwargs = dict(meta.get("policy_kwargs") or {})
    notes: list[str] = []
    try:
        names = layout.split(tensors)
    except TransferConfigError as e:
        raise InvalidSourceError(f"{label}: {e}") from e
    groups = by_group(tensors, names)
    _check_layers(groups, label)
    head = groups.get(HEAD, {}).get("weight")
    if head is None:
        raise InvalidSourceError(f"{label}: the Q-network has no output layer ({layout.parts[-1].path}.<i>.weight).")
    net_arch = [int(g["weight"].shape[0]) for name, g in groups.items() if name.startswith("trunk.")]
    n_actions, n_quantiles = _actions_and_quantiles(int(head.shape[0]), algo, meta.get("n_actions"), kwargs, notes, label)
    activation_fn = _activation(kwargs.get("activation_fn"), notes, label)
    extractor_name, extractor_class, extractor_kwargs = _extractor(kwargs, meta.get("policy_class_name", ""), groups, notes)
    if not meta.get("trusted"):
        extractor_kwargs = _safe_extractor_kwargs(extractor_name, extractor_kwargs, notes)
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
    )


def _unsupported(label: str, module: str, tensors: Mapping[str, Any]) -> InvalidSourceError:
    algo = _OTHER_ALGOS.get(module) or next(
        (v for k, v in _OTHER_KEY_HINTS.items() if any(t.startswith(k) for t in tensors)), None
    )
    if algo:
        return UnsupportedSourceError(
            f"{label} is a model of {algo}; sb3-transfer transplants from {' and '.join(SUPPORTED_ALGOS)} only "
            "(their Q-networks share the layer groups it maps)."
        )
    return InvalidSourceError(
        f"{label} does not hold an SB3 DQN / QR-DQN Q-network (no 'q_net.q_net.*' or 'quantile_net.quantile_net.*' "
        f"tensors; found {', '.join(list(tensors)[:5]) or 'none'}). To use a plain encoder, pass the nn.Module itself."
    )


def _actions_and_quantiles(
    out_dim: int, algo: str, n_actions: int | None, kwargs: dict[str, Any], notes: list[str], label: str
) -> tuple[int, int]:
    if algo == "DQN":
        return out_dim, 1
    n_quantiles = kwargs.get("n_quantiles")
    if isinstance(n_actions, int) and n_actions > 0 and out_dim % n_actions == 0:
        return n_actions, out_dim // n_actions
    if isinstance(n_quantiles, int) and n_quantiles > 0 and out_dim % n_quantiles == 0:
        return out_dim // n_quantiles, n_quantiles
    if out_dim % 200 == 0:  # sb3-contrib's default n_quantiles
        notes.append("n_quantiles is not recorded; assumed sb3-contrib's default 200 from the head's shape.")
        return out_dim // 200, 200
    raise InvalidSourceError(
        f"{label}: cannot tell how the {out_dim} outputs of its QR-DQN head split into actions and quantiles; "
        "pass the model or policy itself, which know."
    )


def _activation(recorded: Any, notes: list[str], label: str) -> type[nn.Module]:
    if recorded is None:
        return nn.ReLU  # SB3's DQN / QR-DQN default, used when policy_kwargs does not name one
    if isinstance(recorded, type) and issubclass(recorded, nn.Module):
        return recorded
    name = m.group(1) if (m := re.match(r"<class 'torch\.nn\.modules\.activation\.(\w+)'>", str(recorded))) else None
    activation = getattr(nn, name, None) if name else None
    if (
        isinstance(activation, type)
        and issubclass(activation, nn.Module)
        and activation.__module__ == "torch.nn.modules.activation"
        and activation is not nn.MultiheadAttention
    ):
        return activation
    notes.append(
        f"activation {recorded} is not a torch activation read without unpickling; assumed ReLU (trust_source=True reads it)."
    )
    return nn.ReLU


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
    features = groups.get("features_extractor", {})
    if not name:  # not recorded: the policy class's default, recognisable from the weights too
        if policy_class_name == "CnnPolicy" or "cnn.0.weight" in features:
            cls = torch_layers.NatureCNN
        elif policy_class_name == "MultiInputPolicy" or any(k.startswith("extractors.") for k in features):
            cls = torch_layers.CombinedExtractor
        else:
            cls = torch_layers.FlattenExtractor
        name = f"{cls.__module__}.{cls.__qualname__}"
    if cls in (torch_layers.NatureCNN, extractors.SmallCNN) and "linear.0.weight" in features:
        extractor_kwargs["features_dim"] = int(features["linear.0.weight"].shape[0])
    if cls is extractors.SmallCNN and "cnn.0.weight" in features:
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
    return _KNOWN_EXTRACTORS.get(name), name


def _safe_extractor_kwargs(name: str, kwargs: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Of an untrusted file's extractor kwargs, keep those SB3's extractors take, with the right types."""
    allowed = _SAFE_EXTRACTOR_KWARGS.get(name.rsplit(".", 1)[-1], {})
    # Sizes are bounded: a file may not make the target network allocate without limit.
    kept = {
        k: v
        for k, v in kwargs.items()
        if k in allowed and type(v) is allowed[k] and (type(v) is not int or 1 <= v <= MAX_LAYER_SIZE)
    }
    dropped = sorted(set(kwargs) - set(kept))
    if dropped:
        notes.append(f"features_extractor_kwargs {', '.join(dropped)} from the file are not used (unknown or mistyped).")
    return kept
