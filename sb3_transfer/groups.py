"""The named-group view of DQN and QR-DQN Q-networks.

Every supported Q-network is seen as ordered groups of tensors::

    adapter -> features_extractor -> trunk.0 ... trunk.N -> head

``adapter`` exists only when an :class:`~sb3_transfer.adapters.InputAdapter` sits in front of the pretrained
layers; ``trunk.i`` is the i-th hidden ``Linear`` layer of the MLP; ``head`` is its last ``Linear`` layer, the
action values (for QR-DQN, every quantile of every action). Reports, ``transfer=`` patterns and freezing all
speak in these names.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from torch import nn

from sb3_transfer.errors import TransferConfigError

ADAPTER = "adapter"
FEATURES = "features_extractor"
HEAD = "head"

#: The attribute of the policy holding the online Q-network, for each supported policy layout,
#: with the name of that network's MLP (``nn.Sequential``) attribute.
ONLINE_NETS = {"q_net": "q_net", "quantile_net": "quantile_net"}

#: Names accepted by ``transfer=`` besides glob patterns.
TRANSFER_PRESETS: dict[str, tuple[str, ...]] = {
    "features": (ADAPTER, FEATURES),
    "trunk": (ADAPTER, FEATURES, "trunk.*"),
    "all": ("*",),
}

T = TypeVar("T")

_ADAPTER_PREFIX = f"{FEATURES}.adapter."
_WRAPPED_PREFIX = f"{FEATURES}.extractor."


def split_groups(tensors: Mapping[str, T], mlp_name: str) -> dict[str, dict[str, T]]:
    """
    Split the tensors of one Q-network into named groups.

    :param tensors: Tensors (or anything else) keyed by their name relative to the Q-network,
        e.g. ``q_net.0.weight`` or ``features_extractor.cnn.0.weight``.
    :param mlp_name: Name of the network's MLP attribute (``q_net`` for DQN, ``quantile_net`` for QR-DQN).
    :return: ``{group: {local_name: tensor}}`` in group order; local names are relative to the group.
    """
    mlp_re = re.compile(rf"^{re.escape(mlp_name)}\.(\d+)\.(.+)$")
    layer_indices = sorted({int(m.group(1)) for name in tensors if (m := mlp_re.match(name))})
    layer_group = {index: f"trunk.{i}" for i, index in enumerate(layer_indices[:-1])}
    if layer_indices:
        layer_group[layer_indices[-1]] = HEAD
    wrapped = any(name.startswith(_ADAPTER_PREFIX) for name in tensors)

    groups: dict[str, dict[str, T]] = {}
    for name, value in tensors.items():
        if wrapped and name.startswith(_ADAPTER_PREFIX):
            group, local = ADAPTER, name[len(_ADAPTER_PREFIX) :]
        elif wrapped and name.startswith(_WRAPPED_PREFIX):
            group, local = FEATURES, name[len(_WRAPPED_PREFIX) :]
        elif name.startswith(f"{FEATURES}."):
            group, local = FEATURES, name[len(FEATURES) + 1 :]
        elif m := mlp_re.match(name):
            group, local = layer_group[int(m.group(1))], m.group(2)
        else:
            raise TransferConfigError(
                f"Tensor '{name}' belongs to no known part of a DQN/QR-DQN Q-network "
                f"(expected '{FEATURES}.*' or '{mlp_name}.<index>.*')."
            )
        groups.setdefault(group, {})[local] = value
    return {group: groups[group] for group in sorted(groups, key=group_order)}


def group_order(group: str) -> tuple[int, int, str]:
    """Sort key putting groups in network order: adapter, features_extractor, trunk.0..N, head."""
    if group == ADAPTER:
        return (0, 0, group)
    if group == FEATURES:
        return (1, 0, group)
    if group.startswith("trunk."):
        return (2, int(group.split(".", 1)[1]), group)
    if group == HEAD:
        return (3, 0, group)
    return (4, 0, group)


def online_network(policy: nn.Module) -> tuple[str, nn.Module, nn.Module]:
    """
    Find the online and target Q-networks of a DQN-family policy.

    :param policy: A ``DQNPolicy`` or ``QRDQNPolicy`` (or a subclass).
    :return: ``(mlp_name, online_net, target_net)``.
    """
    for attr, mlp_name in ONLINE_NETS.items():
        online, target = getattr(policy, attr, None), getattr(policy, f"{attr}_target", None)
        if isinstance(online, nn.Module) and isinstance(target, nn.Module):
            return mlp_name, online, target
    raise TransferConfigError(
        f"{type(policy).__name__} is not a DQN or QR-DQN policy: it has no online/target Q-network "
        f"(attributes {', '.join(f'{a}/{a}_target' for a in ONLINE_NETS)})."
    )


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
