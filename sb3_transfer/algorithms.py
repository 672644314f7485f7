"""``TransferDQN``, ``TransferQRDQN``, ``TransferPPO``, ``TransferA2C``, ``TransferMaskablePPO``, ``TransferSAC``,
``TransferTQC``, ``TransferTD3`` and ``TransferDDPG``: SB3's and sb3-contrib's algorithms for a pretrained start.

They are made as sb3-contrib makes its algorithms, thin subclasses overriding documented methods:

- ``_setup_model``: SB3 builds the policy (a Transfer policy, which reads the source given as
  ``policy_kwargs["pretrained"]`` and transplants it); then the model keeps the architecture the source implied in place
  of the source, so that ``save()`` writes no source and ``load()`` needs none, and keeps a frozen copy of the
  transplanted network (the teacher) when a training-time transfer term is on.
- ``train``: with ``distill_coef`` or ``anchor_coef`` set, the TD loss gains a distillation term toward the teacher
  and an anchor toward the transplanted weights (:mod:`sb3_transfer.losses`); without them it is SB3's own ``train``.

The Transfer policies work with SB3's own ``DQN`` / ``QRDQN`` too (rl-zoo3 builds those); these classes add the clean
save, the fine-tuning defaults of a pretrained start and the transfer terms.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch as th
import torch.nn.functional as F
from sb3_contrib import QRDQN, TQC, MaskablePPO
from sb3_contrib.common.utils import quantile_huber_loss
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import get_linear_fn
from torch import nn

from sb3_transfer.errors import TransferConfigError
from sb3_transfer.groups import HEAD, layout_of
from sb3_transfer.losses import DECAYS, anchor_loss, distill_loss, distill_weight
from sb3_transfer.policies import (
    TRANSFER_ONLY_KWARGS,
    TransferActorCriticCnnPolicy,
    TransferActorCriticPolicy,
    TransferMaskableActorCriticCnnPolicy,
    TransferMaskableActorCriticPolicy,
    TransferMaskableMultiInputActorCriticPolicy,
    TransferMultiInputActorCriticPolicy,
    TransferDQNCnnPolicy,
    TransferDQNMultiInputPolicy,
    TransferDQNPolicy,
    TransferPolicyMixin,
    TransferQRDQNCnnPolicy,
    TransferQRDQNMultiInputPolicy,
    TransferQRDQNPolicy,
    TransferSACCnnPolicy,
    TransferSACMultiInputPolicy,
    TransferSACPolicy,
    TransferTD3CnnPolicy,
    TransferTD3MultiInputPolicy,
    TransferTD3Policy,
    TransferTQCCnnPolicy,
    TransferTQCMultiInputPolicy,
    TransferTQCPolicy,
)
from sb3_transfer.transplant import TransferReport

try:  # SB3 >= 2.7 (where get_linear_fn is deprecated)
    from stable_baselines3.common.utils import LinearSchedule
except ImportError:  # pragma: no cover  # SB3 < 2.7
    LinearSchedule = None  # type: ignore[assignment,misc]

#: Episodes whose mean return stands for the teacher's (the first ones of training) and the student's (the latest)
#: in the ``"return"`` decay of the distillation weight.
RETURN_EPISODES = 10


def linear_schedule(start: float, end: float, end_fraction: float) -> Schedule:
    """The exploration schedule SB3's own DQN builds, in each SB3 release (``LinearSchedule`` or ``get_linear_fn``)."""
    if LinearSchedule is not None:
        return LinearSchedule(start, end, end_fraction)
    return get_linear_fn(start, end, end_fraction)  # pragma: no cover


