"""Layer-freezing schedules for :class:`~sb3_transfer.policies.TransferDQNPolicy` and ``TransferQRDQNPolicy``.

Both count environment timesteps (``model.num_timesteps``), so they mean the same with 1 or 16 envs, and log every
change through SB3's logger (``transfer/frozen/<group>`` 0/1, ``transfer/lr/<group>``, ``transfer/n_frozen``) and,
when verbose, print it.
"""

from __future__ import annotations

from collections.abc import Mapping

from stable_baselines3.common.callbacks import BaseCallback

from sb3_transfer.errors import TransferConfigError
from sb3_transfer.groups import HEAD, resolve_patterns
from sb3_transfer.policies import TransferPolicyMixin


class TransferCallback(BaseCallback):
    """Base class: access to the transfer policy, and logging of frozen groups and learning rates."""

    @property
    def policy(self) -> TransferPolicyMixin:
        policy = self.model.policy
        if not isinstance(policy, TransferPolicyMixin):
            raise TransferConfigError(
                f"{type(self).__name__} needs a model built with TransferDQNPolicy or TransferQRDQNPolicy "
                f"(this one has {type(policy).__name__})."
            )
        return policy

    def _record(self) -> None:
        frozen = set(self.policy.frozen_groups())
        for group, lr in self.policy.learning_rates().items():
            self.logger.record(f"transfer/lr/{group}", lr)
            self.logger.record(f"transfer/frozen/{group}", int(group in frozen))
        self.logger.record("transfer/n_frozen", len(frozen))

    def _announce(self, verb: str, groups: list[str]) -> None:
        if groups:
            self._record()
            if self.verbose >= 1:
                print(f"{type(self).__name__}: {verb} {', '.join(groups)} at timestep {self.model.num_timesteps}")

    def _on_rollout_end(self) -> None:
        self._record()

    def _on_step(self) -> bool:
        return True


class FreezeSchedule(TransferCallback):
    """
    Keep layer groups frozen until given timesteps.

    ``FreezeSchedule({"features_extractor": 20_000, "trunk.*": 10_000})`` freezes the matching groups when training
    starts and unfreezes each pattern's groups once ``model.num_timesteps`` reaches its timestep.

    :param schedule: ``{pattern: unfreeze_at_timestep}``.
    :param verbose: 1 prints each change.
    """

    def __init__(self, schedule: Mapping[str, int], verbose: int = 0) -> None:
        super().__init__(verbose)
        if not schedule or not all(isinstance(t, int) and t >= 0 for t in schedule.values()):
            raise TransferConfigError(f"FreezeSchedule takes {{pattern: timestep >= 0}}, got {schedule!r}.")
        self.schedule = dict(schedule)
        self._pending: dict[str, int] = {}

    def _on_training_start(self) -> None:
        groups = list(self.policy.layer_groups())
        for pattern in self.schedule:
            resolve_patterns([pattern], groups, what="FreezeSchedule")  # fail early, naming the groups
        self._pending = {p: t for p, t in self.schedule.items() if self.model.num_timesteps < t}
        self._announce("froze", self.policy.freeze(*self._pending) if self._pending else [])

    def _on_step(self) -> bool:
        due = [p for p, t in self._pending.items() if self.model.num_timesteps >= t]
        if due:
            for pattern in due:
                del self._pending[pattern]
            self._announce("unfroze", self.policy.unfreeze(*due))
        return True


class GradualUnfreeze(TransferCallback):
    """
    Gradual unfreezing (Howard & Ruder, ULMFiT, 2018): one more layer group becomes trainable every ``every`` timesteps.

    At the start of training, the groups frozen by the policy (``freeze=``) are the ones to unfreeze; when none is
    frozen, every group but the head is frozen first. With ``order="top_down"`` the group nearest the head goes first,
    with ``"bottom_up"`` the one nearest the input. With ``warmup``, a newly unfrozen group's learning rate rises
    linearly from 0 to its full value over that many timesteps, so that large first updates do not wreck it.

    :param every: Timesteps between two unfreezings, counted from the start of training.
    :param order: ``"top_down"`` or ``"bottom_up"``.
    :param warmup: Timesteps of learning-rate warm-up for each newly unfrozen group (0: none).
    :param verbose: 1 prints each change.
    """

    def __init__(self, every: int, order: str = "top_down", warmup: int = 0, verbose: int = 0) -> None:
        super().__init__(verbose)
        if not isinstance(every, int) or every <= 0:
            raise TransferConfigError(f"GradualUnfreeze every={every!r}: give a number of timesteps > 0.")
        if order not in ("top_down", "bottom_up"):
            raise TransferConfigError(f"GradualUnfreeze order={order!r}: choose 'top_down' or 'bottom_up'.")
        if not isinstance(warmup, int) or warmup < 0:
            raise TransferConfigError(f"GradualUnfreeze warmup={warmup!r}: give a number of timesteps >= 0.")
        self.every, self.order, self.warmup = every, order, warmup
        self.queue: list[str] = []
        self._start: int | None = None
        self._unfrozen = 0
        self._warming: dict[str, int] = {}

    def _on_training_start(self) -> None:
        if self._start is not None:  # a further learn() call goes on with the same schedule
            return
        self._start = self.model.num_timesteps
        groups = list(self.policy.layer_groups())
        frozen = self.policy.frozen_groups()
        if not frozen:
            frozen = [g for g in groups if g != HEAD]
            self._announce("froze", self.policy.freeze(*frozen) if frozen else [])
        self.queue = frozen[::-1] if self.order == "top_down" else list(frozen)

    def _on_step(self) -> bool:
        assert self._start is not None
        now = self.model.num_timesteps
        while self.queue and now >= self._start + (self._unfrozen + 1) * self.every:
            group = self.queue.pop(0)
            self._unfrozen += 1
            if self.warmup:
                self._warming[group] = now
                self._set_warmup(group, 0.0)
            self._announce("unfroze", self.policy.unfreeze(group))
        for group, since in list(self._warming.items()):
            factor = min(1.0, (now - since) / self.warmup)
            self._set_warmup(group, factor)
            if factor >= 1.0:
                del self._warming[group]
        return True

    def _set_warmup(self, group: str, factor: float) -> None:
        param_group = self.policy.param_group(group)
        param_group["lr_warmup"] = factor
        param_group.refresh()
