"""``TransferDQN`` and ``TransferQRDQN``: SB3's ``DQN`` and sb3-contrib's ``QRDQN`` for a pretrained start.

They are made as sb3-contrib makes its algorithms, thin subclasses overriding ``_setup_model``: SB3 builds the policy
(a Transfer policy, which reads the source given as ``policy_kwargs["pretrained"]`` and transplants it), then the
model keeps the architecture the source implied in place of the source, so that ``save()`` writes no source and
``load()`` needs none. The Transfer policies work with SB3's own ``DQN`` / ``QRDQN`` too (rl-zoo3 builds those); these
classes add the clean save and the fine-tuning defaults of a pretrained start.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import get_linear_fn

from sb3_transfer.groups import HEAD
from sb3_transfer.policies import (
    TRANSFER_ONLY_KWARGS,
    TransferDQNCnnPolicy,
    TransferDQNMultiInputPolicy,
    TransferDQNPolicy,
    TransferPolicyMixin,
    TransferQRDQNCnnPolicy,
    TransferQRDQNMultiInputPolicy,
    TransferQRDQNPolicy,
)
from sb3_transfer.transplant import TransferReport

try:  # SB3 >= 2.7 (where get_linear_fn is deprecated)
    from stable_baselines3.common.utils import LinearSchedule
except ImportError:  # pragma: no cover  (SB3 < 2.7)
    LinearSchedule = None


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


class TransferAlgorithmMixin:
    """
    What the Transfer algorithms add to SB3's: after the policy is built from a source, ``policy_kwargs`` hold the
    architecture it implied (and ``pretrained_from``, a description) instead of the source and the transfer options.
    """

    policy: BasePolicy
    policy_kwargs: dict[str, Any]

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        keep_architecture(self)

    @property
    def transfer_report(self) -> TransferReport | None:
        """What the transplant did, tensor by tensor (``None`` for a model built without a source, or loaded)."""
        return getattr(self.policy, "transfer_report", None)


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


class TransferDQN(_ExplorationAfterTransfer, DQN):
    """
    SB3's ``DQN`` for a pretrained start: ``TransferDQN("MlpPolicy", env, policy_kwargs=dict(pretrained="source.zip"))``.

    Its ``policy_aliases`` are the Transfer policies (``"MlpPolicy"``: :class:`~sb3_transfer.TransferDQNPolicy`,
    ``"CnnPolicy"``, ``"MultiInputPolicy"``), which take ``pretrained``, ``transfer``, ``action_map``, ``freeze`` and
    ``lr_scale`` in ``policy_kwargs``. Saved models hold the architecture instead of the source; ``DQN.load`` reads them
    (with sb3-transfer installed, for the policy class). Without ``pretrained`` it trains exactly as ``DQN`` does.

    :param exploration_initial_eps: As in ``DQN``; ``None`` (the default): SB3's 1.0, or ``exploration_final_eps`` when
        the pretrained head is carried over (the pretrained policy acts from the start).
    :param kwargs: ``DQN``'s arguments.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": TransferDQNPolicy,
        "CnnPolicy": TransferDQNCnnPolicy,
        "MultiInputPolicy": TransferDQNMultiInputPolicy,
    }

    def __init__(self, *args: Any, exploration_initial_eps: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, exploration_initial_eps=exploration_initial_eps, **kwargs)  # type: ignore[arg-type]


class TransferQRDQN(_ExplorationAfterTransfer, QRDQN):
    """
    sb3-contrib's ``QRDQN`` for a pretrained start; see :class:`TransferDQN`.

    :param exploration_initial_eps: As in ``QRDQN``; ``None``: 1.0, or the final rate when the pretrained head acts.
    :param kwargs: ``QRDQN``'s arguments.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": TransferQRDQNPolicy,
        "CnnPolicy": TransferQRDQNCnnPolicy,
        "MultiInputPolicy": TransferQRDQNMultiInputPolicy,
    }

    def __init__(self, *args: Any, exploration_initial_eps: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, exploration_initial_eps=exploration_initial_eps, **kwargs)  # type: ignore[arg-type]