def keep_architecture(model: Any) -> bool:
    """
    Make a model built from a source save the architecture the source implied (and ``pretrained_from``, a
    description) in ``policy_kwargs`` instead of the source and the transfer options, so that it loads without the
    source. What :class:`TransferDQN` does when built; :class:`~sb3_transfer.callbacks.RecordTransfer` does it for models
    of SB3's own algorithms.

    :param model: An SB3 model.
    :return: Whether ``policy_kwargs`` changed (only for a model whose Transfer policy was built from a source here).
    """
    policy = model.policy
    if not isinstance(policy, TransferPolicyMixin) or policy.transfer_report is None:
        return False
    if not any(key in model.policy_kwargs for key in TRANSFER_ONLY_KWARGS):
        return False
    kept = {k: v for k, v in model.policy_kwargs.items() if k not in TRANSFER_ONLY_KWARGS}
    model.policy_kwargs = {**kept, **policy.architecture_kwargs(), "pretrained_from": policy.pretrained_from}
    return True


class _Batch(NamedTuple):
    """What a training step's TD loss gives the transfer terms."""

    loss: th.Tensor
    q_values: th.Tensor  # the online network's action values on the batch's observations, (batch, actions)


class BuiltFromSourceMixin:
    """What every Transfer algorithm adds to SB3's: the clean save of a model built from a source, and its report."""

    policy: BasePolicy
    policy_kwargs: dict[str, Any]

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        keep_architecture(self)

    @property
    def transfer_report(self) -> TransferReport | None:
        """What the transplant did, tensor by tensor (``None`` for a model built without a source, or loaded)."""
        return getattr(self.policy, "transfer_report", None)


