"""``TransferDQNPolicy`` and ``TransferQRDQNPolicy``: drop-in policies for SB3's ``DQN`` and sb3-contrib's ``QRDQN`` that
start from a pretrained network, freeze layer groups and scale their learning rates."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch as th
from gymnasium import spaces
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

from sb3_transfer.adapters import InputAdapter
from sb3_transfer.errors import TransferConfigError
from sb3_transfer.groups import ADAPTER, FEATURES, online_network, resolve_patterns, split_groups
from sb3_transfer.sources import SourceNetwork, read_source
from sb3_transfer.transplant import TransferReport, target_policy_kwargs, transplant

# The architecture keys a pretrained source decides when the user leaves them unset.
_ARCH_KEYS = ("net_arch", "activation_fn", "features_extractor_class", "features_extractor_kwargs", "normalize_images")


class ScaledLRGroup(dict):
    """
    An optimizer param group whose ``lr`` is stored times its ``lr_scale``, ``lr_warmup`` and ``lr_hold`` factors.

    SB3 sets every param group's ``lr`` to the schedule's value at each ``train()``; storing the product on assignment
    is what lets a per-group factor survive that, with any learning-rate schedule. ``lr_base`` keeps the value set.
    ``lr_hold`` lasts for one assignment from SB3 (the one at the start of a ``train()``): it applies to that training
    phase only, so a hold cannot outlive the callback that set it by more than one phase (see
    :class:`~sb3_transfer.callbacks.PolicyWarmStart`).
    """

    def __setitem__(self, key: str, value: Any) -> None:
        if key == "lr":
            super().__setitem__("lr_base", value)
            value = self._scaled(value)
            if self.get("lr_hold", 1.0) != 1.0:
                super().__setitem__("lr_hold", 1.0)
        super().__setitem__(key, value)

    def _scaled(self, base: float) -> float:
        return base * self.get("lr_scale", 1.0) * self.get("lr_warmup", 1.0) * self.get("lr_hold", 1.0)

    def refresh(self) -> None:
        """Re-apply the factors to the last base learning rate (after changing one of them; a hold stays set)."""
        super().__setitem__("lr", self._scaled(self.get("lr_base", self["lr"])))

    def __reduce__(self) -> tuple[Any, ...]:
        # Copies and pickles rebuild the dict as it is, without applying the factors a second time.
        return (type(self), (dict(self),))


class TransferPolicyMixin:
    """
    What :class:`TransferDQNPolicy` and :class:`TransferQRDQNPolicy` add to SB3's policies: a pretrained start through
    the one transplant path, frozen layer groups and per-group learning-rate factors, all saved with the model.
    """

    optimizer: th.optim.Optimizer
    optimizer_class: type[th.optim.Optimizer]
    optimizer_kwargs: dict[str, Any]
    transfer_report: TransferReport | None
    pretrained_from: str | None

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
        user = {k: v for k, v in arch.items() if v is not None}
        if pretrained is None:
            user.setdefault("features_extractor_class", _default_extractor(observation_space))
            return user, None, []
        network = pretrained if isinstance(pretrained, SourceNetwork) else read_source(pretrained, trust_source=trust_source)
        fitted, notes = target_policy_kwargs(network, observation_space, user, quantiles=quantiles)
        fitted.setdefault("features_extractor_class", _default_extractor(observation_space))
        return fitted, network, notes

    def _finish_transfer(
        self,
        network: SourceNetwork | None,
        notes: list[str],
        pretrained: Any,
        resolved: dict[str, Any],
        transfer: str | Sequence[str],
        action_map: Mapping[int, int] | None,
        strict: bool,
    ) -> None:
        """Transplant (once: never again on load), then apply ``freeze=``."""
        self.transfer_report = None
        if network is not None:
            report = transplant(network, self, transfer=transfer, action_map=action_map, strict=strict)  # type: ignore[arg-type]
            report.notes += notes
            self.transfer_report = report
            self.pretrained_from = self.pretrained_from or network.description
            _pin_resolved_kwargs(pretrained, resolved, network.description)
        if self._freeze_patterns:
            self.freeze(*self._freeze_patterns)

    # --- SB3 hooks (the mixin comes first in the MRO, so super() is SB3's policy) -----------------------------------------

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        self.optimizer = self._make_grouped_optimizer(lr_schedule)

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)  # type: ignore[misc]
        self._apply_frozen_modes()

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), **self._transfer_constructor_parameters()}  # type: ignore[misc]

    # --- layer groups -------------------------------------------------------------------------------------------------

    def _online(self) -> tuple[str, nn.Module]:
        mlp_name, online, _ = online_network(self)  # type: ignore[arg-type]
        return mlp_name, online

    def layer_groups(self) -> dict[str, list[nn.Parameter]]:
        """The online network's parameters by named layer group, in network order."""
        mlp_name, online = self._online()
        groups = split_groups(dict(online.named_parameters()), mlp_name)
        return {name: list(params.values()) for name, params in groups.items()}

    def _group_modules(self) -> dict[str, nn.Module]:
        mlp_name, online = self._online()
        extractor = online.features_extractor
        modules: dict[str, nn.Module] = {}
        if isinstance(extractor, InputAdapter):
            modules[ADAPTER], modules[FEATURES] = extractor.adapter, extractor.extractor
        else:
            modules[FEATURES] = extractor
        names = split_groups({name: name for name, _ in online.named_parameters()}, mlp_name)
        mlp = getattr(online, mlp_name)
        for group, params in names.items():
            if group not in (ADAPTER, FEATURES):
                modules[group] = mlp[int(next(iter(params.values())).split(".")[1])]
        return modules

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
        for group in self.optimizer.param_groups:
            group["frozen"] = group.get("group") in self._frozen
        self.set_training_mode(self.training)  # type: ignore[attr-defined]

    def frozen_groups(self) -> list[str]:
        """The frozen layer groups, in network order."""
        return [name for name in self.layer_groups() if name in self._frozen]

    def _apply_frozen_modes(self) -> None:
        # SB3 calls set_training_mode at every predict() and train(): keep this cheap.
        if not self._frozen:
            return
        if getattr(self, "_modules_of_groups", None) is None:
            self._modules_of_groups = self._group_modules()  # the architecture is fixed once built
        for name in self._frozen:
            self._modules_of_groups[name].eval()

    # --- learning rates -----------------------------------------------------------------------------------------------

    def _scale_for(self, group: str, groups: Sequence[str]) -> float:
        factor = 1.0
        for pattern, value in self._lr_scale_patterns.items():  # later patterns win
            if group in resolve_patterns([pattern], groups, what="lr_scale"):
                factor = float(value)
        return factor

    def _make_grouped_optimizer(self, lr_schedule: Schedule) -> th.optim.Optimizer:
        groups = self.layer_groups()
        param_groups = [
            ScaledLRGroup(
                params=params,
                group=name,
                lr_scale=self._scale_for(name, list(groups)),
                lr_warmup=1.0,
                frozen=name in self._frozen,
            )
            for name, params in groups.items()
        ]
        optimizer = self.optimizer_class(param_groups, lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
        for group in optimizer.param_groups:
            group["lr"] = lr_schedule(1)
        optimizer.register_load_state_dict_post_hook(self._after_optimizer_load)
        return optimizer

    def set_lr_scale(self, lr_scale: Mapping[str, float]) -> None:
        """
        Change learning-rate factors: ``{pattern: factor}``; groups no pattern matches keep theirs.

        :param lr_scale: Factors by group name or glob pattern.
        """
        groups = [g["group"] for g in self.optimizer.param_groups]
        lr_scale = _check_lr_scale(lr_scale)
        for pattern, factor in lr_scale.items():
            for name in resolve_patterns([pattern], groups, what="lr_scale"):
                group = self.param_group(name)
                group["lr_scale"] = float(factor)
                group.refresh()
        self._lr_scale_patterns.update(lr_scale)

    def param_group(self, group: str) -> ScaledLRGroup:
        """
        The optimizer param group of a layer group (its ``lr``, ``lr_scale``, ``lr_warmup``, ``lr_hold``).

        :param group: A layer group name.
        """
        for param_group in self.optimizer.param_groups:
            if param_group.get("group") == group:
                return param_group  # type: ignore[return-value]
        raise TransferConfigError(
            f"No layer group '{group}'; groups are: {', '.join(g.get('group', '?') for g in self.optimizer.param_groups)}."
        )

    def learning_rates(self) -> dict[str, float]:
        """The current learning rate of each layer group."""
        return {g["group"]: float(g["lr"]) for g in self.optimizer.param_groups}

    # --- saving -------------------------------------------------------------------------------------------------------

    def _after_optimizer_load(self, optimizer: th.optim.Optimizer) -> None:
        # torch's Optimizer.load_state_dict replaces the param groups by plain dicts (their keys survive): wrap them
        # again, and restore the frozen groups saved with them (callbacks may have changed them since construction).
        groups = [g if isinstance(g, ScaledLRGroup) else ScaledLRGroup(g) for g in optimizer.param_groups]
        optimizer.param_groups[:] = groups
        # A hold belongs to the PolicyWarmStart that set it: a model saved during one learns again once loaded.
        for group in groups:
            if group.get("lr_hold", 1.0) != 1.0:
                group["lr_hold"] = 1.0
                group.refresh()
        frozen = [g["group"] for g in optimizer.param_groups if g.get("frozen")]
        if set(frozen) != self._frozen:
            self.unfreeze()
            if frozen:
                self.freeze(*frozen)

    def _transfer_constructor_parameters(self) -> dict[str, Any]:
        return {"freeze": self.frozen_groups(), "lr_scale": dict(self._lr_scale_patterns)}


def _check_lr_scale(lr_scale: Mapping[str, float] | None) -> dict[str, float]:
    checked = dict(lr_scale or {})
    for pattern, factor in checked.items():
        if not isinstance(factor, int | float) or isinstance(factor, bool) or not factor >= 0:
            raise TransferConfigError(f"lr_scale[{pattern!r}] = {factor!r}: a factor must be a number >= 0.")
    return checked


def _default_extractor(observation_space: spaces.Space) -> type[BaseFeaturesExtractor]:
    """The extractor SB3's MlpPolicy / CnnPolicy / MultiInputPolicy would use for these observations."""
    if isinstance(observation_space, spaces.Dict):
        return CombinedExtractor
    return NatureCNN if is_image_space(observation_space) else FlattenExtractor


def _pin_resolved_kwargs(pretrained: Any, resolved: dict[str, Any], description: str) -> None:
    """
    Write the architecture found in the source into the owning model's ``policy_kwargs`` and drop ``pretrained``.

    SB3 saves ``model.policy_kwargs`` and rebuilds the policy from them on ``load()``, before loading the fine-tuned
    weights. Pinned this way, loading neither needs the source file (it may be gone) nor transplants it again. SB3
    builds policies only inside its algorithms' ``_setup_model``, so the model is found a few frames up.
    """
    frame = sys._getframe(1)
    for _ in range(12):
        if frame is None:
            return
        model = frame.f_locals.get("self")
        if isinstance(model, BaseAlgorithm) and isinstance(model.policy_kwargs, dict):
            if model.policy_kwargs.get("pretrained") is pretrained:
                arch = {k: v for k, v in resolved.items() if k in (*_ARCH_KEYS, "n_quantiles")}
                model.policy_kwargs = {**model.policy_kwargs, **arch, "pretrained": None, "pretrained_from": description}
            return
        frame = frame.f_back


class TransferDQNPolicy(TransferPolicyMixin, DQNPolicy):
    """
    SB3's DQN policy with a pretrained start, frozen layer groups and per-group learning rates. Use it with SB3's own
    ``DQN``: ``DQN(TransferDQNPolicy, env, policy_kwargs=dict(pretrained="source.zip", freeze=["trunk.*"]))``.

    Without ``pretrained`` it builds exactly what ``MlpPolicy`` / ``CnnPolicy`` / ``MultiInputPolicy`` build for the
    observations (same weights for the same seed). With it, unset architecture arguments follow the source.

    :param observation_space: Observation space.
    :param action_space: Action space (Discrete).
    :param lr_schedule: Learning rate schedule.
    :param net_arch: Hidden layer sizes (default: the source's, else SB3's).
    :param activation_fn: Activation function (default: the source's, else ReLU).
    :param features_extractor_class: Features extractor (default: the source's, else SB3's for the observations).
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
        self._finish_transfer(network, notes, pretrained, resolved, transfer, action_map, strict)


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
        self._finish_transfer(network, notes, pretrained, resolved, transfer, action_map, strict)
