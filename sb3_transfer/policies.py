"""Transfer policies: drop-in policies for SB3's ``DQN``, ``PPO``, ``A2C``, ``SAC``, ``TD3`` and ``DDPG`` and
sb3-contrib's ``QRDQN``, ``MaskablePPO`` and ``TQC`` (with the meanings of SB3's ``MlpPolicy``, ``CnnPolicy`` and
``MultiInputPolicy``) that start from a pretrained network, freeze layer groups and scale the learning rate of each
group."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from sb3_contrib.tqc.policies import TQCPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.dqn.policies import DQNPolicy
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from sb3_transfer.adapters import InputAdapter
from sb3_transfer.errors import SourceNotFoundError, TransferConfigError
from sb3_transfer.groups import layout_of, resolve_patterns
from sb3_transfer.sources import SourceNetwork, read_source
from sb3_transfer.transplant import TransferReport, target_policy_kwargs, transplant

#: Keyword arguments of the Transfer policies that only matter while the policy is first built from a source.
TRANSFER_ONLY_KWARGS = ("pretrained", "transfer", "action_map", "strict", "trust_source")

# States of the warm-start hold (see TransferPolicyMixin.hold_learning).
_NO_HOLD, _PENDING, _ACTIVE = "none", "pending", "active"
# The schedule's learning rate of a param group while a step runs with the group's factors applied.
_BASE = "lr_base"
# The keys of a param group that sb3-transfer adds.
_OURS = ("group", "lr_scale", "lr_warmup", "frozen")


class TransferPolicyMixin:
    """
    What the Transfer policies add to SB3's policies: a pretrained start through the one transplant path, frozen layer
    groups and per-group learning-rate factors, all saved with the model.

    Learning rates: SB3 writes its schedule's value into every optimizer param group before training; each group
    carries factors (``lr_scale``, ``lr_warmup``) that an optimizer step pre-hook applies for the duration of the step
    only, so any schedule and any number of SB3's writes keep them. Frozen groups carry ``frozen``; all three are saved
    with the optimizer state.
    """

    #: The features extractor without a source (or when the source's does not fit): SB3's alias's.
    default_features_extractor_class: ClassVar[type[BaseFeaturesExtractor]] = FlattenExtractor
    #: The policy family (its :data:`~sb3_transfer.groups.LAYOUTS` name), for the architecture a source implies.
    family: ClassVar[str] = "DQN"

    optimizer: th.optim.Optimizer
    optimizer_class: type[th.optim.Optimizer]
    optimizer_kwargs: dict[str, Any]
    transfer_report: TransferReport | None
    pretrained_from: str | None
    pretrained_ent_coef: float | None

    def _prepare_transfer(
        self,
        observation_space: spaces.Space,
        arch: dict[str, Any],
        pretrained: Any,
        trust_source: bool,
        freeze: Sequence[str] | str | None,
        lr_scale: Mapping[str, float] | None,
        quantiles: bool,
    ) -> tuple[dict[str, Any], SourceNetwork | None, list[str]]:
        """Resolve the architecture (from the source when there is one) before SB3 builds the networks."""
        self._frozen: set[str] = set()
        self._freeze_patterns = [freeze] if isinstance(freeze, str) else list(freeze or [])
        self._lr_scale_patterns = _check_lr_scale(lr_scale)
        self._hold = _NO_HOLD
        resolved: dict[str, Any] = {k: v for k, v in arch.items() if v is not None}
        network: SourceNetwork | None = None
        notes: list[str] = []
        if pretrained is not None:
            try:
                network = read_source(pretrained, trust_source=trust_source)
            except SourceNotFoundError as e:
                raise SourceNotFoundError(
                    f"{e} A model built by SB3's own algorithm with policy_kwargs=dict(pretrained=...) saves that path and "
                    "reads the source again when loaded; TransferDQN / TransferQRDQN and load_and_adapt save the "
                    "architecture instead, so that their models load without the source."
                ) from e
            resolved, notes = target_policy_kwargs(
                network, observation_space, resolved, quantiles=quantiles, target=self.family
            )
        resolved.setdefault("features_extractor_class", self.default_features_extractor_class)
        self._architecture = dict(resolved)
        return resolved, network, notes

    def _finish_transfer(
        self,
        network: SourceNetwork | None,
        notes: list[str],
        transfer: str | Sequence[str],
        action_map: Mapping[int, int] | None,
        strict: bool,
    ) -> None:
        """Transplant into the built networks, then apply ``freeze=``."""
        self.transfer_report = None
        # What the source's algorithm learnt besides its weights (SAC's entropy coefficient), for a Transfer algorithm.
        self.pretrained_ent_coef = network.ent_coef if network is not None else None
        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module, InputAdapter):
                module.reset_identity()
        if network is not None:
            report = transplant(network, self, transfer=transfer, action_map=action_map, strict=strict)  # type: ignore[arg-type]
            report.notes += notes
            self.transfer_report = report
            self.pretrained_from = self.pretrained_from or network.description
        if self._freeze_patterns:
            self.freeze(*self._freeze_patterns)

    def architecture_kwargs(self) -> dict[str, Any]:
        """
        The architecture this policy was built with (the source's where the user left it unset), as keyword arguments
        that build the same networks without the source: what a model saves instead of ``pretrained``.
        """
        return dict(self._architecture)

    # --- SB3 hooks (the mixin comes first in the MRO, so super() is SB3's policy) -----------------------------------------

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        # SB3's optimizers (one, or SAC's / TD3's one per network), each rebuilt with a param group per layer group.
        for attribute, module in layout_of(self).optimizer_slots():  # type: ignore[arg-type]
            owner, _, name = attribute.rpartition(".")
            setattr(self.get_submodule(owner) if owner else self, name, self._make_grouped_optimizer(lr_schedule, module))  # type: ignore[attr-defined]

    def optimizers(self) -> list[th.optim.Optimizer]:
        """The policy's optimizers: SB3's ``optimizer``, or SAC's and TD3's ``actor.optimizer`` and ``critic.optimizer``."""
        return [self._optimizer_for(module) for _, module in layout_of(self).optimizer_slots()]  # type: ignore[arg-type]

    def _optimizer_for(self, module: str) -> th.optim.Optimizer:
        attribute = dict((m, a) for a, m in layout_of(self).optimizer_slots())[module]  # type: ignore[arg-type]
        owner, _, name = attribute.rpartition(".")
        return getattr(self.get_submodule(owner) if owner else self, name)  # type: ignore[attr-defined]

    def _param_groups(self) -> list[dict[str, Any]]:
        return [group for optimizer in self.optimizers() for group in optimizer.param_groups]

    def set_training_mode(self, mode: bool) -> None:
        """
        SB3's ``set_training_mode``; frozen groups stay in eval mode. SB3 puts the policy in training mode at the start
        of each training phase and out of it before collecting experience: a pending hold (:meth:`hold_learning`)
        applies from the one and ends with the other.
        """
        super().set_training_mode(mode)  # type: ignore[misc]
        if mode and self._hold == _PENDING:
            self._hold = _ACTIVE
        elif not mode and self._hold == _ACTIVE:
            self._hold = _NO_HOLD
        self._apply_frozen_modes()

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), **self._transfer_constructor_parameters()}  # type: ignore[misc]

    # --- layer groups -------------------------------------------------------------------------------------------------

    def layer_groups(self) -> dict[str, list[nn.Parameter]]:
        """The online networks' parameters by named layer group, in network order."""
        params = dict(self.named_parameters())  # type: ignore[attr-defined]
        names = layout_of(self).split(params)  # type: ignore[arg-type]
        return {group: [params[name] for name in members.values()] for group, members in names.items()}

    # --- freezing -----------------------------------------------------------------------------------------------------

    def freeze(self, *patterns: str) -> list[str]:
        """
        Freeze the layer groups matching the patterns: their parameters get no gradient and no optimizer step (so no
        weight decay either), and their normalisation / dropout layers run in eval mode.

        :param patterns: Group names or glob patterns (``"trunk.*"``).
        :return: The groups newly frozen.
        """
        groups = self.layer_groups()
        names = resolve_patterns(list(patterns), groups, what="freeze")
        newly = [name for name in names if name not in self._frozen]
        for name in names:
            for param in groups[name]:
                param.requires_grad_(False)
                param.grad = None
        self._frozen.update(names)
        self._sync_frozen()
        return newly

    def unfreeze(self, *patterns: str) -> list[str]:
        """
        Unfreeze the layer groups matching the patterns (all groups when none is given).

        :param patterns: Group names or glob patterns.
        :return: The groups newly unfrozen.
        """
        groups = self.layer_groups()
        names = resolve_patterns(list(patterns) or ["*"], groups, what="unfreeze")
        newly = [name for name in names if name in self._frozen]
        for name in names:
            for param in groups[name]:
                param.requires_grad_(True)
        self._frozen.difference_update(names)
        self._sync_frozen()
        return newly

    def _sync_frozen(self) -> None:
        # The optimizer's param groups carry the flag, so that it is saved with the model (SB3 saves the optimizer).
        for group in self._param_groups():
            group["frozen"] = group.get("group") in self._frozen
        self.train(self.training)  # type: ignore[attr-defined]  # an unfrozen group follows the policy's mode again
        self._apply_frozen_modes()

    def frozen_groups(self) -> list[str]:
        """The frozen layer groups, in network order."""
        return [name for name in self.layer_groups() if name in self._frozen]

    def _apply_frozen_modes(self) -> None:
        # SB3 calls set_training_mode at every predict() and train(): keep this cheap.
        if not self._frozen:
            return
        if getattr(self, "_modules_of_groups", None) is None:
            self._modules_of_groups = layout_of(self).modules(self)  # type: ignore[arg-type]  # fixed once built
        for name in self._frozen:
            self._modules_of_groups[name].eval()

    # --- learning rates -----------------------------------------------------------------------------------------------

    def _scale_for(self, group: str, groups: Sequence[str]) -> float:
        factor = 1.0
        for pattern, value in self._lr_scale_patterns.items():  # later patterns win
            if group in resolve_patterns([pattern], groups, what="lr_scale"):
                factor = float(value)
        return factor

    def _make_grouped_optimizer(self, lr_schedule: Schedule, module: str) -> th.optim.Optimizer:
        every = self.layer_groups()
        names = layout_of(self).split(dict(self.named_parameters()))  # type: ignore[arg-type,attr-defined]
        # The groups of the module this optimizer is SB3's for (SAC's critic optimizer leaves out a shared extractor,
        # which is the actor's group).
        groups = {g: every[g] for g in every if not module or all(n.startswith(f"{module}.") for n in names[g].values())}
        param_groups = [
            {
                "params": params,
                "group": name,
                "lr_scale": self._scale_for(name, list(every)),
                "lr_warmup": 1.0,
                "frozen": name in self._frozen,
            }
            for name, params in groups.items()
        ]
        optimizer = self.optimizer_class(param_groups, lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
        optimizer.register_step_pre_hook(self._apply_lr_factors)
        optimizer.register_step_post_hook(self._remove_lr_factors)
        optimizer.register_load_state_dict_pre_hook(self._regroup_single_group_state)
        optimizer.register_load_state_dict_post_hook(self._after_optimizer_load)
        return optimizer

    def _hold_factor(self) -> float:
        return 1.0 if self._hold == _NO_HOLD else 0.0

    def _apply_lr_factors(self, optimizer: th.optim.Optimizer, args: Any, kwargs: Any) -> None:
        hold = self._hold_factor()
        for group in optimizer.param_groups:
            scale, warmup = group.get("lr_scale", 1.0), group.get("lr_warmup", 1.0)
            if scale * warmup * hold != 1.0:  # (a group at factor 1 is left as SB3 set it: this runs at every step)
                group[_BASE] = base = group["lr"]
                group["lr"] = base * scale * warmup * hold

    def _remove_lr_factors(self, optimizer: th.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group in optimizer.param_groups:
            if _BASE in group:
                group["lr"] = group.pop(_BASE)

    def set_lr_scale(self, lr_scale: Mapping[str, float]) -> None:
        """
        Change learning-rate factors: ``{pattern: factor}``; groups no pattern matches keep theirs.

        :param lr_scale: Factors by group name or glob pattern.
        """
        groups = [g["group"] for g in self._param_groups()]
        lr_scale = _check_lr_scale(lr_scale)
        for pattern, factor in lr_scale.items():
            for name in resolve_patterns([pattern], groups, what="lr_scale"):
                self.param_group(name)["lr_scale"] = float(factor)
        self._lr_scale_patterns.update(lr_scale)

    def set_lr_warmup(self, group: str, factor: float) -> None:
        """
        Set a group's warm-up factor (between 0 and 1), applied on top of its ``lr_scale``; saved with the model.

        :param group: A layer group name.
        :param factor: The factor.
        """
        if not 0.0 <= factor <= 1.0:
            raise TransferConfigError(f"set_lr_warmup({group!r}, {factor!r}): a warm-up factor lies in [0, 1].")
        self.param_group(group)["lr_warmup"] = float(factor)

    def hold_learning(self) -> None:
        """
        Hold learning for the next training phase: every group's learning rate is 0 from when SB3 next puts the
        policy in training mode (the start of ``train()``) until it takes it out of it again. The gradient steps still
        run (an optimizer such as Adam updates its moment estimates). Not saved: a loaded model learns.
        """
        self._hold = _ACTIVE if self.training and self._hold == _ACTIVE else _PENDING  # type: ignore[attr-defined]

    def release_learning(self) -> None:
        """Cancel a hold set by :meth:`hold_learning`."""
        self._hold = _NO_HOLD

    @property
    def learning_held(self) -> bool:
        """Whether the current or next training phase is held (:meth:`hold_learning`)."""
        return self._hold != _NO_HOLD

    def param_group(self, group: str) -> dict[str, Any]:
        """
        The optimizer param group of a layer group (its ``lr`` as SB3 set it, ``lr_scale``, ``lr_warmup``, ``frozen``).

        :param group: A layer group name.
        """
        for param_group in self._param_groups():
            if param_group.get("group") == group:
                return param_group
        raise TransferConfigError(
            f"No layer group '{group}'; groups are: {', '.join(g.get('group', '?') for g in self._param_groups())}."
        )

    def learning_rates(self) -> dict[str, float]:
        """The learning rate each layer group's next optimizer step uses: SB3's rate times the group's factors."""
        hold = self._hold_factor()
        return {
            g["group"]: float(g["lr"] * g.get("lr_scale", 1.0) * g.get("lr_warmup", 1.0) * hold) for g in self._param_groups()
        }

    # --- saving -------------------------------------------------------------------------------------------------------

    def _regroup_single_group_state(self, optimizer: th.optim.Optimizer, state_dict: dict[str, Any]) -> dict[str, Any] | None:
        """
        An optimizer state saved with SB3's own policy (one param group over the parameters SB3 optimizes, in their
        order), loaded into this one (a param group per layer group): the same per-parameter state, regrouped. SB3's
        group may list parameters this optimizer leaves to another (TD3's critic optimizer holds a shared extractor,
        which is the actor's group here): their entries are dropped. A state that also lists the target network's
        parameters (DQN models saved with SB3 < 2.4) keeps the online entries, with SB3's own warning.
        """
        saved = state_dict["param_groups"]
        if len(saved) != 1 or "group" in saved[0]:
            return None
        optimized = next(m for _, m in layout_of(self).optimizer_slots() if self._optimizer_for(m) is optimizer)  # type: ignore[arg-type]
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        every = list(self.get_submodule(optimized).parameters())  # type: ignore[attr-defined]
        own = [p for p in every if id(p) in held]  # SB3's order when it leaves out a shared extractor (SAC)
        ids = saved[0]["params"]
        if len(ids) == len(own):
            listed = own
        elif len(ids) == len(every):
            listed = every
        elif len(ids) == 2 * len(own):
            listed, ids = own, ids[: len(own)]
            warnings.warn(
                "You are probably loading a DQN model saved with SB3 < 2.4.0: the optimizer state's entries of the target "
                "network are dropped (save the model again to avoid this warning)."
            )
        else:
            return None  # torch's own error follows, naming the mismatch
        order = {id(p): i for i, p in enumerate(listed)}
        hyper = {k: v for k, v in saved[0].items() if k != "params"}
        groups = [
            {**hyper, **{k: group[k] for k in _OURS if k in group}, "params": [ids[order[id(p)]] for p in group["params"]]}
            for group in optimizer.param_groups
        ]
        used = {i for group in groups for i in group["params"]}
        return {"state": {k: v for k, v in state_dict["state"].items() if k in used}, "param_groups": groups}

    def _after_optimizer_load(self, optimizer: th.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            # Saved by sb3-transfer 0.1 (whose groups stored the scaled rate and its base) or during a step.
            if _BASE in group:
                group["lr"] = group.pop(_BASE)
            group.pop("lr_hold", None)
        # Restore the frozen groups saved with the optimizer (callbacks may have changed them since construction).
        mine = {g["group"] for g in optimizer.param_groups if "group" in g}
        frozen = {g["group"] for g in optimizer.param_groups if g.get("frozen")}
        thawed = (self._frozen & mine) - frozen
        if thawed:
            self.unfreeze(*thawed)
        if frozen - self._frozen:
            self.freeze(*frozen)

    def _transfer_constructor_parameters(self) -> dict[str, Any]:
        return {
            "freeze": self.frozen_groups(),
            "lr_scale": dict(self._lr_scale_patterns),
            "pretrained_from": self.pretrained_from,
        }


def _check_lr_scale(lr_scale: Mapping[str, float] | None) -> dict[str, float]:
    checked = dict(lr_scale or {})
    for pattern, factor in checked.items():
        if not isinstance(factor, int | float) or isinstance(factor, bool) or not factor >= 0:
            raise TransferConfigError(f"lr_scale[{pattern!r}] = {factor!r}: a factor must be a number >= 0.")
    return checked


class TransferDQNPolicy(TransferPolicyMixin, DQNPolicy):
    """
    SB3's DQN policy with a pretrained start, frozen layer groups and per-group learning rates. Use it with SB3's own
    ``DQN``: ``DQN(TransferDQNPolicy, env, policy_kwargs=dict(pretrained="source.zip", freeze=["trunk.*"]))``.

    It means what SB3's ``MlpPolicy`` means: without ``pretrained`` it builds exactly what ``MlpPolicy`` builds (same
    weights for the same seed); :class:`TransferDQNCnnPolicy` and :class:`TransferDQNMultiInputPolicy` stand for
    ``CnnPolicy`` and ``MultiInputPolicy``. With ``pretrained``, unset architecture arguments follow the source, and
    the source is read and transplanted when the policy is built. A model saves its ``policy_kwargs`` as given: with
    SB3's own ``DQN`` that is the source's path, read again when the model is loaded; :class:`~sb3_transfer.TransferDQN`
    and :func:`~sb3_transfer.load_and_adapt` save the architecture instead, so that loading needs no source.

    :param observation_space: Observation space.
    :param action_space: Action space (Discrete).
    :param lr_schedule: Learning rate schedule.
    :param net_arch: Hidden layer sizes (default: the source's, else SB3's).
    :param activation_fn: Activation function (default: the source's, else ReLU).
    :param features_extractor_class: Features extractor (default: the source's, else the SB3 alias's: ``FlattenExtractor``).
    :param features_extractor_kwargs: Its keyword arguments.
    :param normalize_images: Divide images by 255 (default: the source's, else True).
    :param optimizer_class: The optimizer; one param group per layer group.
    :param optimizer_kwargs: Its keyword arguments, excluding the learning rate.
    :param pretrained: A source as :func:`~sb3_transfer.load_and_adapt` takes it (path to an SB3 zip, model, policy,
        ``nn.Module``, state dict), transplanted through :func:`~sb3_transfer.transplant.transplant`.
    :param transfer: Which groups to carry over (``"features"``, ``"trunk"``, ``"all"`` or glob patterns).
    :param action_map: ``{target_action: source_action}`` head rows to carry over.
    :param strict: Raise if a selected pretrained tensor cannot be copied as it is.
    :param trust_source: Allow unpickling the source zip's metadata.
    :param freeze: Groups to freeze from the start (names or glob patterns).
    :param lr_scale: ``{pattern: factor}``: each group's learning rate is the schedule's times its factor.
    :param pretrained_from: Where the pretrained weights came from (set when the model is saved; informational).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool | None = None,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        pretrained: Any = None,
        transfer: str | Sequence[str] = "trunk",
        action_map: Mapping[int, int] | None = None,
        strict: bool = False,
        trust_source: bool = False,
        freeze: Sequence[str] | str | None = None,
        lr_scale: Mapping[str, float] | None = None,
        pretrained_from: str | None = None,
    ) -> None:
        arch = dict(
            net_arch=net_arch,
            activation_fn=activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
        )
        resolved, network, notes = self._prepare_transfer(
            observation_space, arch, pretrained, trust_source, freeze, lr_scale, quantiles=False
        )
        self.pretrained_from = pretrained_from
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            **resolved,
        )
        self._finish_transfer(network, notes, transfer, action_map, strict)


class TransferQRDQNPolicy(TransferPolicyMixin, QRDQNPolicy):
    """
    sb3-contrib's QR-DQN policy with a pretrained start, frozen layer groups and per-group learning rates; see
    :class:`TransferDQNPolicy`. Use it with ``QRDQN``.

    :param n_quantiles: Number of quantiles (default: the source's when it is a QR-DQN, else 200).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        n_quantiles: int | None = None,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool | None = None,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        pretrained: Any = None,
        transfer: str | Sequence[str] = "trunk",
        action_map: Mapping[int, int] | None = None,
        strict: bool = False,
        trust_source: bool = False,
        freeze: Sequence[str] | str | None = None,
        lr_scale: Mapping[str, float] | None = None,
        pretrained_from: str | None = None,
    ) -> None:
        arch = dict(
            net_arch=net_arch,
            activation_fn=activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            n_quantiles=n_quantiles,
        )
        resolved, network, notes = self._prepare_transfer(
            observation_space, arch, pretrained, trust_source, freeze, lr_scale, quantiles=True
        )
        self.pretrained_from = pretrained_from
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            **resolved,
        )
        self._finish_transfer(network, notes, transfer, action_map, strict)


class TransferDQNCnnPolicy(TransferDQNPolicy):
    """:class:`TransferDQNPolicy` with the meaning of SB3's ``CnnPolicy``: without a source, a ``NatureCNN``."""

    default_features_extractor_class = NatureCNN


class TransferDQNMultiInputPolicy(TransferDQNPolicy):
    """:class:`TransferDQNPolicy` with the meaning of SB3's ``MultiInputPolicy``: without a source, a ``CombinedExtractor``."""

    default_features_extractor_class = CombinedExtractor


class TransferQRDQNCnnPolicy(TransferQRDQNPolicy):
    """:class:`TransferQRDQNPolicy` with the meaning of sb3-contrib's ``CnnPolicy``: without a source, a ``NatureCNN``."""

    default_features_extractor_class = NatureCNN


class TransferQRDQNMultiInputPolicy(TransferQRDQNPolicy):
    """:class:`TransferQRDQNPolicy` with the meaning of ``MultiInputPolicy``: without a source, a ``CombinedExtractor``."""

    default_features_extractor_class = CombinedExtractor


class TransferActorCriticPolicy(TransferPolicyMixin, ActorCriticPolicy):
    """
    SB3's actor-critic policy (``PPO``, ``A2C``) with a pretrained start, frozen layer groups and per-group learning
    rates: ``PPO(TransferActorCriticPolicy, env, policy_kwargs=dict(pretrained="ppo.zip", freeze=["pi.trunk.*"]))``.

    Its groups: ``features_extractor`` (when actor and critic share it; else ``pi.features_extractor`` and
    ``vf.features_extractor``), ``pi.trunk.i`` and ``vf.trunk.i`` (the hidden layers of the actor and the critic),
    ``pi.head`` (the action net, with ``log_std`` for Box actions) and ``vf.head`` (the value net); ``adapter`` /
    ``pi.adapter`` / ``vf.adapter`` in front of the extractors when the observation size changed. Without
    ``pretrained`` it builds exactly what ``MlpPolicy`` builds; :class:`TransferActorCriticCnnPolicy` and
    :class:`TransferMultiInputActorCriticPolicy` stand for ``CnnPolicy`` and ``MultiInputPolicy``. See
    :class:`TransferDQNPolicy` for ``pretrained`` and what a model saves.

    :param observation_space: Observation space.
    :param action_space: Action space.
    :param lr_schedule: Learning rate schedule.
    :param net_arch: Hidden layers (``dict(pi=[...], vf=[...])`` or a list for both; default: the source's, else SB3's).
    :param activation_fn: Activation function (default: the source's, else Tanh).
    :param ortho_init: SB3's orthogonal initialisation (of what the transplant leaves initialised).
    :param use_sde: gSDE exploration (a source's ``log_std`` then cannot carry over).
    :param log_std_init: Initial ``log_std`` (of a head that is not carried over).
    :param full_std: For gSDE.
    :param use_expln: For gSDE.
    :param squash_output: For gSDE.
    :param features_extractor_class: Features extractor (default: the source's, else the SB3 alias's).
    :param features_extractor_kwargs: Its keyword arguments.
    :param share_features_extractor: Whether actor and critic share it (default: as the source, else True).
    :param normalize_images: Divide images by 255 (default: the source's, else True).
    :param optimizer_class: The optimizer; one param group per layer group.
    :param optimizer_kwargs: Its keyword arguments, excluding the learning rate.
    :param pretrained: A source as :func:`~sb3_transfer.load_and_adapt` takes it.
    :param transfer: Which groups to carry over (``"features"``, ``"trunk"``, ``"all"`` or glob patterns).
    :param action_map: ``{target: source}`` head rows to carry over: actions (Discrete) or dimensions (Box).
    :param strict: Raise if a selected pretrained tensor cannot be copied as it is.
    :param trust_source: Allow unpickling the source zip's metadata.
    :param freeze: Groups to freeze from the start (names or glob patterns).
    :param lr_scale: ``{pattern: factor}``: each group's learning rate is the schedule's times its factor.
    :param pretrained_from: Where the pretrained weights came from (informational).
    """

    family = "ActorCritic"

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] | None = None,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool | None = None,
        normalize_images: bool | None = None,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        pretrained: Any = None,
        transfer: str | Sequence[str] = "trunk",
        action_map: Mapping[int, int] | None = None,
        strict: bool = False,
        trust_source: bool = False,
        freeze: Sequence[str] | str | None = None,
        lr_scale: Mapping[str, float] | None = None,
        pretrained_from: str | None = None,
    ) -> None:
        arch = dict(
            net_arch=net_arch,
            activation_fn=activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            share_features_extractor=share_features_extractor,
            normalize_images=normalize_images,
        )
        resolved, network, notes = self._prepare_transfer(
            observation_space, arch, pretrained, trust_source, freeze, lr_scale, quantiles=False
        )
        self.pretrained_from = pretrained_from
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            ortho_init=ortho_init,
            use_sde=use_sde,
            log_std_init=log_std_init,
            full_std=full_std,
            use_expln=use_expln,
            squash_output=squash_output,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            **resolved,
        )
        self._finish_transfer(network, notes, transfer, action_map, strict)