class TransferAlgorithmMixin(BuiltFromSourceMixin):
    """
    What the Transfer DQN algorithms add besides: the training-time transfer terms. The algorithm class gives
    :meth:`_td_loss` and :meth:`_q_values`.
    """

    distill_coef: float
    distill_temperature: float
    distill_decay: str
    distill_fraction: float
    anchor_coef: float
    distill_actions: list[int]
    anchor_groups: list[str]
    teacher_return: float | None
    teacher: nn.Module | None

    def _set_transfer_terms(
        self, distill_coef: float, distill_temperature: float, distill_decay: str, distill_fraction: float, anchor_coef: float
    ) -> None:
        for name, value in (("distill_coef", distill_coef), ("anchor_coef", anchor_coef)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
                raise TransferConfigError(f"{name}={value!r}: give a number >= 0 (0 turns the term off).")
        if not distill_temperature > 0 or not 0 < distill_fraction <= 1:
            raise TransferConfigError(
                f"distill_temperature={distill_temperature!r} must be > 0 and distill_fraction={distill_fraction!r} in (0, 1]."
            )
        if distill_decay not in DECAYS:
            raise TransferConfigError(f"distill_decay={distill_decay!r}: choose one of {', '.join(DECAYS)}.")
        self.distill_coef, self.distill_temperature = float(distill_coef), float(distill_temperature)
        self.distill_decay, self.distill_fraction = distill_decay, float(distill_fraction)
        self.anchor_coef = float(anchor_coef)
        self.distill_actions, self.anchor_groups, self.teacher_return = [], [], None

    def _setup_model(self) -> None:
        super()._setup_model()
        self.teacher = None
        if self.distill_coef or self.anchor_coef:
            self._setup_teacher()

    def set_anchor(self, anchor_coef: float) -> None:
        """
        Set anchoring's ``lambda`` of a built model (0 turns it off), e.g. once its report shows what was carried over;
        the anchor is the network as it is now, which for a model just built is the transplanted one.

        :param anchor_coef: ``lambda`` of the L2-SP term (see the class's ``anchor_coef``).
        """
        self._set_transfer_terms(
            self.distill_coef, self.distill_temperature, self.distill_decay, self.distill_fraction, anchor_coef
        )
        self.teacher = None
        if self.distill_coef or self.anchor_coef:
            self._setup_teacher()

    def _setup_teacher(self) -> None:
        report = self.transfer_report
        if report is not None:  # built from the source now (a loaded model gets its lists from its saved data)
            if self.distill_coef and report.head_actions is None:
                raise TransferConfigError(
                    "distill_coef needs the pretrained head (its action values are what is distilled): transfer it with "
                    "transfer='all' or an action_map, or set distill_coef=0."
                )
            self.distill_actions = list(report.head_actions or [])
            trained = layout_of(self.policy).split(dict(self.policy.named_parameters()))
            self.anchor_groups = [g for g in report.carried() if g in trained]
        elif "pretrained_from" not in self.policy_kwargs:
            raise TransferConfigError(
                "distill_coef and anchor_coef need a pretrained source: policy_kwargs=dict(pretrained=...), or load_and_adapt."
            )
        online = layout_of(self.policy).optimized
        # The transplanted network, frozen: the teacher of distillation and the anchor of anchoring. Saved with the model.
        self.teacher = copy.deepcopy(self.policy.get_submodule(online)).requires_grad_(False).eval()
        names = layout_of(self.policy).split(dict(self.policy.named_parameters()))
        params, teacher = dict(self.policy.named_parameters()), dict(self.teacher.named_parameters())
        pairs = [(params[n], teacher[n[len(online) + 1 :]]) for g in self.anchor_groups for n in names.get(g, {}).values()]
        self._anchor_params, self._anchors = [p for p, _ in pairs], [a for _, a in pairs]

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_anchor_params", "_anchors"]  # type: ignore[misc]  # views of saved weights

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()  # type: ignore[misc]
        return ([*state_dicts, "teacher"] if self.teacher is not None else state_dicts), variables

    # --- training -----------------------------------------------------------------------------------------------------

    def _td_loss(self, replay_data: Any, batch_size: int) -> _Batch:
        raise NotImplementedError

    def _q_values(self, output: th.Tensor) -> th.Tensor:
        raise NotImplementedError

    def distill_weight(self) -> float:
        """The distillation weight for the coming training phase (see :func:`~sb3_transfer.losses.distill_weight`)."""
        returns = [float(info["r"]) for info in self.ep_info_buffer]  # type: ignore[attr-defined]
        if self.teacher_return is None and len(returns) >= RETURN_EPISODES:
            self.teacher_return = float(np.mean(returns[:RETURN_EPISODES]))
        student = float(np.mean(returns[-RETURN_EPISODES:])) if len(returns) >= RETURN_EPISODES else None
        progress = 1.0 - self._current_progress_remaining  # type: ignore[attr-defined]
        return distill_weight(
            self.distill_coef, self.distill_decay, progress, self.distill_fraction, student, self.teacher_return
        )

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        if self.teacher is None:
            return super().train(gradient_steps, batch_size)  # type: ignore[misc]
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)  # type: ignore[attr-defined]
        weight = self.distill_weight() if self.distill_coef else 0.0
        actions = self.distill_actions
        td_losses, distill_losses, anchor_losses = [], [], []
        for _ in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[attr-defined]
            batch = self._td_loss(replay_data, batch_size)
            loss = batch.loss
            td_losses.append(batch.loss.item())
            if weight > 0:
                with th.no_grad():
                    teacher_q = self._q_values(self.teacher(replay_data.observations))
                term = distill_loss(batch.q_values[:, actions], teacher_q[:, actions], self.distill_temperature)
                loss = loss + weight * term
                distill_losses.append(term.item())
            if self.anchor_coef > 0:
                term = anchor_loss(self._anchor_params, self._anchors)
                loss = loss + self.anchor_coef * term
                anchor_losses.append(term.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            if self.max_grad_norm is not None:  # type: ignore[attr-defined]
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)  # type: ignore[attr-defined]
            self.policy.optimizer.step()
        self._n_updates += gradient_steps  # type: ignore[attr-defined]
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")  # type: ignore[attr-defined]
        self.logger.record("train/loss", np.mean(td_losses))  # type: ignore[attr-defined]
        if self.distill_coef:
            self.logger.record("transfer/lambda", weight)  # type: ignore[attr-defined]
            if distill_losses:
                self.logger.record("transfer/distill_loss", np.mean(distill_losses))  # type: ignore[attr-defined]
        if anchor_losses:
            self.logger.record("transfer/anchor_loss", np.mean(anchor_losses))  # type: ignore[attr-defined]


