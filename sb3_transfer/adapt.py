"""``load_and_adapt``: one call from a pretrained source to a ready-to-train DQN / QR-DQN model for a new task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import gymnasium as gym
from gymnasium import spaces
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv

from sb3_transfer.callbacks import warm_start_steps
from sb3_transfer.errors import IncompatibleSpaceError, TransferConfigError
from sb3_transfer.sources import SourceNetwork, read_source
from sb3_transfer.policies import TransferDQNPolicy, TransferQRDQNPolicy
from sb3_transfer.transplant import ADAPTED, COPIED, HEAD, INITIALISED, TransferReport

ALGOS: dict[str, type[BaseAlgorithm]] = {"dqn": DQN, "qrdqn": QRDQN}


def load_and_adapt(
    source: Any,
    env: gym.Env | VecEnv | str,
    algo: type[DQN] | type[QRDQN] | str | None = None,
    *,
    transfer: str | Sequence[str] = "trunk",
    action_map: Mapping[int, int] | None = None,
    strict: bool = False,
    trust_source: bool = False,
    verbose: int = 1,
    **model_kwargs: Any,
) -> DQN | QRDQN:
    """
    Build a ready-to-train DQN / QR-DQN model for a target task, carrying over as much of a pretrained network as fits.

    The target network takes the source's architecture (hidden layers, activation, features extractor) unless
    ``policy_kwargs`` says otherwise. What does not fit is adapted: a vector observation of another size gets an
    :class:`~sb3_transfer.adapters.InputAdapter`, an image of another channel count gets its first conv adapted,
    another action set gets a new head (rows carried over by ``action_map``). ``model.transfer_report`` tells, tensor by
    tensor, what was copied, adapted, initialised or dropped.

    :param source: Path to an SB3 ``.zip``; an SB3 DQN / QR-DQN model or policy; an ``nn.Module`` (becomes the
        features extractor); or a state dict of a DQN / QR-DQN policy.
    :param env: The target task: an env id, a gymnasium Env or a VecEnv.
    :param algo: ``DQN`` or ``QRDQN`` (class or name). Default: the source's algorithm, DQN for an encoder.
    :param transfer: Which groups to carry over: ``"features"`` (features extractor), ``"trunk"`` (everything but
        the head), ``"all"`` (the head too, where shapes allow), or a list of glob patterns over group names.
    :param action_map: ``{target_action: source_action}``: the head rows to carry over when the action sets differ
        (for QR-DQN, all quantiles of the action). Implies the head is transferred.
    :param strict: Raise if any selected pretrained tensor cannot be copied as it is.
    :param trust_source: Allow unpickling the source zip's metadata (needed for custom classes). Never set it for a
        file from someone you do not trust: unpickling can run code.
    :param verbose: 1 prints the transfer report (and SB3's messages), 0 is silent.
    :param model_kwargs: Passed to the algorithm's constructor (``policy_kwargs``, ``learning_rate``, ``seed``...).
        The policy is :class:`~sb3_transfer.policies.TransferDQNPolicy` (``TransferQRDQNPolicy`` for QR-DQN), so
        ``policy_kwargs`` may also hold ``freeze`` and ``lr_scale``.
    :return: The model, with its report in ``model.transfer_report``.
    """
    network = read_source(source, trust_source=trust_source)
    algo_class = _resolve_algo(algo, network)
    vec_env = _wrap_env(env, verbose)
    env_name = _env_name(env, vec_env)
    if not isinstance(vec_env.action_space, spaces.Discrete):
        raise IncompatibleSpaceError(
            f"{algo_class.__name__} needs a Discrete action space; the target env {env_name} has {vec_env.action_space}."
        )
    policy_class = TransferQRDQNPolicy if issubclass(algo_class, QRDQN) else TransferDQNPolicy
    policy = model_kwargs.pop("policy", policy_class)
    if not (isinstance(policy, type) and issubclass(policy, policy_class)):
        raise TransferConfigError(
            f"load_and_adapt builds {algo_class.__name__} models with {policy_class.__name__} (or a subclass), not {policy!r}."
        )
    user_policy_kwargs = dict(model_kwargs.pop("policy_kwargs", None) or {})
    policy_kwargs = {
        **user_policy_kwargs,
        "pretrained": network,
        "transfer": transfer,
        "action_map": action_map,
        "strict": strict,
    }
    model = algo_class(cast(Any, policy), vec_env, policy_kwargs=policy_kwargs, verbose=verbose, **model_kwargs)
    report = cast(TransferReport, model.policy.transfer_report)
    report.target = f"{algo_class.__name__} on {env_name}"
    report.settings = apply_fine_tuning_defaults(model, report, {**model_kwargs, **user_policy_kwargs})
    note = warm_start_note(model, report)
    if note:
        report.notes.append(note)
    setattr(model, "transfer_report", report)  # noqa: B010  (SB3's classes do not declare it)
    if verbose >= 1:
        print(report)
    return model  # type: ignore[return-value]


#: Learning-rate factor of the pretrained layer groups while fine-tuning (``lr_scale``).
FINE_TUNING_LR_SCALE = 0.1


def warm_start_note(model: BaseAlgorithm, report: TransferReport) -> str | None:
    """
    The advice to pass a :class:`~sb3_transfer.callbacks.PolicyWarmStart` to ``learn()``, when the pretrained head
    is carried over and the model would update before the warm start for its sampling
    (:func:`~sb3_transfer.callbacks.warm_start_steps`) ends (a callback cannot be set up here: ``learn()`` takes them).
    """
    head = report.group_actions().get(HEAD, set())
    learning_starts = getattr(model, "learning_starts", 0)
    hold = warm_start_steps(model)
    if not (head & {COPIED, ADAPTED}) or INITIALISED in head or learning_starts >= hold:
        return None
    return (
        f"learning starts at timestep {learning_starts}: to let the pretrained policy fill the replay buffer first, "
        f"pass callback=PolicyWarmStart() (sb3_transfer.callbacks) to learn(); for this model's sampling it holds "
        f"learning for {hold} timesteps. It kept the jumpstart on windy LunarLander and only delayed learning where the "
        "source's policy was of no use on the new task (benchmarks/results/README.md, warm start)."
    )


def apply_fine_tuning_defaults(model: BaseAlgorithm, report: TransferReport, user_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """
    Set the hyperparameters that suit a pretrained start, where the user left them unset.

    - ``lr_scale``: the groups carried over (copied or adapted) learn at :data:`FINE_TUNING_LR_SCALE` times the
      learning rate; new layers at the full rate. At rl-zoo3's learning rates, fine-tuning at the full rate threw the
      jumpstart away within a few thousand steps (Acrobot -> heavy: a dip of 308 of a jumpstart of 384) or collapsed
      once the task was solved (CartPole -> weak motor: 16 after 500); at x0.1 neither happened
      (``benchmarks/fine_tuning_settings.py``, ``benchmarks/results/README.md``).
    - ``exploration_initial_eps``: with the head carried over, epsilon starts at its final value instead of 1.0,
      since the pretrained policy already acts on what it learnt. With a new head SB3's schedule stands.

    :param model: The model, after the transplant.
    :param report: The transplant's report.
    :param user_kwargs: The constructor arguments and ``policy_kwargs`` the user gave.
    :return: ``{name: {"value": ..., "reason": ...}}`` for each setting changed.
    """
    settings: dict[str, Any] = {}
    actions = report.group_actions()
    groups = model.policy.layer_groups()  # type: ignore[operator]
    carried = [g for g in groups if actions.get(g, set()) & {COPIED, ADAPTED} and INITIALISED not in actions[g]]
    if carried and "lr_scale" not in user_kwargs:
        scale = {g: FINE_TUNING_LR_SCALE for g in carried}
        model.policy.set_lr_scale(scale)  # type: ignore[operator]
        settings["lr_scale"] = {
            "value": scale,
            "reason": "pretrained layers fine-tune at a tenth of the learning rate, so that the first updates on a "
            "new task do not throw their jumpstart away",
        }
    head_carried = HEAD in carried
    if head_carried and "exploration_initial_eps" not in user_kwargs:
        eps = model.exploration_final_eps  # type: ignore[attr-defined]
        model.exploration_initial_eps = eps  # type: ignore[attr-defined]
        model.exploration_schedule = LinearSchedule(eps, eps, model.exploration_fraction)  # type: ignore[attr-defined]
        settings["exploration_initial_eps"] = {
            "value": eps,
            "reason": "the head is pretrained: start at the final epsilon instead of 1.0, so random actions "
            "do not throw the jumpstart away",
        }
    return settings


def _resolve_algo(algo: type[BaseAlgorithm] | str | None, network: SourceNetwork) -> type[DQN] | type[QRDQN]:
    if algo is None:
        return QRDQN if network.algo == "QRDQN" else DQN
    if isinstance(algo, str):
        key = algo.lower().replace("-", "").replace("_", "")
        if key not in ALGOS:
            raise TransferConfigError(f"algo='{algo}' is not supported; choose one of DQN, QRDQN.")
        return ALGOS[key]  # type: ignore[return-value]
    if isinstance(algo, type) and issubclass(algo, DQN | QRDQN):
        return algo
    raise TransferConfigError(f"algo={algo!r} is not supported; choose DQN, QRDQN (or a subclass), or their names.")


def _wrap_env(env: gym.Env | VecEnv | str, verbose: int) -> VecEnv:
    if isinstance(env, str):
        try:
            env = gym.make(env)
        except gym.error.Error as e:
            raise TransferConfigError(f"Cannot make the target env '{env}': {e}") from e
    # The same wrapping SB3 applies (Monitor, DummyVecEnv, VecTransposeImage), done here so that the policy can be
    # fitted to the observation space the model will really see.
    return BaseAlgorithm._wrap_env(env, verbose=verbose)


def _env_name(env: gym.Env | VecEnv | str, vec_env: VecEnv) -> str:
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None) or getattr(getattr(vec_env, "envs", [None])[0], "spec", None)
    return spec.id if spec is not None else type(env).__name__