class TransferActorCriticCnnPolicy(TransferActorCriticPolicy):
    """:class:`TransferActorCriticPolicy` with the meaning of SB3's ``CnnPolicy``: without a source, a ``NatureCNN``."""

    default_features_extractor_class = NatureCNN


class TransferMultiInputActorCriticPolicy(TransferActorCriticPolicy):
    """:class:`TransferActorCriticPolicy` meaning ``MultiInputPolicy``: without a source, a ``CombinedExtractor``."""

    default_features_extractor_class = CombinedExtractor


class TransferMaskableActorCriticPolicy(TransferPolicyMixin, MaskableActorCriticPolicy):
    """
    sb3-contrib's maskable actor-critic policy (``MaskablePPO``, Discrete actions) with a pretrained start, frozen layer
    groups and per-group learning rates; groups and parameters as :class:`TransferActorCriticPolicy`.
    """

    family = "ActorCritic"

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] | None = None,
        ortho_init: bool = True,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool | None = None,
        normalize_images: bool | None = None,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        pretrained: Any = None,
        transfer: str | Sequence[str] = "trunk",
        action_map: Mapping[int, int] | None = None,
        strict: bool = False,
        trust_source: bool = False,
        freeze: Sequence[str] | str | None = None,
        lr_scale: Mapping[str, float] | None = None,
        pretrained_from: str | None = None,
    ) -> None:
        arch = dict(
            net_arch=net_arch,
            activation_fn=activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            share_features_extractor=share_features_extractor,
            normalize_images=normalize_images,
        )
        resolved, network, notes = self._prepare_transfer(
            observation_space, arch, pretrained, trust_source, freeze, lr_scale, quantiles=False
        )
        self.pretrained_from = pretrained_from
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            ortho_init=ortho_init,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            **resolved,
        )
        self._finish_transfer(network, notes, transfer, action_map, strict)