class _ExplorationAfterTransfer(TransferAlgorithmMixin):
    """``exploration_initial_eps=None``: SB3's 1.0, or the final rate when the pretrained head is carried over."""

    exploration_initial_eps: float | None
    exploration_final_eps: float
    exploration_fraction: float
    exploration_schedule: Schedule

    def _setup_model(self) -> None:
        automatic = self.exploration_initial_eps is None
        if automatic:
            self.exploration_initial_eps = 1.0
        super()._setup_model()
        report = self.transfer_report
        if automatic and report is not None and HEAD in report.carried():
            # The pretrained head already acts on what it learnt: random actions would only throw its jumpstart away.
            self.exploration_initial_eps = self.exploration_final_eps
            self.exploration_schedule = linear_schedule(
                self.exploration_initial_eps, self.exploration_final_eps, self.exploration_fraction
            )


_TERMS_DOC = """
    :param distill_coef: ``lambda_0`` of distillation toward the source (the transplanted network, frozen): the TD loss
        gains ``lambda_t * KL(softmax(Q_source / tau) || softmax(Q / tau))`` over the actions the source knows, on each
        batch. 0 (the default) turns it off. Needs the pretrained head.
    :param distill_temperature: ``tau``.
    :param distill_decay: How ``lambda_t`` falls: ``"linear"`` (to 0 over ``distill_fraction`` of training),
        ``"return"`` (QDagger's: with the student's shortfall from the source's return), ``"constant"``.
    :param distill_fraction: For ``"linear"``: the fraction of training over which ``lambda_t`` falls to 0.
    :param anchor_coef: ``lambda`` of anchoring (L2-SP): the loss gains ``lambda * sum ||theta - theta_0||^2`` over the
        transplanted parameters. 0 (the default) turns it off."""


class TransferDQN(_ExplorationAfterTransfer, DQN):  # type: ignore[misc]  # the mixins type the attributes loosely
    __doc__ = (
        """
    SB3's ``DQN`` for a pretrained start: ``TransferDQN("MlpPolicy", env, policy_kwargs=dict(pretrained="source.zip"))``.

    Its ``policy_aliases`` are the Transfer policies (``"MlpPolicy"``: :class:`~sb3_transfer.TransferDQNPolicy`,
    ``"CnnPolicy"``, ``"MultiInputPolicy"``), which take ``pretrained``, ``transfer``, ``action_map``, ``freeze`` and
    ``lr_scale`` in ``policy_kwargs``. Saved models hold the architecture instead of the source; ``DQN.load`` reads them
    (with sb3-transfer installed, for the policy class) unless a transfer term is on (then ``TransferDQN.load``, which
    also restores the teacher). Without a source or a transfer term it trains exactly as ``DQN`` does.

    :param exploration_initial_eps: As in ``DQN``; ``None`` (the default): SB3's 1.0, or ``exploration_final_eps`` when
        the pretrained head is carried over (the pretrained policy acts from the start)."""
        + _TERMS_DOC
        + """
    :param kwargs: ``DQN``'s arguments.
    """
    )

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": TransferDQNPolicy,
        "CnnPolicy": TransferDQNCnnPolicy,
        "MultiInputPolicy": TransferDQNMultiInputPolicy,
    }

    def __init__(
        self,
        *args: Any,
        exploration_initial_eps: float | None = None,
        distill_coef: float = 0.0,
        distill_temperature: float = 1.0,
        distill_decay: str = "linear",
        distill_fraction: float = 0.5,
        anchor_coef: float = 0.0,
        **kwargs: Any,
    ) -> None:
        self._set_transfer_terms(distill_coef, distill_temperature, distill_decay, distill_fraction, anchor_coef)
        super().__init__(*args, exploration_initial_eps=exploration_initial_eps, **kwargs)  # type: ignore[arg-type,misc]

    def _td_loss(self, replay_data: Any, batch_size: int) -> _Batch:
        # DQN's loss as SB3's DQN.train computes it (the n-step discounts of SB3 >= 2.8 included).
        discounts = getattr(replay_data, "discounts", None)
        discounts = self.gamma if discounts is None else discounts
        with th.no_grad():
            next_q_values, _ = self.q_net_target(replay_data.next_observations).max(dim=1)
            target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values.reshape(-1, 1)
        q_values = self.q_net(replay_data.observations)
        current_q_values = th.gather(q_values, dim=1, index=replay_data.actions.long())
        return _Batch(F.smooth_l1_loss(current_q_values, target_q_values), q_values)

    def _q_values(self, output: th.Tensor) -> th.Tensor:
        return output


