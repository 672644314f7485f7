"""The one transplant path: plan what each pretrained tensor becomes in a target policy, apply it, report it.

Everything that writes pretrained weights into a policy (``load_and_adapt``, the CLI, configs, benchmarks) calls
:func:`transplant`. Each target tensor is, by group and name:

- ``copied``: taken as it is;
- ``adapted``: derived from the pretrained tensor (conv channels, head rows for other actions or quantiles);
- ``initialised``: left as the target model initialised it (group not selected, no pretrained counterpart,
  shape mismatch, or an input adapter's identity start);

and each pretrained tensor that lands nowhere is reported as ``dropped``. Nothing happens silently.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor, NatureCNN
from torch import nn

from sb3_transfer.adapters import InputAdapter, ModuleExtractor, adapt_conv_channels, remap_head
from sb3_transfer.errors import InvalidSourceError, StrictTransferError, TransferConfigError
from sb3_transfer.encoders import describe_module
from sb3_transfer.extractors import GraphExtractor, SmallCNN
from sb3_transfer.groups import ADAPTER, FEATURES, HEAD, distinct, group_order, layout_of, resolve_patterns
from sb3_transfer.sources import SourceNetwork, action_units

COPIED, ADAPTED, INITIALISED, DROPPED = "copied", "adapted", "initialised", "dropped"
_NOT_SELECTED = "not selected"
_MISMATCH = "shape mismatch"


@dataclass(frozen=True)
class TransferRow:
    """
    What happened to one tensor.

    :param group: The layer group.
    :param action: ``copied``, ``adapted``, ``initialised`` or ``dropped``.
    :param reason: Why, in words.
    :param source_name: The pretrained tensor's name, if there is one.
    :param target_name: The target policy's tensor name (``None`` for a dropped source tensor).
    :param source_shape: Shape of the pretrained tensor.
    :param target_shape: Shape of the target tensor.
    """

    group: str
    action: str
    reason: str
    source_name: str | None = None
    target_name: str | None = None
    source_shape: tuple[int, ...] | None = None
    target_shape: tuple[int, ...] | None = None


@dataclass
class TransferReport:
    """
    Layer by layer, what a transplant did. ``str()`` gives a readable table, :meth:`to_dict` a JSON-ready dict.

    :param source: Description of the pretrained source.
    :param target: Description of the target model.
    :param transfer: The groups selected for transfer.
    :param rows: One row per tensor.
    :param settings: Hyperparameters ``load_and_adapt`` chose for you, with the reason for each.
    :param notes: Assumptions and remarks.
    :param head_actions: The target actions whose head rows come from the source (``None`` when the head is new).
    """

    source: str
    target: str
    transfer: list[str]
    rows: list[TransferRow]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    head_actions: list[int] | None = None

    def counts(self) -> dict[str, int]:
        """Number of tensors per action."""
        return {action: sum(r.action == action for r in self.rows) for action in (COPIED, ADAPTED, INITIALISED, DROPPED)}

    def by_action(self, action: str) -> list[TransferRow]:
        """The rows with the given action."""
        return [r for r in self.rows if r.action == action]

    def group_actions(self) -> dict[str, set[str]]:
        """For each group, the set of actions taken on its tensors."""
        out: dict[str, set[str]] = {}
        for row in self.rows:
            out.setdefault(row.group, set()).add(row.action)
        return out

    def carried(self) -> list[str]:
        """The groups carried over whole: each of their tensors copied or adapted, none left as initialised."""
        return [g for g, actions in self.group_actions().items() if actions & {COPIED, ADAPTED} and INITIALISED not in actions]

    def save(self, path: str | os.PathLike) -> str:
        """
        Write the report as JSON (:meth:`to_dict`), e.g. beside the model it describes.

        :param path: The file to write.
        :return: The path written.
        """
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return str(path)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-serialisable data."""
        return {
            "source": self.source,
            "target": self.target,
            "transfer": list(self.transfer),
            "counts": self.counts(),
            "rows": [
                {**asdict(r), "source_shape": _list(r.source_shape), "target_shape": _list(r.target_shape)} for r in self.rows
            ],
            "settings": self.settings,
            "notes": list(self.notes),
            "head_actions": self.head_actions,
        }

    def __str__(self) -> str:
        header = ("group", "action", "target tensor", "shape", "source tensor", "shape", "reason")
        table = [header] + [
            (
                r.group,
                r.action,
                r.target_name or "-",
                _shape(r.target_shape),
                r.source_name or "-",
                _shape(r.source_shape),
                r.reason,
            )
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
        lines = [
            f"Transfer report: {self.source} -> {self.target}",
            f"transferred groups: {', '.join(self.transfer) or 'none'}",
            "",
        ]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in table]
        lines += ["", "summary: " + ", ".join(f"{n} {action}" for action, n in self.counts().items())]
        if self.settings:
            lines.append("settings chosen for fine-tuning (pass them to override):")
            lines += [f"  {name} = {s['value']!r}: {s['reason']}" for name, s in self.settings.items()]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _shape(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "(" + ", ".join(map(str, shape)) + ")"


def _list(shape: tuple[int, ...] | None) -> list[int] | None:
    return None if shape is None else list(shape)


def target_policy_kwargs(
    network: SourceNetwork,
    observation_space: spaces.Space,
    user_kwargs: Mapping[str, Any],
    quantiles: bool = False,
    target: str = "DQN",
) -> tuple[dict[str, Any], list[str]]:
    """
    The ``policy_kwargs`` of a target policy that fits a source network: its architecture, and an input adapter
    when the vector observation size differs. The user's ``policy_kwargs`` take precedence.

    :param network: The source network.
    :param observation_space: The target's observation space (after SB3's wrappers, i.e. images channel-first).
    :param user_kwargs: The user's ``policy_kwargs`` (architecture keys only).
    :param quantiles: Whether the target is a QR-DQN or TQC policy (it takes a quantile source's ``n_quantiles``).
    :param target: The target policy's family (its :data:`~sb3_transfer.groups.LAYOUTS` name).
    :return: The policy kwargs, and notes for the report.
    """
    notes: list[str] = []
    kwargs = _architecture_kwargs(network, target, quantiles)
    image = is_image_space(observation_space)
    if image and network.normalize_images is not None:
        kwargs["normalize_images"] = network.normalize_images

    cls = ModuleExtractor if network.module is not None else network.features_extractor_class
    extractor_kwargs = {"module": network.module} if network.module is not None else dict(network.features_extractor_kwargs)
    if "features_extractor_class" in user_kwargs:
        cls, extractor_kwargs = (
            user_kwargs["features_extractor_class"],
            dict(user_kwargs.get("features_extractor_kwargs") or {}),
        )
    elif cls is None:
        raise InvalidSourceError(
            f"{network.description} uses the custom features extractor {network.features_extractor_name}, which is not "
            "imported from a file that may come from a stranger. Pass policy_kwargs=dict(features_extractor_class=..., "
            "features_extractor_kwargs=...) with that class, or trust_source=True if you trust the file."
        )
    fits = {
        FlattenExtractor: not image and not isinstance(observation_space, spaces.Dict),
        NatureCNN: image,
        SmallCNN: image,
        CombinedExtractor: isinstance(observation_space, spaces.Dict),
    }.get(cls, True)
    input_dim = network.input_dim
    if not fits:
        notes.append(
            f"the source's {cls.__name__} does not fit the target observations {observation_space}; "
            "the target uses its policy's default extractor for them, freshly initialised."
        )
    elif (
        "features_extractor_class" not in user_kwargs
        and input_dim is not None
        and isinstance(observation_space, spaces.Box)
        and not image
        and (network.adapted_dim is not None or get_flattened_obs_dim(observation_space) != input_dim)
    ):
        adapted_dim = network.adapted_dim or input_dim
        if cls is ModuleExtractor and network.module is not None:
            inner = spaces.Box(-np.inf, np.inf, (adapted_dim,), np.float32)
            cls, extractor_kwargs = _encoder_extractor(network.module, inner, notes)
        kwargs["features_extractor_class"] = InputAdapter
        kwargs["features_extractor_kwargs"] = dict(
            adapted_dim=adapted_dim, extractor_class=cls, extractor_kwargs=extractor_kwargs
        )
        notes.append(
            f"the target has {get_flattened_obs_dim(observation_space)} observation inputs, the pretrained layers take "
            f"{adapted_dim}: an input adapter sits in front of them."
        )
    else:
        if cls is ModuleExtractor and network.module is not None and "features_extractor_class" not in user_kwargs:
            cls, extractor_kwargs = _encoder_extractor(network.module, observation_space, notes)
        kwargs.update(features_extractor_class=cls, features_extractor_kwargs=extractor_kwargs)

    for key, value in user_kwargs.items():
        if key in kwargs and kwargs[key] != value and key != "features_extractor_kwargs":
            notes.append(f"policy_kwargs {key}={value!r} from you (the source has {kwargs[key]!r}).")
        kwargs[key] = value
    return kwargs, notes


def _architecture_kwargs(network: SourceNetwork, target: str, quantiles: bool) -> dict[str, Any]:
    """The hidden layers, activation, quantiles and critics a source implies for a target family."""
    if network.algo == "module":
        return {}
    kwargs: dict[str, Any] = dict(net_arch=_net_arch(network.net_arch, target), activation_fn=network.activation_fn)
    # Quantiles of the head (QR-DQN) or of each critic (TQC): only into the same kind of network.
    if quantiles and network.n_quantiles > 1 and (network.algo in _ACTOR_CRITICS) == (target in _ACTOR_CRITICS):
        kwargs["n_quantiles"] = network.n_quantiles
    if target == "ActorCritic" and network.share_features_extractor is False:
        kwargs["share_features_extractor"] = False
    if target in _ACTOR_CRITICS and network.algo in _ACTOR_CRITICS:
        if network.n_critics is not None:
            kwargs["n_critics"] = network.n_critics
        if network.share_features_extractor:
            kwargs["share_features_extractor"] = True
    return kwargs


#: The families whose policies have an actor and critics of ``Q(s, a)`` (SAC's ``net_arch`` keys ``pi`` and ``qf``).
_ACTOR_CRITICS = ("SAC", "TD3")


def _net_arch(net_arch: list[int] | dict[str, list[int]], target: str) -> list[int] | dict[str, list[int]]:
    """
    A source's hidden layers as the target family takes them: a Q-network follows an actor's; a critic of one family
    follows the other's (PPO's value network for SAC's critics, and back).
    """
    if not isinstance(net_arch, dict):
        return list(net_arch)
    pi, critic = list(net_arch.get("pi", [])), list(net_arch.get("qf", net_arch.get("vf", [])))
    if target == "ActorCritic":
        return {"pi": pi, "vf": critic}
    if target in _ACTOR_CRITICS:
        return {"pi": pi, "qf": critic}
    return pi


def _encoder_extractor(module: nn.Module, observation_space: spaces.Space, notes: list[str]) -> tuple[type, dict[str, Any]]:
    """
    The features extractor of an encoder source: its plain description (:class:`~sb3_transfer.extractors.GraphExtractor`),
    so that a saved model holds no pickled module; the module itself when it cannot be described.
    """
    probe = ModuleExtractor(observation_space, module)  # first conv fitted to the target's channels, output size found
    try:
        description = describe_module(probe.module)
    except ValueError as e:
        notes.append(
            f"the encoder {type(module).__qualname__} is kept as a module, not a plain description ({e}): a model "
            "saved from it holds the pickled encoder and needs its class to load."
        )
        return ModuleExtractor, {"module": module}
    return GraphExtractor, {"description": description, "features_dim": probe.features_dim}


def transplant(
    source: SourceNetwork,
    policy: BasePolicy,
    transfer: str | Sequence[str] = "trunk",
    action_map: Mapping[int, int] | None = None,
    strict: bool = False,
    target_description: str | None = None,
) -> TransferReport:
    """
    Write a pretrained network into a built policy: its online networks, then each target network as a copy of its
    online network.

    Each target group takes the source group of its name; where the source has none, a network's group takes the
    source's shared one (``pi.trunk.0`` and ``vf.trunk.0`` from a Q-network's ``trunk.0``; ``vf.features_extractor``
    from a shared ``features_extractor``) and a shared group takes the actor's (``features_extractor`` from
    ``pi.features_extractor``): so layers carry over between algorithms where their shapes allow.

    :param source: The pretrained network (see :func:`~sb3_transfer.sources.read_source`).
    :param policy: The target policy, already built for the target task (a policy :data:`~sb3_transfer.groups.LAYOUTS`
        knows).
    :param transfer: ``"features"``, ``"trunk"``, ``"all"`` or a list of glob patterns over group names.
    :param action_map: ``{target_action: source_action}``: head rows to carry over (implies the head is transferred).
        For Box actions, ``{target_dimension: source_dimension}``: the rows of the mean and of ``log_std``.
    :param strict: Raise :class:`~sb3_transfer.errors.StrictTransferError` if any selected tensor cannot be copied as is.
    :param target_description: How the report names the target.
    :return: The report.
    """
    layout = layout_of(policy)
    target_state = policy.state_dict()
    distinct_state, aliases = distinct(target_state)
    target_names = layout.split(distinct_state)
    source_groups, source_names = source.groups, source.group_names
    all_groups = sorted(set(target_names) | set(source_groups), key=group_order)
    selected = resolve_patterns(transfer, all_groups)
    head = _Head(source, policy, layout.action_head, action_map)
    if action_map is not None and head.group not in selected:
        selected = sorted({*selected, head.group}, key=group_order)

    rows: list[TransferRow] = []
    new_state = dict(target_state)
    used: set[str] = set()
    pairs = [(group, _source_group(group, source_groups)) for group in target_names]
    pairs += [(group, group) for group in source_groups if group not in {sg for _, sg in pairs}]
    for group, source_group in sorted(pairs, key=lambda pair: group_order(pair[0])):
        used.add(source_group)
        src, tgt = source_groups.get(source_group, {}), target_names.get(group, {})
        decisions: dict[str, tuple[th.Tensor | None, str, str]] = {}
        for local in [*tgt, *(name for name in src if name not in tgt)]:
            if local not in tgt:
                decisions[local] = (None, DROPPED, "no counterpart in the target network")
            else:
                # (gSDE's log_std is per latent unit and action: its rows are no actions)
                is_head = group == layout.action_head and source_group == source.layout.action_head
                is_head = is_head and not (local == "log_std" and target_state[tgt[local]].dim() == 2)
                value = target_state[tgt[local]]
                decisions[local] = _carry(group, src.get(local), value, group in selected, head if is_head else None)
                if decisions[local][2].startswith(_MISMATCH) and _is_value_head(group, layout.action_head):
                    decisions[local] = _carry_value_head(src[local], value)
        _keep_layers_whole(decisions)
        for local, (value, action, reason) in decisions.items():
            s, name = src.get(local), tgt.get(local)
            if value is not None:
                new_state[name] = value.to(dtype=target_state[name].dtype, device=target_state[name].device)  # type: ignore[index]
            if source_group != group and s is not None and action != DROPPED:
                reason = f"{reason} (from {source_group})"
            rows.append(
                TransferRow(
                    group=group,
                    action=action,
                    reason=f"not selected by transfer={transfer!r}" if reason == _NOT_SELECTED else reason,
                    source_name=source_names[source_group][local] if s is not None else None,
                    target_name=name,
                    source_shape=tuple(s.shape) if s is not None else None,
                    target_shape=tuple(target_state[name].shape) if name is not None else None,
                )
            )
    report = TransferReport(
        source=source.description,
        target=target_description or type(policy).__name__,
        transfer=selected,
        rows=rows,
        notes=list(source.notes),
    )
    if head.group in report.carried() and head.rows is not None:
        report.head_actions = sorted(head.rows)
    if strict:
        violations = [r for r in rows if r.group in selected and r.action != COPIED]
        if violations:
            listing = "\n".join(f"  {r.group}: {r.target_name or r.source_name} {r.action} ({r.reason})" for r in violations)
            raise StrictTransferError(f"strict=True: {len(violations)} selected tensor(s) cannot be copied as is:\n{listing}")
    for alias, name in aliases.items():  # a module under two names gets its new tensors under both
        new_state[alias] = new_state[name]
    policy.load_state_dict(new_state)
    # SB3 syncs a target network only when the policy is built; it must start equal to the transplanted online one.
    for online, target in layout.targets:
        policy.get_submodule(target).load_state_dict(policy.get_submodule(online).state_dict())
    return report


#: The same network under another algorithm's name: an actor-critic's actor is SAC's and TD3's; their critics' features
#: extractor stands for the value network's (their ``Q(s, a)`` layers take the action too: no layer of them does).
_SAME_NETWORK = {"pi": ("actor",), "actor": ("pi",), "vf": ("critic",), "critic": ("vf",)}


def _source_group(group: str, source_groups: Mapping[str, Any]) -> str:
    """
    The source group a target group takes: the one of its name; else the same network's under another algorithm's
    name (``actor.trunk.0`` from ``pi.trunk.0``); else, for a network's group (``vf.trunk.0``), the source's shared one
    (``trunk.0``); for a shared group (``features_extractor``), the actor's.
    """
    if group in source_groups:
        return group
    prefix, dot, suffix = group.partition(".")
    if not dot or prefix == "trunk":
        prefix, suffix = "", group
    extractor = suffix in (FEATURES, ADAPTER)
    candidates = [f"{other}.{suffix}" for other in _SAME_NETWORK.get(prefix, ()) if other in ("pi", "actor") or extractor]
    if prefix in ("pi", "vf", "actor") or (prefix == "critic" and extractor):
        candidates.append(suffix)
    if not prefix:
        candidates += [f"pi.{group}", f"actor.{group}"]
    return next((c for c in candidates if c in source_groups), group)


def _layer(local: str) -> str:
    """The layer a tensor belongs to, within its group: ``log_std`` is one of its own beside the action net."""
    return local if local == "log_std" else local.rpartition(".")[0]


def _keep_layers_whole(decisions: dict[str, tuple[th.Tensor | None, str, str]]) -> None:
    """A layer whose weight could not be carried keeps none of its pretrained tensors (a lone bias means nothing)."""
    failed = {_layer(local) for local, (_, action, reason) in decisions.items() if reason.startswith(_MISMATCH)}
    for local, (_, action, _reason) in list(decisions.items()):
        layer = _layer(local)
        if layer in failed and action in (COPIED, ADAPTED):
            decisions[local] = (
                None,
                INITIALISED,
                f"{_MISMATCH} in its layer ({layer or 'this group'}): the layer starts fresh",
            )


class _Head:
    """
    The action heads of a transplant: the target's group, its number of action units (actions, or Box dimensions)
    and the validated rows to carry (``{target_action: source_action}``, ``None`` when none can be).
    """

    def __init__(self, source: SourceNetwork, policy: BasePolicy, group: str, action_map: Mapping[int, int] | None) -> None:
        self.group = group
        self.source = source
        self.continuous = isinstance(policy.action_space, spaces.Box)
        self.space = policy.action_space
        self.n_target = action_units(policy.action_space)
        self.mismatch = ""
        if source.algo != "module" and source.n_actions is not None and source.continuous != self.continuous:
            kinds = ("Box", "Discrete") if source.continuous else ("Discrete", "Box")
            self.mismatch = f"new head: the source's actions are {kinds[0]}, the target's {kinds[1]}"
        self.rows = None if self.mismatch or self.n_target is None else _head_map(action_map, source, self.n_target)
        if action_map is not None and self.rows is None:
            why = self.mismatch or f"the target action space {policy.action_space} has no rows to map"
            raise TransferConfigError(f"action_map= cannot be applied: {why}.")


def _carry(
    group: str, s: th.Tensor | None, t: th.Tensor, selected: bool, head: _Head | None
) -> tuple[th.Tensor | None, str, str]:
    """What one target tensor becomes: ``(new value or None to keep the target's, action, reason)``."""
    if group.rpartition(".")[2] == ADAPTER and (s is None or s.shape != t.shape):
        return None, INITIALISED, _adapter_reason(t)
    if not selected:
        return None, INITIALISED, _NOT_SELECTED
    if s is None:
        return None, INITIALISED, "no pretrained counterpart (new layer)"
    if head is not None and s.shape[1:] == t.shape[1:]:
        return _carry_head(s, t, head)
    if s.shape == t.shape:
        return s.clone(), COPIED, "same shape"
    if s.dim() == 4 and s.shape[0] == t.shape[0] and s.shape[2:] == t.shape[2:]:
        return (
            adapt_conv_channels(s, t.shape[1]),
            ADAPTED,
            f"input channels {s.shape[1]} -> {t.shape[1]}: kernels cycled over the channels, response to alike channels kept",
        )
    return None, INITIALISED, f"{_MISMATCH}: pretrained {_shape(tuple(s.shape))}, target {_shape(tuple(t.shape))}"


def _carry_head(s: th.Tensor, t: th.Tensor, head: _Head) -> tuple[th.Tensor | None, str, str]:
    n_source_actions, n_target_actions, head_map = head.source.n_actions or 0, head.n_target or 0, head.rows
    units = "action dimensions" if head.continuous else "actions"
    if head.mismatch:
        return None, INITIALISED, head.mismatch
    if head.n_target is None:  # MultiDiscrete, MultiBinary...: rows that are no actions of one kind
        if s.shape == t.shape:
            return s.clone(), COPIED, "same shape"
        return None, INITIALISED, f"new head: the target's action space ({head.space}) takes another shape"
    if head_map is None:
        return (
            None,
            INITIALISED,
            f"new head: the target has {n_target_actions} {units}, the source {n_source_actions}; action_map carries rows",
        )
    n_q_src, n_q_tgt = s.shape[0] // max(n_source_actions, 1), t.shape[0] // n_target_actions
    identity = n_source_actions == n_target_actions and all(k == v for k, v in head_map.items())
    if identity and len(head_map) == n_target_actions and n_q_src == n_q_tgt:
        return s.clone(), COPIED, "same shape"
    value = remap_head(s, t, n_source_actions, n_target_actions, head_map)
    parts = []
    if not identity or len(head_map) != n_target_actions:
        unmapped = sorted(set(range(n_target_actions)) - set(head_map))
        mapped = ", ".join(f"{a}<-{b}" for a, b in sorted(head_map.items()))
        parts.append(f"rows of {units} {mapped} carried" + (f"; {units} {unmapped} start at their mean" if unmapped else ""))
    if n_q_src != n_q_tgt:
        how = "averaged" if n_q_tgt == 1 else "repeated" if n_q_src == 1 else "re-sampled, mean kept"
        parts.append(f"{n_q_src} -> {n_q_tgt} quantiles ({how})")
    return value, ADAPTED, "; ".join(parts)


def _is_value_head(group: str, action_head: str) -> bool:
    """A head that gives values, not actions (a critic's ``critic.qf0.head``, ``vf.head``)."""
    return group != action_head and group.rpartition(".")[2] == HEAD and group.startswith(("critic.", "vf."))


def _carry_value_head(s: th.Tensor, t: th.Tensor) -> tuple[th.Tensor | None, str, str]:
    """A critic head of one value and one of quantiles of it (SAC's and TQC's): converted, its mean kept exactly."""
    if s.shape[1:] != t.shape[1:]:
        return None, INITIALISED, f"{_MISMATCH}: pretrained {_shape(tuple(s.shape))}, target {_shape(tuple(t.shape))}"
    n_src, n_tgt = s.shape[0], t.shape[0]
    how = "averaged" if n_tgt == 1 else "repeated" if n_src == 1 else "re-sampled, mean kept"
    return remap_head(s, t, 1, 1, {0: 0}), ADAPTED, f"{n_src} -> {n_tgt} quantiles of the value ({how})"


def _head_map(action_map: Mapping[int, int] | None, source: SourceNetwork, n_target_actions: int) -> dict[int, int] | None:
    """The validated ``{target_action: source_action}`` map for the head, or ``None`` when no row can be carried."""
    n_source_actions = source.n_actions
    if action_map is None:
        if n_source_actions == n_target_actions:
            return {a: a for a in range(n_target_actions)}
        return None
    if source.algo == "module" or n_source_actions is None:
        raise TransferConfigError("action_map= needs a source with an action head; this source has none.")
    if not isinstance(action_map, Mapping) or not action_map:
        raise TransferConfigError(
            f"action_map= must be a non-empty {{target_action: source_action}} dict, got {action_map!r}."
        )
    checked: dict[int, int] = {}
    for target_action, source_action in action_map.items():
        for value, n, side in ((target_action, n_target_actions, "target"), (source_action, n_source_actions, "source")):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TransferConfigError(f"action_map entry {target_action!r}: {source_action!r}: actions must be integers.")
            if not 0 <= int(value) < n:
                raise TransferConfigError(
                    f"action_map entry {target_action!r}: {source_action!r}: {side} action {value} does not exist "
                    f"(the {side} task has actions 0..{n - 1})."
                )
        checked[int(target_action)] = int(source_action)
    return checked


def _adapter_reason(t: th.Tensor) -> str:
    if t.dim() == 2:
        out_dim, in_dim = t.shape
        shared = min(in_dim, out_dim)
        extra = f", inputs {shared}..{in_dim - 1} random" if in_dim > out_dim else ""
        return f"input adapter {in_dim} -> {out_dim} inputs: identity on the first {shared}{extra}"
    return "input adapter bias: zero"