class TransferMaskableActorCriticCnnPolicy(TransferMaskableActorCriticPolicy):
    """:class:`TransferMaskableActorCriticPolicy` meaning ``CnnPolicy``: without a source, a ``NatureCNN``."""

    default_features_extractor_class = NatureCNN


class TransferMaskableMultiInputActorCriticPolicy(TransferMaskableActorCriticPolicy):
    """:class:`TransferMaskableActorCriticPolicy` meaning ``MultiInputPolicy``: without a source, a ``CombinedExtractor``."""

    default_features_extractor_class = CombinedExtractor


class _TransferActorCriticsPolicy(TransferPolicyMixin):
    """
    What the SAC, TD3 and TQC Transfer policies share: the architecture arguments a source may imply, resolved before
    SB3 builds the actor and the critics; SB3's other arguments (``use_sde``, ``clip_mean``...) pass through as they are.
    """

    #: Whether the policy's critics give quantiles (TQC): it takes a TQC source's ``n_quantiles``.
    quantile_critics: ClassVar[bool] = False

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool | None = None,
        n_critics: int | None = None,
        share_features_extractor: bool | None = None,
        pretrained: Any = None,
        transfer: str | Sequence[str] = "trunk",
        action_map: Mapping[int, int] | None = None,
        strict: bool = False,
        trust_source: bool = False,
        freeze: Sequence[str] | str | None = None,
        lr_scale: Mapping[str, float] | None = None,
        pretrained_from: str | None = None,
        **kwargs: Any,
    ) -> None:
        arch = dict(
            net_arch=net_arch,
            activation_fn=activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            n_critics=n_critics,
            share_features_extractor=share_features_extractor,
        )
        if self.quantile_critics:
            arch["n_quantiles"] = kwargs.pop("n_quantiles", None)
        resolved, network, notes = self._prepare_transfer(
            observation_space, arch, pretrained, trust_source, freeze, lr_scale, quantiles=self.quantile_critics
        )
        self.pretrained_from = pretrained_from
        super().__init__(observation_space, action_space, lr_schedule, **kwargs, **resolved)  # type: ignore[call-arg]
        self._finish_transfer(network, notes, transfer, action_map, strict)