class TransferQRDQN(_ExplorationAfterTransfer, QRDQN):  # type: ignore[misc]  # the mixins type the attributes loosely
    __doc__ = (
        """
    sb3-contrib's ``QRDQN`` for a pretrained start; see :class:`TransferDQN`. Distillation uses each action's value,
    the mean of its quantiles.

    :param exploration_initial_eps: As in ``QRDQN``; ``None``: 1.0, or the final rate when the pretrained head acts."""
        + _TERMS_DOC
        + """
    :param kwargs: ``QRDQN``'s arguments.
    """
    )

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": TransferQRDQNPolicy,
        "CnnPolicy": TransferQRDQNCnnPolicy,
        "MultiInputPolicy": TransferQRDQNMultiInputPolicy,
    }

    def __init__(
        self,
        *args: Any,
        exploration_initial_eps: float | None = None,
        distill_coef: float = 0.0,
        distill_temperature: float = 1.0,
        distill_decay: str = "linear",
        distill_fraction: float = 0.5,
        anchor_coef: float = 0.0,
        **kwargs: Any,
    ) -> None:
        self._set_transfer_terms(distill_coef, distill_temperature, distill_decay, distill_fraction, anchor_coef)
        super().__init__(*args, exploration_initial_eps=exploration_initial_eps, **kwargs)  # type: ignore[arg-type,misc]

    def _td_loss(self, replay_data: Any, batch_size: int) -> _Batch:
        # QR-DQN's loss as sb3-contrib's QRDQN.train computes it.
        discounts = getattr(replay_data, "discounts", None)
        discounts = self.gamma if discounts is None else discounts
        with th.no_grad():
            next_quantiles = self.quantile_net_target(replay_data.next_observations)
            next_greedy_actions = next_quantiles.mean(dim=1, keepdim=True).argmax(dim=2, keepdim=True)
            next_greedy_actions = next_greedy_actions.expand(batch_size, self.n_quantiles, 1)
            next_quantiles = next_quantiles.gather(dim=2, index=next_greedy_actions).squeeze(dim=2)
            target_quantiles = replay_data.rewards + (1 - replay_data.dones) * discounts * next_quantiles
        quantiles = self.quantile_net(replay_data.observations)
        actions = replay_data.actions[..., None].long().expand(batch_size, self.n_quantiles, 1)
        current_quantiles = th.gather(quantiles, dim=2, index=actions).squeeze(dim=2)
        loss = quantile_huber_loss(current_quantiles, target_quantiles, sum_over_quantiles=True)
        return _Batch(loss, self._q_values(quantiles))

    def _q_values(self, output: th.Tensor) -> th.Tensor:
        return output.mean(dim=1)


class TransferPPO(BuiltFromSourceMixin, PPO):  # type: ignore[misc]
    """
    SB3's ``PPO`` for a pretrained start: ``TransferPPO("MlpPolicy", env, policy_kwargs=dict(pretrained="ppo.zip"))``.
    Its ``policy_aliases`` are the Transfer actor-critic policies (:class:`~sb3_transfer.TransferActorCriticPolicy`...);
    saved models hold the architecture instead of the source, and ``PPO.load`` reads them. Without a source it trains
    exactly as ``PPO`` does.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": TransferActorCriticPolicy,
        "CnnPolicy": TransferActorCriticCnnPolicy,
        "MultiInputPolicy": TransferMultiInputActorCriticPolicy,
    }


class TransferA2C(BuiltFromSourceMixin, A2C):  # type: ignore[misc]
    """SB3's ``A2C`` for a pretrained start; see :class:`TransferPPO`."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = TransferPPO.policy_aliases


