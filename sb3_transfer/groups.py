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

import torch as th
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
    :param required: Whether every policy of the class has tensors here (an actor-critic's ``log_std`` exists for Box
        actions only, its MLPs may have no hidden layer): how a state dict is recognised (:func:`detect_layout`).
    :param local: For an ``"output"`` module of its own that joins a group beside another (SAC's ``log_std`` layer
        beside the mean): the name its tensors take in the group (``log_std.weight``).
    """

    path: str
    kind: str
    prefix: str = ""
    head: bool = True
    required: bool = True
    local: str = ""


@dataclass(frozen=True)
class PolicyLayout:
    """
    How the modules of an SB3 policy class form named layer groups.

    :param name: The algorithm family (``"DQN"``), as reports name it.
    :param policy_classes: Qualified names of the SB3 policy classes (and their subclasses) it describes.
    :param parts: The parts, in network order.
    :param targets: ``(online, target)`` module paths: a target network follows its online network after a transplant.
    :param aliases: Module paths that name another part's module (an actor-critic's ``pi_features_extractor`` is its
        ``features_extractor``): their tensors are left out, as the target networks' are.
    :param action_head: The group whose outputs are the actions (Q-values, logits or the mean action), which
        ``action_map`` remaps.
    :param activation_fn: The policy class's default activation, for a source that does not record its own.
    :param optimized: The module whose ``parameters()`` SB3's own optimizer holds (``""``: the whole policy).
    :param optimizers: For policies with an optimizer per network (SAC, TD3): ``(optimizer attribute, module)`` pairs,
        each optimizer holding the groups of its module (``("actor.optimizer", "actor")``). Empty: one optimizer,
        ``optimizer``, over :attr:`optimized`.
    :param net_arch: ``(net_arch key, group prefix)`` pairs: where an algorithm's ``net_arch`` dict takes each network's
        hidden layers from (``("pi", "actor.")``). Empty: a list, the unprefixed groups'.
    :param continuous: Whether the policy class acts on Box actions only (SAC, TD3).
    """

    name: str
    policy_classes: tuple[str, ...]
    parts: tuple[Part, ...]
    targets: tuple[tuple[str, str], ...] = ()
    aliases: tuple[str, ...] = ()
    action_head: str = HEAD
    activation_fn: type[nn.Module] = nn.ReLU
    optimized: str = ""
    optimizers: tuple[tuple[str, str], ...] = ()
    net_arch: tuple[tuple[str, str], ...] = ()
    continuous: bool = False

    def optimizer_slots(self) -> tuple[tuple[str, str], ...]:
        """``(optimizer attribute, module)`` of each optimizer SB3 builds for the policy."""
        return self.optimizers or (("optimizer", self.optimized),)

    def split(self, names: Iterable[str]) -> dict[str, dict[str, str]]:
        """
        Split the tensor names of a policy (its ``state_dict()`` keys) into named groups.

        Tensors of the target networks are left out (they follow the online ones); a name that belongs to no part
        is an error.

        :param names: Tensor names relative to the policy, e.g. ``q_net.q_net.0.weight``.
        :return: ``{group: {local_name: name}}`` in network order; local names are relative to the group's module.
        """
        names = list(names)
        skipped = tuple(f"{path}." for path in (*(target for _, target in self.targets), *self.aliases))
        by_part: dict[Part, list[str]] = {part: [] for part in self.parts}
        for name in names:
            if name.startswith(skipped):
                continue
            part = next((p for p in self.parts if name == p.path or name.startswith(f"{p.path}.")), None)
            if part is None:
                paths = [f"{p.path}.*" for p in self.parts]
                shown = ", ".join(paths[:8]) + (f" ... {paths[-1]}" if len(paths) > 8 else "")
                raise TransferConfigError(
                    f"Tensor '{name}' belongs to no known part of a {self.name} policy (expected one of {shown})."
                )
            by_part[part].append(name)
        groups: dict[str, dict[str, str]] = {}
        for part, members in by_part.items():
            for group, local, name in _part_groups(part, members):
                groups.setdefault(group, {})[local] = name
        return _name_unshared(groups)

    def modules(self, policy: nn.Module) -> dict[str, nn.Module]:
        """
        The module of each group of a built policy (for the eval mode of frozen groups), in network order.

        :param policy: A policy of one of :attr:`policy_classes`.
        """
        modules: dict[str, nn.Module] = {}
        seen: set[int] = set()
        for part in self.parts:
            try:
                module = policy.get_submodule(part.path)
            except AttributeError:  # an "output" part may be a parameter: it has no mode
                continue
            if id(module) in seen:  # a shared features extractor, under the critic's name too
                continue
            seen.add(id(module))
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
                modules.setdefault(part.prefix + HEAD, module)
        return _name_unshared(modules)


def _name_unshared(groups: dict[str, T]) -> dict[str, T]:
    """
    When a network has a features extractor of its own (an actor-critic's ``vf.features_extractor``), the policy's
    first one is not shared: it is the actor's, ``pi.features_extractor`` (and ``pi.adapter``).
    """
    if any(g.endswith((f".{FEATURES}", f".{ADAPTER}")) for g in groups):
        groups = {f"pi.{g}" if g in (ADAPTER, FEATURES) else g: v for g, v in groups.items()}
    return dict(sorted(groups.items(), key=lambda item: group_order(item[0])))


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
            local = name[offset:] if name != part.path else name.rsplit(".", 1)[-1]
            # A head wrapped with its output activation (SAC's gSDE mean, clipped: nn.Sequential(Linear, Hardtanh)) is
            # its Linear layer.
            local = local[2:] if local.startswith("0.") else local
            yield part.prefix + HEAD, f"{part.local}.{local}" if part.local and name != part.path else local, name


def _q_network_layout(name: str, policy_class: str, net: str) -> PolicyLayout:
    return PolicyLayout(
        name=name,
        policy_classes=(policy_class,),
        parts=(Part(f"{net}.features_extractor", EXTRACTOR), Part(f"{net}.{net}", MLP)),
        targets=((net, f"{net}_target"),),
        optimized=net,
    )


#: SB3's ``ActorCriticPolicy`` (PPO, A2C) and sb3-contrib's ``MaskableActorCriticPolicy`` (MaskablePPO): a features
#: extractor (shared, or the actor's and ``vf.features_extractor``), the actor's and the critic's MLPs, the action net
#: with ``log_std`` (Box actions) as ``pi.head``, the value net as ``vf.head``.
ACTOR_CRITIC = PolicyLayout(
    name="ActorCritic",
    policy_classes=(
        "stable_baselines3.common.policies.ActorCriticPolicy",
        "sb3_contrib.common.maskable.policies.MaskableActorCriticPolicy",
    ),
    parts=(
        Part(FEATURES, EXTRACTOR),
        Part(f"vf_{FEATURES}", EXTRACTOR, "vf."),
        Part("mlp_extractor.policy_net", MLP, "pi.", head=False, required=False),
        Part("mlp_extractor.value_net", MLP, "vf.", head=False, required=False),
        Part("action_net", OUTPUT, "pi."),
        Part("log_std", OUTPUT, "pi.", required=False),
        Part("value_net", OUTPUT, "vf."),
    ),
    aliases=(f"pi_{FEATURES}",),
    action_head=f"pi.{HEAD}",
    activation_fn=nn.Tanh,
)

#: Critics an actor/critic policy may have (SB3's ``n_critics``, 2 by default): ``critic.qf0`` ... ``critic.qf63``.
MAX_CRITICS = 64


def _critics() -> tuple[Part, ...]:
    """SB3's ``ContinuousCritic`` (and TQC's quantile critics): a features extractor, then one MLP per critic."""
    return (
        Part(f"critic.{FEATURES}", EXTRACTOR, "critic."),
        *(Part(f"critic.qf{k}", MLP, f"critic.qf{k}.", required=k == 0) for k in range(MAX_CRITICS)),
    )


_ACTOR_CRITICS = dict(
    action_head=f"actor.{HEAD}",
    optimizers=(("actor.optimizer", "actor"), ("critic.optimizer", "critic")),
    net_arch=(("pi", "actor."), ("qf", "critic.qf0.")),
    continuous=True,
)

#: SB3's ``SACPolicy`` and sb3-contrib's ``TQCPolicy``: the actor's features extractor, hidden layers
#: (``actor.latent_pi``), mean (``actor.mu``) and ``log_std`` (a layer; gSDE's matrix) together as ``actor.head``; the
#: critics ``critic.qf<k>`` (TQC's give quantiles), with the target critics following.
SAC = PolicyLayout(
    name="SAC",
    policy_classes=("stable_baselines3.sac.policies.SACPolicy", "sb3_contrib.tqc.policies.TQCPolicy"),
    parts=(
        Part(f"actor.{FEATURES}", EXTRACTOR, "actor."),
        Part("actor.latent_pi", MLP, "actor.", head=False, required=False),
        Part("actor.mu", OUTPUT, "actor."),
        Part("actor.log_std", OUTPUT, "actor.", local="log_std"),
        *_critics(),
    ),
    targets=(("critic", "critic_target"),),
    **_ACTOR_CRITICS,  # type: ignore[arg-type]
)

#: SB3's ``TD3Policy`` (TD3, DDPG): a deterministic actor (``actor.mu``, its last layer ``actor.head``) and the critics,
#: the target actor and critics following.
TD3 = PolicyLayout(
    name="TD3",
    policy_classes=("stable_baselines3.td3.policies.TD3Policy",),
    parts=(Part(f"actor.{FEATURES}", EXTRACTOR, "actor."), Part("actor.mu", MLP, "actor."), *_critics()),
    targets=(("actor", "actor_target"), ("critic", "critic_target")),
    **_ACTOR_CRITICS,  # type: ignore[arg-type]
)

#: One entry per supported SB3 policy class (subclasses included). SAC comes before TD3: a SAC policy's tensors fit
#: TD3's parts too (``actor.mu.*``, ``critic.qf0.*``), TD3's lack SAC's ``actor.log_std``.
LAYOUTS: dict[str, PolicyLayout] = {
    "DQN": _q_network_layout("DQN", "stable_baselines3.dqn.policies.DQNPolicy", "q_net"),
    "QRDQN": _q_network_layout("QRDQN", "sb3_contrib.qrdqn.policies.QRDQNPolicy", "quantile_net"),
    "ActorCritic": ACTOR_CRITIC,
    "SAC": SAC,
    "TD3": TD3,
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
                needed = [p for p in layout.parts if p.kind != EXTRACTOR and p.required]
                if needed and all(any(_under(f"{prefix}{n}", p.path) for n in names) for p in needed):
                    return layout, prefix
    return None


def _under(name: str, path: str) -> bool:
    return name == path or name.startswith(f"{path}.")


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


def distinct(state: Mapping[str, th.Tensor]) -> tuple[dict[str, th.Tensor], dict[str, str]]:
    """
    A state dict without the names that alias an earlier tensor (the same data, shape and strides, and the same name
    below the first module path): a module registered under two names, such as an actor-critic's shared features
    extractor, which its ``state_dict()`` lists as ``features_extractor.*``, ``pi_features_extractor.*`` and
    ``vf_features_extractor.*``.

    :param state: Tensors by name, in the policy's order.
    :return: The distinct tensors, and ``{alias: name}`` for those left out.
    """
    first: dict[tuple[int, th.dtype, tuple[int, ...], tuple[int, ...], str], str] = {}
    kept: dict[str, th.Tensor] = {}
    aliases: dict[str, str] = {}
    for name, tensor in state.items():
        if not isinstance(name, str) or tensor.layout != th.strided:  # (refused by the reader)
            kept[name] = tensor
            continue
        # The same data, and the same path below a differently named module: the module itself is shared.
        key = (tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tuple(tensor.stride()), name.partition(".")[2])
        if tensor.numel() and key in first:
            aliases[name] = first[key]
        else:
            first.setdefault(key, name)
            kept[name] = tensor
    return kept, aliases


def by_group(values: Mapping[str, T], names: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, T]]:
    """``{group: {local: value}}`` from ``{name: value}`` and a :meth:`PolicyLayout.split` of the names."""
    return {group: {local: values[name] for local, name in members.items()} for group, members in names.items()}