_ACTOR_CRITICS_DOC = """
    Its groups: ``actor.features_extractor`` and ``critic.features_extractor`` (one, the actor's, when shared),
    ``actor.trunk.i`` (the actor's hidden layers), ``actor.head`` ({head}), and per critic ``critic.qf<k>.trunk.i`` and
    ``critic.qf<k>.head``; ``actor.adapter`` / ``critic.adapter`` in front of the extractors when the observation size
    changed. The target networks follow the online ones after the transplant. Each of SB3's two optimizers (the actor's,
    the critics') holds a param group per layer group of its network. Without ``pretrained`` it builds exactly what
    ``MlpPolicy`` builds. See :class:`TransferDQNPolicy` for ``pretrained`` and what a model saves.

    :param observation_space: Observation space.
    :param action_space: Action space (Box).
    :param lr_schedule: Learning rate schedule.
    :param net_arch: Hidden layers (``dict(pi=[...], qf=[...])`` or a list for both; default: the source's, else SB3's).
    :param activation_fn: Activation function (default: the source's, else ReLU).
    :param features_extractor_class: Features extractor (default: the source's, else the SB3 alias's).
    :param features_extractor_kwargs: Its keyword arguments.
    :param normalize_images: Divide images by 255 (default: the source's, else True).
    :param n_critics: Number of critics (default: the source's when it has critics, else 2).
    :param share_features_extractor: Whether the critics use the actor's extractor (default: as the source, else False).
    :param pretrained: A source as :func:`~sb3_transfer.load_and_adapt` takes it.
    :param transfer: Which groups to carry over (``"features"``, ``"trunk"``, ``"all"`` or glob patterns).
    :param action_map: ``{{target_dimension: source_dimension}}``: the rows of the actor's head to carry over.
    :param strict: Raise if a selected pretrained tensor cannot be copied as it is.
    :param trust_source: Allow unpickling the source zip's metadata.
    :param freeze: Groups to freeze from the start (names or glob patterns).
    :param lr_scale: ``{{pattern: factor}}``: each group's learning rate is the schedule's times its factor.
    :param pretrained_from: Where the pretrained weights came from (informational).
    :param kwargs: {sb3}'s other arguments ({names}).
    """