class TransferMaskablePPO(BuiltFromSourceMixin, MaskablePPO):  # type: ignore[misc]
    """sb3-contrib's ``MaskablePPO`` for a pretrained start; see :class:`TransferPPO`."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": TransferMaskableActorCriticPolicy,
        "CnnPolicy": TransferMaskableActorCriticCnnPolicy,
        "MultiInputPolicy": TransferMaskableMultiInputActorCriticPolicy,
    }


class _EntropyAfterTransfer(BuiltFromSourceMixin):
    """``ent_coef="source"``: SB3's ``"auto"``, starting at the source's learnt coefficient when the pretrained actor acts."""

    ent_coef: Any
    log_ent_coef: th.Tensor
    #: The coefficient taken from the source (``None``: SB3's own start).
    ent_coef_from_source: float | None = None

    def _setup_model(self) -> None:
        from_source = self.ent_coef == "source"
        if from_source:
            self.ent_coef = "auto"
        super()._setup_model()
        report = self.transfer_report
        coef = getattr(self.policy, "pretrained_ent_coef", None)
        if from_source and report is not None and coef and layout_of(self.policy).action_head in report.carried():
            self.ent_coef, self.ent_coef_from_source = f"auto_{coef:.6g}", coef
            with th.no_grad():  # in place: SAC's entropy optimizer holds this tensor
                self.log_ent_coef.fill_(math.log(coef))
            report.notes.append(f"ent_coef='source': the learnt entropy coefficient starts at the source's, {coef:.4g}.")
        elif from_source and report is not None:
            report.notes.append("ent_coef='source': the source's coefficient is not known or its actor not carried over; 1.0.")


_ENT_COEF_DOC = """
    :param ent_coef: As in ``SAC`` (``"auto"``: learnt, starting at 1.0); also ``"source"``: learnt, starting at the
        source's learnt coefficient (a SAC / TQC zip or model records it) when the pretrained actor's head is carried
        over. Not the default: on the ``sac`` benchmark it did no better than SB3's start
        (``benchmarks/results/README.md``).
    :param kwargs: The algorithm's arguments."""


class TransferSAC(_EntropyAfterTransfer, SAC):  # type: ignore[misc]
    __doc__ = (
        """
    SB3's ``SAC`` for a pretrained start: ``TransferSAC("MlpPolicy", env, policy_kwargs=dict(pretrained="sac.zip"))``.
    Its ``policy_aliases`` are :class:`~sb3_transfer.TransferSACPolicy` and its Cnn / MultiInput variants; saved models
    hold the architecture instead of the source, and ``SAC.load`` reads them. Without a source it trains exactly as
    ``SAC`` does.
"""
        + _ENT_COEF_DOC
        + "\n    "
    )

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": TransferSACPolicy,
        "CnnPolicy": TransferSACCnnPolicy,
        "MultiInputPolicy": TransferSACMultiInputPolicy,
    }


class TransferTQC(_EntropyAfterTransfer, TQC):  # type: ignore[misc]
    __doc__ = """sb3-contrib's ``TQC`` for a pretrained start; see :class:`TransferSAC`.\n""" + _ENT_COEF_DOC + "\n    "

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": TransferTQCPolicy,
        "CnnPolicy": TransferTQCCnnPolicy,
        "MultiInputPolicy": TransferTQCMultiInputPolicy,
    }


class TransferTD3(BuiltFromSourceMixin, TD3):  # type: ignore[misc]
    """SB3's ``TD3`` for a pretrained start; see :class:`TransferSAC`."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": TransferTD3Policy,
        "CnnPolicy": TransferTD3CnnPolicy,
        "MultiInputPolicy": TransferTD3MultiInputPolicy,
    }


class TransferDDPG(BuiltFromSourceMixin, DDPG):  # type: ignore[misc]
    """SB3's ``DDPG`` for a pretrained start; see :class:`TransferSAC`."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = TransferTD3.policy_aliases
