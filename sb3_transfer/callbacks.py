"""Callbacks: layer-freezing schedules, a warm start, and evaluation on the target task that measures what transfer
bought; for runs that rl-zoo3 sets up, :class:`RecordTransfer` and :class:`EvaluateAtStart`, which find rl-zoo3's run
folder through its ``EvalCallback``.

The freezing schedules work with :class:`~sb3_transfer.policies.TransferDQNPolicy` and ``TransferQRDQNPolicy``. They
count environment timesteps (``model.num_timesteps``), so they mean the same with 1 or 16 envs, and log every change
through SB3's logger (``transfer/frozen/<group>`` 0/1, ``transfer/lr/<group>``, ``transfer/n_frozen``) and, when
verbose, print it.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from typing import Any, cast

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from sb3_transfer.algorithms import keep_architecture
from sb3_transfer.errors import TransferConfigError
from sb3_transfer.groups import HEAD, layout_of, resolve_patterns
from sb3_transfer.metrics import TransferMetrics, load_curve, transfer_metrics
from sb3_transfer.policies import TransferPolicyMixin


def _timesteps(value: Any, what: str, minimum: int = 0) -> int:
    """A count of timesteps from user input: an int, a numpy integer or a whole float (rl-zoo3's YAML writes 5e3)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise TransferConfigError(f"{what}={value!r}: give a whole number of timesteps >= {minimum}.")
    return int(value)


#: The warm start measured on rl-zoo3's LunarLander settings (benchmarks/results/README.md, "warm start").
WARM_START_STEPS = 5_000
#: Transitions those settings draw from the replay buffer per timestep (batch 128, a gradient step per timestep).
WARM_START_DRAWS = 128


def warm_start_steps(model: BaseAlgorithm, steps: float = WARM_START_STEPS) -> int:
    """
    The warm start for a model's sampling: ``steps`` (measured at :data:`WARM_START_DRAWS` transitions drawn per
    timestep) scaled by the transitions the model draws per timestep (``batch_size`` x gradient steps per timestep).

    Why: what throws a jumpstart away is many updates on a small buffer. Scaled this way, when learning starts each
    transition in the buffer is drawn as often per timestep as it was in the measured setting. rl-zoo3's CartPole
    settings (batch 64, 128 gradient steps every 256 timesteps: 32 draws) get a quarter of ``steps``; MinAtar's usual
    ones (batch 32, one gradient step every 4 timesteps) a sixteenth.

    With ``train_freq`` counted in episodes and a fixed number of gradient steps, the draws per timestep are unknown:
    ``steps`` is returned as it is.

    :param model: An off-policy model (``DQN``, ``QRDQN``...).
    :param steps: The warm start at :data:`WARM_START_DRAWS` draws per timestep.
    :return: Timesteps, for :class:`PolicyWarmStart` (and ``GradualUnfreeze``'s ``delay``).
    """
    if not isinstance(model, OffPolicyAlgorithm):
        raise TransferConfigError(
            f"warm_start_steps: {type(model).__name__} has no replay sampling (give an off-policy model)."
        )
    return scaled_warm_start(steps, model.batch_size, model.gradient_steps, model.train_freq, model.n_envs)


def scaled_warm_start(
    steps: float, batch_size: int, gradient_steps: int, train_freq: int | tuple[int, str] | TrainFreq, n_envs: int = 1
) -> int:
    """
    :func:`warm_start_steps` from an off-policy algorithm's settings, as its constructor takes them.

    :param steps: The warm start at :data:`WARM_START_DRAWS` draws per timestep.
    :param batch_size: Transitions per gradient step.
    :param gradient_steps: Gradient steps per rollout (-1: as many as timesteps collected).
    :param train_freq: Rollout length: timesteps of each env, or ``(n, "step" | "episode")``.
    :param n_envs: Number of environments.
    :return: Timesteps.
    """
    steps = _timesteps(steps, "warm_start_steps steps")
    frequency, unit = (train_freq, "step") if isinstance(train_freq, int) else tuple(train_freq)
    if gradient_steps < 0:  # as many gradient steps as timesteps collected
        draws = float(batch_size)
    elif TrainFrequencyUnit(unit) == TrainFrequencyUnit.EPISODE:
        return steps
    else:  # a rollout is train_freq steps of each env
        draws = batch_size * gradient_steps / (int(cast(int, frequency)) * n_envs)
    return round(steps * draws / WARM_START_DRAWS)


class TransferCallback(BaseCallback):
    """
    Base class: access to the transfer policy, and logging of frozen groups and learning rates.

    A callback's state belongs to the model it was last handed: handed another model by ``learn()``, it starts afresh
    (also when handed back a model it had before).
    """

    _for: Any = None  # the model whose training the callback's state belongs to

    def _init_callback(self) -> None:
        # learn() hands the callback its model each time: handed another model, the callback starts afresh.
        if self.model is not self._for:
            self._for = self.model
            self._start_over()

    def _start_over(self) -> None:
        """Reset the state that belongs to one model's training (none here)."""

    @property
    def policy(self) -> TransferPolicyMixin:
        policy = self.model.policy
        if not isinstance(policy, TransferPolicyMixin):
            raise TransferConfigError(
                f"{type(self).__name__} needs a model with a Transfer policy (e.g. TransferDQNPolicy, or "
                f"TransferDQN's 'MlpPolicy'); this one has {type(policy).__name__}."
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
            # A group that a still pending pattern also names stays frozen until that pattern is due.
            groups = list(self.policy.layer_groups())
            held = set(resolve_patterns(list(self._pending), groups, what="FreezeSchedule")) if self._pending else set()
            release = [g for g in resolve_patterns(due, groups, what="FreezeSchedule") if g not in held]
            self._announce("unfroze", self.policy.unfreeze(*release) if release else [])
        return True


class GradualUnfreeze(TransferCallback):
    """
    Gradual unfreezing (Howard & Ruder, ULMFiT, 2018): one more layer group becomes trainable every ``every`` timesteps.

    At the start of training, the groups frozen by the policy (``freeze=``) are the ones to unfreeze; when none is
    frozen, every group but the head is frozen first, unless the policy has no pretrained weights: then the callback
    does nothing, so that the scratch twin of a transfer configuration stays a plain scratch run. With
    ``order="top_down"`` the group nearest the head goes first, with ``"bottom_up"`` the one nearest the input. With
    ``warmup``, a newly unfrozen group's learning rate rises linearly from 0 to its full value over that many
    timesteps, so that large first updates do not wreck it. With ``delay``, the schedule starts that many timesteps
    after the start of training (give the :class:`PolicyWarmStart`'s hold, ``warm_start_steps(model)`` for its default,
    so that no group is unfrozen while learning is held).

    :param every: Timesteps between two unfreezings, counted from the start of training (plus ``delay``).
    :param order: ``"top_down"`` or ``"bottom_up"``.
    :param warmup: Timesteps of learning-rate warm-up for each newly unfrozen group (0: none).
    :param delay: Timesteps from the start of training to the start of the schedule.
    :param verbose: 1 prints each change.
    """

    def __init__(self, every: float, order: str = "top_down", warmup: float = 0, delay: float = 0, verbose: int = 0) -> None:
        super().__init__(verbose)
        if order not in ("top_down", "bottom_up"):
            raise TransferConfigError(f"GradualUnfreeze order={order!r}: choose 'top_down' or 'bottom_up'.")
        self.every = _timesteps(every, "GradualUnfreeze every", minimum=1)
        self.order = order
        self.warmup = _timesteps(warmup, "GradualUnfreeze warmup")
        self.delay = _timesteps(delay, "GradualUnfreeze delay")
        self._last = 0
        self._start_over()

    def _start_over(self) -> None:
        self.queue: list[str] = []
        self._start: int | None = None
        self._unfrozen = 0
        self._warming: dict[str, int] = {}

    def _on_training_start(self) -> None:
        now = self.model.num_timesteps
        if self._start is not None:
            # A further learn() call goes on with the same schedule; after learn(reset_num_timesteps=True) the
            # timesteps count from 0 again, so the schedule shifts with them.
            shift = min(now - self._last, 0)
            self._start += shift
            self._warming = {group: since + shift for group, since in self._warming.items()}
            self._last = now
            return
        self._last = now
        self._start = now + self.delay
        if self.policy.pretrained_from is None and not self.policy.frozen_groups():
            # Nothing pretrained: the scratch twin of a transfer config stays a plain scratch run.
            if self.verbose >= 1:
                print(f"{type(self).__name__}: the policy has no pretrained weights and nothing frozen; nothing to do.")
            return
        # Groups whose warm-up a save / load or an earlier run cut short go on warming up.
        self._warming = {g: now for g in self.policy.layer_groups() if self.policy.param_group(g)["lr_warmup"] < 1.0}
        groups = list(self.policy.layer_groups())
        frozen = self.policy.frozen_groups()
        if not frozen:
            frozen = [g for g in groups if g.rpartition(".")[2] != HEAD]  # the heads (pi.head, vf.head...) learn
            self._announce("froze", self.policy.freeze(*frozen) if frozen else [])
        self.queue = frozen[::-1] if self.order == "top_down" else list(frozen)

    def _on_step(self) -> bool:
        assert self._start is not None
        now = self._last = self.model.num_timesteps
        while self.queue and now >= self._start + (self._unfrozen + 1) * self.every:
            group = self.queue.pop(0)
            self._unfrozen += 1
            if self.warmup:
                self._warming[group] = now
                self._set_warmup(group, 0.0)
            self._announce("unfroze", self.policy.unfreeze(group))
        for group, since in list(self._warming.items()):
            factor = min(1.0, max(0.0, (now - since) / max(self.warmup, 1)))
            self._set_warmup(group, factor)
            if factor >= 1.0:
                del self._warming[group]
        return True

    def _set_warmup(self, group: str, factor: float) -> None:
        self.policy.set_lr_warmup(group, factor)


class PolicyWarmStart(TransferCallback):
    """
    The pretrained policy fills the replay buffer before the first update: SB3's ``learning_starts``, but with the
    pretrained policy acting (epsilon-greedy at the model's exploration rate) instead of random actions.

    Every training phase that follows a rollout ending within the first ``steps`` timesteps of training runs with every
    layer group's learning rate at 0 (the policy's :meth:`~sb3_transfer.policies.TransferPolicyMixin.hold_learning`, which
    lasts one training phase; ``transfer/lr/<group>`` logs the rates used); so, as with ``learning_starts=steps``, the
    first update follows timestep ``steps + 1``.
    Without it, rl-zoo3's settings for many tasks (``learning_starts=0``, a gradient step per environment step) start
    updating a pretrained network on a handful of transitions, which can throw its jumpstart away.

    - The gradient steps of the hold still run (at lr 0): the optimizer's moment estimates fill up on the buffer.
    - The hold is set at the end of each rollout for the training phase that follows, and ends with it; it is not
      saved, so a loaded model learns at its full rates; after a ``learn()`` interrupted between a rollout and its
      training phase, at most the next training phase is held.
    - It counts timesteps of training across ``learn()`` calls of the same model; a new model starts a new hold.
    - :class:`GradualUnfreeze` and its warm-ups wait for the release when given ``delay`` equal to the hold
      (``warm_start_steps(model)`` for the default hold).
    - A policy without pretrained weights is left alone, so the scratch twin of a config stays a plain scratch run.
    - The exploration rate is the model's: with SB3's schedule from 1.0 the buffer fills mostly with random actions
      (``load_and_adapt`` starts epsilon at its final value when the head is carried over).
    - SB3 itself acts at random for the model's first ``learning_starts`` timesteps; the callback does not change that
      (rl-zoo3's CartPole settings: 1000), so the pretrained policy acts from then on.

    With ``offline_steps`` the release begins as QDagger's offline phase does (Agarwal et al. 2022): that many gradient
    steps on the buffer the pretrained policy filled, before the first rollout of the student; with a
    :class:`~sb3_transfer.TransferDQN` whose ``distill_coef`` is set they learn with distillation toward the source.

    :param steps: Timesteps to hold learning for; by default :func:`warm_start_steps` of the model (5000 timesteps at
        rl-zoo3's LunarLander sampling, scaled to the model's), set when ``learn()`` hands the callback its model.
    :param offline_steps: Gradient steps (of the model's batch size) at the release, before acting changes.
    :param verbose: 1 prints the hold and its release.
    """

    def __init__(self, steps: float | None = None, offline_steps: float = 0, verbose: int = 0) -> None:
        super().__init__(verbose)
        self._auto = steps is None
        self.steps: int = 0 if steps is None else _timesteps(steps, "PolicyWarmStart steps")
        self.offline_steps = _timesteps(offline_steps, "PolicyWarmStart offline_steps")
        self._last: int = 0
        self._start_over()

    def _start_over(self) -> None:
        self.elapsed: int = 0  # timesteps of training of this model so far, across learn() calls
        self.released: bool = False
        self.offline_done: bool = False
        if self._auto and getattr(self, "model", None) is not None:  # no model yet when built
            self.steps = warm_start_steps(self.model)

    def _on_training_start(self) -> None:
        self._last = self.model.num_timesteps
        if self.released:
            return
        if self.policy.pretrained_from is None:
            self.released = True
            if self.verbose >= 1:
                print(f"{type(self).__name__}: the policy has no pretrained weights; nothing to do.")
            return
        self._announce(f"holds learning ({self._acting()}) for", [f"{self.steps - self.elapsed} timesteps"])

    def _acting(self) -> str:
        """Who fills the replay buffer while learning is held, in words: a new head is no pretrained policy."""
        report = getattr(self.policy, "transfer_report", None)
        if report is not None and layout_of(self.policy).action_head not in report.carried():
            return "the new head acts, untrained"
        return "the pretrained policy acts"

    def _on_step(self) -> bool:
        if not self.released:
            now = self.model.num_timesteps
            self.elapsed += max(now - self._last, 0)
            self._last = now
            if self.elapsed > self.steps:
                self.released = True
                frozen = set(self.policy.frozen_groups())
                self._announce("released learning for", [g for g in self.policy.layer_groups() if g not in frozen])
        return True

    def _on_rollout_end(self) -> None:
        # For the training phase that follows this rollout (the policy ends the hold with it).
        if self.released:
            self.policy.release_learning()
            if self.offline_steps and not self.offline_done:
                self.offline_done = True
                self._announce("learns offline from the pretrained policy's buffer for", [f"{self.offline_steps} steps"])
                model = cast(OffPolicyAlgorithm, self.model)
                model.train(gradient_steps=self.offline_steps, batch_size=model.batch_size)
        else:
            self.policy.hold_learning()
        super()._on_rollout_end()

    def _on_training_end(self) -> None:
        self.policy.release_learning()

    @property
    def holding(self) -> bool:
        """Whether learning is still held."""
        return not self.released


def training_evaluation(locals_: dict[str, Any], who: str) -> EvalCallback:
    """
    The ``EvalCallback`` that logs the running training's evaluations (the one among its callbacks with a ``log_path``):
    in an rl-zoo3 run, rl-zoo3's own, whose ``evaluations.npz`` is in the run folder (``logs/<algo>/<env>_<N>/``) that
    rl-zoo3's plots read. SB3 hands each callback the training loop's locals when training starts; ``callback`` among
    them is what ``learn()`` runs, the callbacks it was given in a ``CallbackList``.

    :param locals_: The callback's ``self.locals`` at ``_on_training_start``.
    :param who: The callback that asks, for the error.
    :return: The ``EvalCallback``.
    :raises TransferConfigError: No such callback, or more than one.
    """
    found, stack = [], [locals_.get("callback")]
    while stack:
        callback = stack.pop()
        if isinstance(callback, CallbackList):
            stack.extend(callback.callbacks)
        elif isinstance(callback, EvalCallback) and callback.log_path is not None:
            found.append(callback)
    if len(found) != 1:
        problem = "none of this training's callbacks is" if not found else f"{len(found)} of this training's callbacks are"
        raise TransferConfigError(
            f"{who} looks for the EvalCallback that writes this run's evaluations.npz, but {problem} an EvalCallback "
            "with a log_path. With rl-zoo3, evaluate during training: --eval-freq N with N > 0 (rl-zoo3's default, "
            "25000, does; -1 turns it off). With SB3, pass one EvalCallback(..., log_path=...) to learn()."
        )
    return found[0]


class RecordTransfer(BaseCallback):
    """
    For a model that SB3's own algorithm built with a Transfer policy and ``policy_kwargs=dict(pretrained=...)`` (as
    rl-zoo3 builds models): when training starts, prints the transfer report (``verbose=1``), writes it as JSON
    (``path``, or beside the run's ``evaluations.npz``), and makes the model save the architecture the source implied
    instead of the source, as :class:`~sb3_transfer.TransferDQN` does, so that every model saved from then on
    (checkpoints, rl-zoo3's best and final models) loads without the source. A model built without a source (the
    scratch twin of a configuration) is left alone.

    :param path: Where to write the report as JSON (``None``: not written, unless ``beside_evaluations``).
    :param beside_evaluations: Write it as ``transfer_report.json`` in the folder of the training's
        ``evaluations.npz`` (:func:`training_evaluation`): in an rl-zoo3 run, rl-zoo3's run folder, which a callback
        configured in rl-zoo3's YAML cannot otherwise know. Fails when the training has no such ``EvalCallback``.
    :param verbose: 1 prints the report.
    """

    def __init__(self, path: str | None = None, beside_evaluations: bool = False, verbose: int = 1) -> None:
        super().__init__(verbose)
        if path is not None and beside_evaluations:
            raise TransferConfigError("RecordTransfer: give path= or beside_evaluations=True, not both.")
        self.path = path
        self.beside_evaluations = beside_evaluations
        self._recorded: Any = None  # the model whose transfer was recorded

    def _on_training_start(self) -> None:
        # At the start of training, not when learn() hands the callback its model: the run's callbacks (and so its
        # folder) are known only then; no model is saved before it.
        report = getattr(self.model.policy, "transfer_report", None)
        if report is None or self._recorded is self.model:
            return  # no source, or recorded at an earlier learn()
        self._recorded = self.model
        keep_architecture(self.model)  # TransferDQN has done so already
        spec = self.training_env.get_attr("spec", [0])[0]
        report.target = f"{type(self.model).__name__} on {spec.id if spec is not None else 'its env'}"
        if self.verbose >= 1:
            print(report)
        path = self.path
        if self.beside_evaluations:
            log_path = training_evaluation(self.locals, type(self).__name__).log_path
            assert log_path is not None  # training_evaluation finds callbacks with one
            path = os.path.join(os.path.dirname(log_path), "transfer_report.json")
        if path:
            report.save(path)
            if self.verbose >= 1:
                print(f"{type(self).__name__}: wrote {path}")

    def _on_step(self) -> bool:
        return True


class EvaluateAtStart(BaseCallback):
    """
    The training's ``EvalCallback`` (:func:`training_evaluation`: rl-zoo3's in an rl-zoo3 run) also evaluates when
    training starts, before any update, as its first record in its ``evaluations.npz``: the jumpstart lands in the file
    rl-zoo3's plots read, for transfer runs and their scratch twins alike. The evaluation is that callback's own (its
    env, episodes, deterministic actions, VecNormalize sync, success rate), so the record matches its later ones.
    Fails when the training has no such ``EvalCallback`` (rl-zoo3's ``--eval-freq -1``).

    :param verbose: 1 prints the score (as rl-zoo3's EvalCallback prints its own).
    """

    def __init__(self, verbose: int = 1) -> None:
        super().__init__(verbose)

    def _on_training_start(self) -> None:
        evaluation = training_evaluation(self.locals, type(self).__name__)
        if evaluation.evaluations_timesteps and evaluation.evaluations_timesteps[-1] == self.num_timesteps:
            return  # a further learn() with nothing learnt since
        if self.model.get_vec_normalize_env() is not None:
            sync_envs_normalization(self.training_env, evaluation.eval_env)
        successes: list[bool] = []

        def record_success(locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
            if locals_["done"] and locals_["info"].get("is_success") is not None:
                successes.append(locals_["info"]["is_success"])

        episode_rewards, episode_lengths = evaluate_policy(
            self.model,
            evaluation.eval_env,
            n_eval_episodes=evaluation.n_eval_episodes,
            render=evaluation.render,
            deterministic=evaluation.deterministic,
            return_episode_rewards=True,
            warn=evaluation.warn,
            callback=record_success,
        )
        rewards, lengths = cast(list[float], episode_rewards), cast(list[int], episode_lengths)  # return_episode_rewards
        # Recorded where the EvalCallback keeps its records (it rewrites the file from them at each evaluation).
        evaluation.evaluations_timesteps.append(self.num_timesteps)
        evaluation.evaluations_results.append(rewards)
        evaluation.evaluations_length.append(lengths)
        extra: dict[str, Any] = {}
        if successes:
            evaluation.evaluations_successes.append(successes)
            extra["successes"] = evaluation.evaluations_successes
        np.savez(
            evaluation.log_path,  # type: ignore[arg-type]
            timesteps=evaluation.evaluations_timesteps,
            results=evaluation.evaluations_results,
            ep_lengths=evaluation.evaluations_length,
            **extra,
        )
        # Logged as the EvalCallback logs its evaluations (TensorBoard's eval/mean_reward then starts at timestep 0).
        self.logger.record("eval/mean_reward", float(np.mean(rewards)))
        self.logger.dump(self.num_timesteps)
        if self.verbose >= 1:
            print(
                f"{type(self).__name__}: {np.mean(rewards):.2f} +/- {np.std(rewards):.2f} over {len(rewards)} episodes at "
                f"timestep {self.num_timesteps}, before any update; in {evaluation.log_path}.npz"
            )

    def _on_step(self) -> bool:
        return True


class TransferEvalCallback(EvalCallback):
    """
    SB3's ``EvalCallback`` (same arguments and behaviour: ``evaluations.npz``, best-model saving, callbacks on new
    best and after evaluation, VecNormalize sync, success rate) that also evaluates when training starts, before any
    learning, so that the jumpstart is measured, and measures the curve against a baseline.

    After each evaluation it logs ``transfer/jumpstart``, ``transfer/asymptotic_gain``, ``transfer/transfer_ratio``
    and, with a threshold, ``transfer/time_to_threshold_ratio`` (with a baseline), and keeps the metrics in
    :attr:`metrics`. As in SB3, ``eval_freq`` counts calls, i.e. ``eval_freq * n_envs`` timesteps.

    :param eval_env: The target task's environment for evaluation, or its id (a plain env, no wrappers).
    :param baseline: The baseline's curve(s) (e.g. ``"logs/scratch/evaluations.npz"``, a list of such for several
        seeds); see :func:`~sb3_transfer.metrics.load_curve`.
    :param threshold: Score for the time to threshold.
    :param score_range: ``(low, high)`` normalisation of scores (see :func:`~sb3_transfer.metrics.transfer_metrics`).
    :param last_k: Evaluations averaged for the asymptote.
    :param kwargs: ``EvalCallback``'s arguments (``eval_freq``, ``n_eval_episodes``, ``log_path``...).
    """

    def __init__(
        self,
        eval_env: gym.Env | VecEnv | str,
        baseline: Any = None,
        threshold: float | None = None,
        score_range: tuple[float, float] | None = None,
        last_k: int = 5,
        **kwargs: Any,
    ) -> None:
        if isinstance(eval_env, str):  # an env id, as rl-zoo3's YAML callbacks can only give
            eval_env = make_vec_env(eval_env, n_envs=1)
        super().__init__(eval_env, **kwargs)
        # Read now: a wrong path fails before training, not after it.
        baselines = baseline if isinstance(baseline, list) else [baseline]
        self.baseline = None if baseline is None else [load_curve(c) for c in baselines]
        self.threshold, self.score_range, self.last_k = threshold, score_range, last_k
        self.timesteps: list[int] = []
        self.mean_rewards: list[float] = []
        self.metrics: TransferMetrics | None = None

    def _on_training_start(self) -> None:
        if self.eval_freq > 0 and (not self.timesteps or self.timesteps[-1] != self.num_timesteps):
            calls, self.n_calls = self.n_calls, 0  # EvalCallback evaluates when n_calls % eval_freq == 0
            try:
                self._on_step()
            finally:
                self.n_calls = calls

    def _on_step(self) -> bool:
        evaluates = self.eval_freq > 0 and self.n_calls % self.eval_freq == 0
        continue_training = super()._on_step()
        if evaluates:
            self.timesteps.append(self.num_timesteps)
            self.mean_rewards.append(self.last_mean_reward)
            self._measure()
        return continue_training

    def _measure(self) -> None:
        self.metrics = transfer_metrics(
            (self.timesteps, self.mean_rewards),
            self.baseline,
            threshold=self.threshold,
            score_range=self.score_range,
            last_k=self.last_k,
            n_bootstrap=500,
        )
        for name, estimate in self.metrics.comparison.items():
            self.logger.record(f"transfer/{name}", estimate.value)
        if self.metrics.comparison:
            self.logger.dump(self.num_timesteps)