class TransferSACPolicy(_TransferActorCriticsPolicy, SACPolicy):
    __doc__ = """
    SB3's SAC policy with a pretrained start, frozen layer groups and per-group learning rates:
    ``SAC(TransferSACPolicy, env, policy_kwargs=dict(pretrained="sac.zip", freeze=["actor.trunk.*"]))``.
    """ + _ACTOR_CRITICS_DOC.format(
        head="the mean, with the ``log_std`` layer (gSDE: its matrix)",
        sb3="``SACPolicy``",
        names="``use_sde``, ``log_std_init``, ``use_expln``, ``clip_mean``, ``optimizer_class``, ``optimizer_kwargs``",
    )

    family = "SAC"


class TransferSACCnnPolicy(TransferSACPolicy):
    """:class:`TransferSACPolicy` with the meaning of SB3's ``CnnPolicy``: without a source, a ``NatureCNN``."""

    default_features_extractor_class = NatureCNN


class TransferSACMultiInputPolicy(TransferSACPolicy):
    """:class:`TransferSACPolicy` with the meaning of ``MultiInputPolicy``: without a source, a ``CombinedExtractor``."""

    default_features_extractor_class = CombinedExtractor


class TransferTQCPolicy(_TransferActorCriticsPolicy, TQCPolicy):
    __doc__ = """
    sb3-contrib's TQC policy with a pretrained start, frozen layer groups and per-group learning rates; as
    :class:`TransferSACPolicy`, its critics giving quantiles (``n_quantiles``: default the source's when it is a TQC,
    else 25). A critic head of a SAC source becomes one of quantiles that all start at its value.
    """ + _ACTOR_CRITICS_DOC.format(
        head="the mean, with the ``log_std`` layer (gSDE: its matrix)",
        sb3="``TQCPolicy``",
        names="``n_quantiles``, ``use_sde``, ``log_std_init``, ``use_expln``, ``clip_mean``, ``optimizer_class``...",
    )

    family = "SAC"
    quantile_critics = True


