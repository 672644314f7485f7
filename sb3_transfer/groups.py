"""The named-group view of SB3 policies: one table entry per policy class.

Every supported network is seen as ordered groups of tensors::

    adapter -> features_extractor -> trunk.0 ... trunk.N -> head

``adapter`` exists only when an :class:`~sb3_transfer.adapters.InputAdapter` sits in front of the pretrained
layers; ``trunk.i`` is the i-th hidden ``Linear`` layer of an MLP; ``head`` is the layer that gives the output
(for DQN the action values, for QR-DQN every quantile of every action). Policies with several networks prefix the
names of each (``pi.trunk.0``, ``vf.head``, ``critic.qf0.head``...). Reports, ``transfer=`` patterns, freezing and
learning-rate factors all speak in these names.

Which module of which policy class forms which groups is written down in :data:`LAYOUTS`, one
:class:`PolicyLayout` per SB3 policy class: supporting another algorithm is adding an entry there.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from torch import nn

from sb3_transfer.errors import TransferConfigError

ADAPTER = "adapter"
FEATURES = "features_extractor"
HEAD = "head"

#: Kinds of :class:`Part`.
EXTRACTOR, MLP, OUTPUT = "extractor", "mlp", "output"

#: Names accepted by ``transfer=`` besides glob patterns.
TRANSFER_PRESETS: dict[str, tuple[str, ...]] = {
    "features": (ADAPTER, FEATURES, f"*.{ADAPTER}", f"*.{FEATURES}"),
    "trunk": (ADAPTER, FEATURES, "trunk.*", f"*.{ADAPTER}", f"*.{FEATURES}", "*.trunk.*"),
    "all": ("*",),
}

T = TypeVar("T")

_WRAPPED = ("adapter.weight", "adapter.bias")  # an InputAdapter's own tensors, relative to it
_SUFFIX_RANK = {ADAPTER: 0, FEATURES: 1, "trunk": 2, HEAD: 3}


@dataclass(frozen=True)
class Part:
    """
    One module of a policy and the groups it forms.

    :param path: The module's path in the policy (``q_net.q_net``).
    :param kind: ``"extractor"``: a features extractor, the group ``features_extractor`` (and ``adapter`` when an
        input adapter wraps it); ``"mlp"``: an ``nn.Sequential`` whose ``Linear`` layers are ``trunk.0``,
        ``trunk.1``... (the last one ``head`` when ``head`` is set); ``"output"``: a module or parameter that is
        all of the group ``head``.
    :param prefix: Prefix of the group names (``"pi."``), empty for single-network policies.
    :param head: For an ``"mlp"``: whether its last ``Linear`` layer is the head.
    """

    path: str
    kind: str
    prefix: str = ""
    head: bool = True


@dataclass(frozen=True)
class PolicyLayout:
    """
    How the modules of an SB3 policy class form named layer groups.

    :param name: The algorithm family (``"DQN"``), as reports name it.
    :param policy_classes: Qualified names of the SB3 policy classes (and their subclasses) it describes.
    :param parts: The parts, in network order.
    :param targets: ``(online, target)`` module paths: a target network follows its online network after a transplant.
    """

    name: str
    policy_classes: tuple[str, ...]
    parts: tuple[Part, ...]
    targets: tuple[tuple[str, str], ...] = ()

    def split(self, names: Iterable[str]) -> dict[str, dict[str, str]]:
        """
        Split the tensor names of a policy (its ``state_dict()`` keys) into named groups.

        Tensors of the target networks are left out (they follow the online ones); a name that belongs to no part
        is an error.

        :param names: Tensor names relative to the policy, e.g. ``q_net.q_net.0.weight``.
        :return: ``{group: {local_name: name}}`` in network order; local names are relative to the group's module.
        """
        names = list(names)
        targets = tuple(f"{target}." for _, target in self.targets)
        by_part: dict[Part, list[str]] = {part: [] for part in self.parts}
        for name in names:
            if name.startswith(targets):
                continue
            part = next((p for p in self.parts if name == p.path or name.startswith(f"{p.path}.")), None)
            if part is None:
                raise TransferConfigError(
                    f"Tensor '{name}' belongs to no known part of a {self.name} policy "
                    f"(expected one of {', '.join(f'{p.path}.*' for p in self.parts)})."
                )
            by_part[part].append(name)
        groups: dict[str, dict[str, str]] = {}
        for part, members in by_part.items():
            for group, local, name in _part_groups(part, members):
                groups.setdefault(group, {})[local] = name
        return groups

    def modules(self, policy: nn.Module) -> dict[str, nn.Module]:
        """
        The module of each group of a built policy (for the eval mode of frozen groups), in network order.

        :param policy: A policy of one of :attr:`policy_classes`.
        """
        modules: dict[str, nn.Module] = {}
        for part in self.parts:
            try:
                module = policy.get_submodule(part.path)
            except AttributeError:  # an "output" part may be a parameter: it has no mode
                continue
            if part.kind == EXTRACTOR:
                inner = getattr(module, "extractor", None)
                if isinstance(getattr(module, ADAPTER, None), nn.Linear) and isinstance(inner, nn.Module):
                    modules[part.prefix + ADAPTER], modules[part.prefix + FEATURES] = getattr(module, ADAPTER), inner
                else:
                    modules[part.prefix + FEATURES] = module
            elif part.kind == MLP:
                names = [name for name, _ in module.named_parameters()]
                for group, _, name in _part_groups(part, [f"{part.path}.{n}" for n in names]):
                    modules.setdefault(group, module.get_submodule(name[len(part.path) + 1 :].split(".")[0]))
            else:
                modules[part.prefix + HEAD] = module
        return modules


def _part_groups(part: Part, names: list[str]) -> Iterable[tuple[str, str, str]]:
    """``(group, local name, name)`` of each tensor of one part, in network order."""
    offset = len(part.path) + 1
    if part.kind == EXTRACTOR:
        wrapped = any(name[offset:] in _WRAPPED for name in names)
        for name in names:
            local = name[offset:]
            if wrapped and local in _WRAPPED:
                yield part.prefix + ADAPTER, local[len(ADAPTER) + 1 :], name
            elif wrapped and local.startswith("extractor."):
                yield part.prefix + FEATURES, local[len("extractor.") :], name
            else:
                yield part.prefix + FEATURES, local, name
    elif part.kind == MLP:
        layer = re.compile(r"^(\d+)\.(.+)$")
        indices = sorted({int(m.group(1)) for name in names if (m := layer.match(name[offset:]))})
        group_of = {index: f"{part.prefix}trunk.{i}" for i, index in enumerate(indices)}
        if part.head and indices:
            group_of[indices[-1]] = part.prefix + HEAD
        for name in names:
            m = layer.match(name[offset:])
            if m is None:
                raise TransferConfigError(f"Tensor '{name}' is not a layer of the MLP '{part.path}'.")
            yield group_of[int(m.group(1))], m.group(2), name
    else:
        for name in names:
            yield part.prefix + HEAD, name[offset:] if name != part.path else name.rsplit(".", 1)[-1], name


def _q_network_layout(name: str, policy_class: str, net: str) -> PolicyLayout:
    return PolicyLayout(
        name=name,
        policy_classes=(policy_class,),
        parts=(Part(f"{net}.features_extractor", EXTRACTOR), Part(f"{net}.{net}", MLP)),
        targets=((net, f"{net}_target"),),
    )


#: One entry per supported SB3 policy class (subclasses included).
LAYOUTS: dict[str, PolicyLayout] = {
    "DQN": _q_network_layout("DQN", "stable_baselines3.dqn.policies.DQNPolicy", "q_net"),
    "QRDQN": _q_network_layout("QRDQN", "sb3_contrib.qrdqn.policies.QRDQNPolicy", "quantile_net"),
}

#: The layout of a plain encoder (an ``nn.Module`` source): it is all features extractor.
MODULE_LAYOUT = PolicyLayout(name="module", policy_classes=(), parts=(Part(FEATURES, EXTRACTOR),))


def layout_of(policy: nn.Module) -> PolicyLayout:
    """
    The layout of a built policy, found by its class (or the nearest base class that has an entry).

    :param policy: An SB3 policy.
    """
    for cls in type(policy).__mro__:
        qualified = f"{cls.__module__}.{cls.__qualname__}"
        for layout in LAYOUTS.values():
            if qualified in layout.policy_classes:
                return layout
    supported = ", ".join(c.rsplit(".", 1)[-1] for layout in LAYOUTS.values() for c in layout.policy_classes)
    raise TransferConfigError(f"{type(policy).__name__} is not a policy sb3-transfer knows (supported: {supported}).")


def detect_layout(names: Iterable[str]) -> tuple[PolicyLayout, str] | None:
    """
    The layout a policy's tensor names fit, and the prefix they lack: ``""`` for a whole policy's state dict,
    ``"q_net."`` for the state dict of its Q-network alone. ``None`` when none fits.

    :param names: Tensor names.
    """
    names = list(names)
    for prefix_of_online in (False, True):
        for layout in LAYOUTS.values():
            for online, _ in layout.targets if prefix_of_online else [("", "")]:
                prefix = f"{online}." if online else ""
                # Every part that is a network of its own (not the extractor: a FlattenExtractor has no tensors).
                needed = [p for p in layout.parts if p.kind != EXTRACTOR]
                if needed and all(any(f"{prefix}{n}".startswith(f"{p.path}.") for n in names) for p in needed):
                    return layout, prefix
    return None


def group_order(group: str) -> tuple[str, int, int, str]:
    """Sort key putting groups in network order: by prefix, then adapter, features_extractor, trunk.0..N, head."""
    prefix, _, last = group.rpartition(".")
    if prefix.endswith("trunk") and last.isdigit():
        prefix = prefix[: -len("trunk")].rstrip(".")
        return (prefix, _SUFFIX_RANK["trunk"], int(last), group)
    return (prefix, _SUFFIX_RANK.get(last, 4), 0, group)


def resolve_patterns(patterns: str | Sequence[str], groups: Iterable[str], what: str = "transfer") -> list[str]:
    """
    Expand group patterns (presets such as ``"trunk"`` or glob patterns such as ``"trunk.*"``) to group names.

    :param patterns: One preset or pattern, or a list of patterns.
    :param groups: The group names that exist.
    :param what: The argument's name, for error messages.
    :return: The matched group names in network order.
    """
    groups = list(groups)
    # A preset may name a group a given network lacks (no adapter, no hidden layer); a user's pattern may not.
    lenient = isinstance(patterns, str) and patterns in TRANSFER_PRESETS
    if isinstance(patterns, str):
        patterns = TRANSFER_PRESETS.get(patterns, (patterns,))
    elif not isinstance(patterns, Sequence) or not all(isinstance(p, str) for p in patterns):
        raise TransferConfigError(f"{what}= takes a preset name or a list of glob patterns, got {patterns!r}.")
    matched: set[str] = set()
    for pattern in patterns:
        hits = fnmatch.filter(groups, pattern)
        if not hits and not lenient:
            raise TransferConfigError(
                f"{what}= pattern '{pattern}' matches no layer group. Groups are: {', '.join(groups)}; "
                f"presets: {', '.join(TRANSFER_PRESETS)}."
            )
        matched.update(hits)
    return sorted(matched, key=group_order)


def by_group(values: Mapping[str, T], names: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, T]]:
    """``{group: {local: value}}`` from ``{name: value}`` and a :meth:`PolicyLayout.split` of the names."""
    return {group: {local: values[name] for local, name in members.items()} for group, members in names.items()}