class TransferTQCCnnPolicy(TransferTQCPolicy):
    """:class:`TransferTQCPolicy` with the meaning of sb3-contrib's ``CnnPolicy``: without a source, a ``NatureCNN``."""

    default_features_extractor_class = NatureCNN


class TransferTQCMultiInputPolicy(TransferTQCPolicy):
    """:class:`TransferTQCPolicy` with the meaning of ``MultiInputPolicy``: without a source, a ``CombinedExtractor``."""

    default_features_extractor_class = CombinedExtractor


class TransferTD3Policy(_TransferActorCriticsPolicy, TD3Policy):
    __doc__ = """
    SB3's TD3 policy (``TD3``, ``DDPG``) with a pretrained start, frozen layer groups and per-group learning rates:
    ``TD3(TransferTD3Policy, env, policy_kwargs=dict(pretrained="td3.zip"))``.
    """ + _ACTOR_CRITICS_DOC.format(
        head="the last layer of the deterministic actor",
        sb3="``TD3Policy``",
        names="``optimizer_class``, ``optimizer_kwargs``",
    )

    family = "TD3"


class TransferTD3CnnPolicy(TransferTD3Policy):
    """:class:`TransferTD3Policy` with the meaning of SB3's ``CnnPolicy``: without a source, a ``NatureCNN``."""

    default_features_extractor_class = NatureCNN


class TransferTD3MultiInputPolicy(TransferTD3Policy):
    """:class:`TransferTD3Policy` with the meaning of ``MultiInputPolicy``: without a source, a ``CombinedExtractor``."""

    default_features_extractor_class = CombinedExtractor
