"""``load_and_adapt``: one call from a pretrained source to a ready-to-train model for a new task (DQN, QR-DQN, PPO,
A2C, MaskablePPO, SAC, TQC, TD3, DDPG)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium import spaces
from sb3_contrib import QRDQN, TQC, MaskablePPO
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from sb3_transfer.algorithms import (
    BuiltFromSourceMixin,
    TransferA2C,
    TransferDDPG,
    TransferDQN,
    TransferMaskablePPO,
    TransferPPO,
    TransferQRDQN,
    TransferSAC,
    TransferTD3,
    TransferTQC,
)
from sb3_transfer.callbacks import warm_start_steps
from sb3_transfer.errors import IncompatibleSpaceError, SourceNotFoundError, TransferConfigError
from sb3_transfer.groups import HEAD, layout_of
from sb3_transfer.sources import SourceNetwork, read_source
from sb3_transfer.transplant import TransferReport
from sb3_transfer.vecnormalize import VecNormalizeStats, read_vecnormalize, wrap_vecnormalize

#: The algorithms ``load_and_adapt`` builds, by name.
ALGOS: dict[str, type[BaseAlgorithm]] = {
    "dqn": TransferDQN,
    "qrdqn": TransferQRDQN,
    "ppo": TransferPPO,
    "a2c": TransferA2C,
    "maskableppo": TransferMaskablePPO,
    "sac": TransferSAC,
    "tqc": TransferTQC,
    "td3": TransferTD3,
    "ddpg": TransferDDPG,
}
#: SB3's own algorithms of the same names (to train sources with).
SB3_ALGOS: dict[str, type[BaseAlgorithm]] = {
    "dqn": DQN,
    "qrdqn": QRDQN,
    "ppo": PPO,
    "a2c": A2C,
    "maskableppo": MaskablePPO,
    "sac": SAC,
    "tqc": TQC,
    "td3": TD3,
    "ddpg": DDPG,
}
#: The algorithms that act on Discrete actions only, and those on Box actions only.
_DISCRETE_ONLY = (TransferDQN, TransferQRDQN, TransferMaskablePPO)
_BOX_ONLY = (TransferSAC, TransferTQC, TransferTD3, TransferDDPG)
#: The algorithm of a source whose own is not recorded, by its policy family.
_FAMILY_ALGOS: dict[str, type[BaseAlgorithm]] = {"ActorCritic": TransferPPO, "SAC": TransferSAC, "TD3": TransferTD3}


def load_and_adapt(
    source: Any,
    env: gym.Env | VecEnv | str,
    algo: type[BaseAlgorithm] | str | None = None,
    *,
    policy: str | type | None = None,
    transfer: str | Sequence[str] = "trunk",
    action_map: Mapping[int, int] | None = None,
    strict: bool = False,
    trust_source: bool = False,
    vecnormalize: str | os.PathLike | bool | VecNormalizeStats | None = None,
    verbose: int = 1,
    **model_kwargs: Any,
) -> Any:
    """
    Build a ready-to-train model for a target task, carrying over as much of a pretrained network as fits.

    The target network takes the source's architecture (hidden layers, activation, features extractor) unless
    ``policy_kwargs`` says otherwise. What does not fit is adapted: a vector observation of another size gets an
    :class:`~sb3_transfer.adapters.InputAdapter`, an image of another channel count gets its first conv adapted,
    another action set gets a new head (rows carried over by ``action_map``). Between algorithms (a DQN source for PPO),
    the features extractor and hidden layers carry over where their shapes allow. ``model.transfer_report`` tells,
    tensor by tensor, what was copied, adapted, initialised or dropped; ``model.transfer_report.save(path)`` writes it
    as JSON.

    :param source: Path to an SB3 ``.zip``; an SB3 / sb3-contrib DQN, QR-DQN, PPO, A2C, MaskablePPO, SAC, TQC, TD3 or
        DDPG model or policy; an ``nn.Module`` (becomes the features extractor); or a state dict of such a policy.
    :param env: The target task: an env id, a gymnasium Env or a VecEnv.
    :param algo: ``DQN``, ``QRDQN``, ``PPO``, ``A2C``, ``MaskablePPO``, ``SAC``, ``TQC``, ``TD3`` or ``DDPG`` (class
        or name; the model is the Transfer algorithm of that name, :class:`~sb3_transfer.TransferDQN`..., or a subclass
        of one given here). Default: the source's algorithm (PPO for an actor-critic whose algorithm is not recorded,
        SAC / TD3 for their policies), DQN for an encoder.
    :param policy: ``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"`` (as in SB3; they name the Transfer policies)
        or a Transfer policy class. Default: the alias SB3 users pick for the target's observations.
    :param transfer: Which groups to carry over: ``"features"`` (features extractor), ``"trunk"`` (everything but
        the head), ``"all"`` (the head too, where shapes allow), or a list of glob patterns over group names.
    :param action_map: ``{target_action: source_action}``: the head rows to carry over when the action sets differ
        (for QR-DQN, all quantiles of the action; for Box actions, ``{target_dimension: source_dimension}``, the rows of
        the mean and of ``log_std``). Implies the head is transferred.
    :param strict: Raise if any selected pretrained tensor cannot be copied as it is.
    :param trust_source: Allow unpickling the source zip's metadata (needed for custom classes). Never set it for a
        file from someone you do not trust: unpickling can run code.
    :param vecnormalize: The source's ``VecNormalize`` statistics, to normalise the target's observations (and rewards)
        as the source saw them: a ``vecnormalize.pkl`` path, ``True`` to take the one rl-zoo3 saves beside the source
        zip (``vecnormalize.pkl`` in its folder, or in the folder named after it), or statistics already read by
        :func:`~sb3_transfer.vecnormalize.read_vecnormalize`. Read without unpickling; the statistics keep updating
        while the model trains. ``None``: no normalisation.
    :param verbose: 1 prints the transfer report (and SB3's messages), 0 is silent.
    :param model_kwargs: Passed to the algorithm's constructor (``policy_kwargs``, ``learning_rate``, ``seed``...);
        ``policy_kwargs`` may also hold ``freeze`` and ``lr_scale``.
    :return: The model, with its report in ``model.transfer_report``.
    """
    network = read_source(source, trust_source=trust_source)
    algo_class = _resolve_algo(algo, network)
    stats = _vecnormalize_stats(vecnormalize, source)
    env_name = env if isinstance(env, str) else _env_name(env)
    if isinstance(env, str):
        try:
            env = gym.make(env)
        except gym.error.Error as e:
            raise TransferConfigError(f"Cannot make the target env '{env}': {e}") from e
    if stats is not None:
        venv = env if isinstance(env, VecEnv) else DummyVecEnv([lambda: env])
        env = wrap_vecnormalize(stats, venv, training=True)
    if issubclass(algo_class, _DISCRETE_ONLY) and not isinstance(env.action_space, spaces.Discrete):
        raise IncompatibleSpaceError(
            f"{_sb3_name(algo_class)} needs a Discrete action space; the target env {env_name} has {env.action_space}."
        )
    if issubclass(algo_class, _BOX_ONLY) and not isinstance(env.action_space, spaces.Box):
        raise IncompatibleSpaceError(
            f"{_sb3_name(algo_class)} needs a Box (continuous) action space; the target env {env_name} has "
            f"{env.action_space}. Pass algo= an algorithm for it (DQN, PPO...): the features and hidden layers carry over."
        )
    policy = _resolve_policy(policy, algo_class, env.observation_space)
    user_policy_kwargs = dict(model_kwargs.pop("policy_kwargs", None) or {})
    policy_kwargs = {
        **user_policy_kwargs,
        "pretrained": network,
        "transfer": transfer,
        "action_map": action_map,
        "strict": strict,
    }
    if network.use_sde and "use_sde" not in model_kwargs and "use_sde" in inspect.signature(algo_class).parameters:
        model_kwargs["use_sde"] = True  # the actor's exploration matrix carries over only into a gSDE actor
    model = algo_class(policy, env, policy_kwargs=policy_kwargs, verbose=verbose, **model_kwargs)
    report = model.transfer_report  # type: ignore[attr-defined]  # a BuiltFromSourceMixin's
    assert report is not None  # the policy was built from the source
    report.target = f"{_sb3_name(algo_class)} on {env_name}"
    report.settings = apply_fine_tuning_defaults(model, report, {**model_kwargs, **user_policy_kwargs})
    note = warm_start_note(model, report)
    if note:
        report.notes.append(note)
    if stats is not None:
        report.notes.append(
            f"observations{' and rewards' if stats.norm_reward else ''} are normalised with the source's VecNormalize "
            f"statistics ({stats.source}), which keep updating while the model trains: save them with "
            "model.get_vec_normalize_env().save(path) beside the model."
        )
    if verbose >= 1:
        print(report)
    return model


#: Learning-rate factor of the pretrained layer groups while fine-tuning (``lr_scale``).
FINE_TUNING_LR_SCALE = 0.1


def warm_start_note(model: BaseAlgorithm, report: TransferReport) -> str | None:
    """
    The advice to pass a :class:`~sb3_transfer.callbacks.PolicyWarmStart` to ``learn()``, when the pretrained head
    is carried over and the model would update before the warm start for its sampling
    (:func:`~sb3_transfer.callbacks.warm_start_steps`) ends (a callback cannot be set up here: ``learn()`` takes them).
    """
    if not isinstance(model, OffPolicyAlgorithm):  # no replay buffer to fill
        return None
    if not isinstance(model, TransferDQN | TransferQRDQN):  # measured for DQN only (SAC's warm start is not)
        return None
    learning_starts = model.learning_starts
    hold = warm_start_steps(model)
    if layout_of(model.policy).action_head not in report.carried() or learning_starts >= hold:
        return None
    return (
        f"learning starts at timestep {learning_starts}: to let the pretrained policy fill the replay buffer first, "
        f"pass callback=PolicyWarmStart() (sb3_transfer.callbacks) to learn(); for this model's sampling it holds "
        f"learning for {hold} timesteps (docs/fine-tuning.md says what it did in the benchmarks)."
    )


def apply_fine_tuning_defaults(model: BaseAlgorithm, report: TransferReport, user_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """
    Set the hyperparameters that suit a pretrained start, where the user left them unset, and say which.

    - DQN / QR-DQN: ``lr_scale``: the groups carried over (copied or adapted) learn at :data:`FINE_TUNING_LR_SCALE`
      times the learning rate; new layers at the full rate (``docs/fine-tuning.md`` gives the measurements behind it).
    - DQN / QR-DQN: ``exploration_initial_eps`` (set by :class:`~sb3_transfer.TransferDQN` itself): with the head carried
      over, epsilon starts at its final value instead of 1.0, since the pretrained policy already acts on what it learnt.

    :param model: The model, after the transplant.
    :param report: The transplant's report.
    :param user_kwargs: The constructor arguments and ``policy_kwargs`` the user gave.
    :return: ``{name: {"value": ..., "reason": ...}}`` for each setting chosen.
    """
    settings: dict[str, Any] = {}
    if not isinstance(model, TransferDQN | TransferQRDQN):
        report.notes.append(
            f"{_sb3_name(type(model))} trains with the algorithm's own settings: sb3-transfer's fine-tuning defaults "
            "are DQN / QR-DQN's (for PPO's learning rate and SAC's entropy coefficient the benchmarks found no better "
            "setting: benchmarks/results/README.md)."
        )
        return settings
    groups = model.policy.layer_groups()  # type: ignore[operator]
    carried = [g for g in groups if g in report.carried()]
    if carried and "lr_scale" not in user_kwargs:
        scale = {g: FINE_TUNING_LR_SCALE for g in carried}
        model.policy.set_lr_scale(scale)  # type: ignore[operator]
        settings["lr_scale"] = {
            "value": scale,
            "reason": "pretrained layers fine-tune at a tenth of the learning rate, so that the first updates on a "
            "new task do not throw their jumpstart away",
        }
    if HEAD in carried and "exploration_initial_eps" not in user_kwargs:
        settings["exploration_initial_eps"] = {
            "value": model.exploration_initial_eps,  # type: ignore[attr-defined]
            "reason": "the head is pretrained: start at the final epsilon instead of 1.0, so random actions "
            "do not throw the jumpstart away",
        }
    return settings


def _vecnormalize_stats(vecnormalize: Any, source: Any) -> VecNormalizeStats | None:
    """The statistics ``vecnormalize=`` names (see :func:`load_and_adapt`)."""
    if vecnormalize is None or vecnormalize is False:
        return None
    if isinstance(vecnormalize, VecNormalizeStats):
        return vecnormalize
    if vecnormalize is True:
        if not isinstance(source, str | os.PathLike):
            raise TransferConfigError(
                "vecnormalize=True looks for vecnormalize.pkl beside the source zip; the source is not a path: pass the "
                "path of the statistics instead."
            )
        path = Path(source)
        candidates = [path.parent / "vecnormalize.pkl", path.parent / path.name.removesuffix(".zip") / "vecnormalize.pkl"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise SourceNotFoundError(
                f"vecnormalize=True: no vecnormalize.pkl beside '{path}' (looked for {', '.join(map(str, candidates))})."
            )
        return read_vecnormalize(found)
    if isinstance(vecnormalize, str | os.PathLike):
        return read_vecnormalize(vecnormalize)
    raise TransferConfigError(
        f"vecnormalize={vecnormalize!r}: give a path to vecnormalize.pkl, True (beside the source zip) or None."
    )


def _resolve_algo(algo: type[BaseAlgorithm] | str | None, network: SourceNetwork) -> type[BaseAlgorithm]:
    names = ", ".join(a.__name__ for a in SB3_ALGOS.values())
    if algo is None:
        trained_with = (network.trained_with or "").lower()
        return ALGOS.get(trained_with) or _FAMILY_ALGOS.get(network.algo, TransferDQN)
    if isinstance(algo, str):
        key = algo.lower().replace("-", "").replace("_", "")
        if key not in ALGOS:
            raise TransferConfigError(f"algo='{algo}' is not supported; choose one of {names}.")
        return ALGOS[key]
    if isinstance(algo, type) and issubclass(algo, BuiltFromSourceMixin):
        return algo
    if algo in SB3_ALGOS.values():
        return ALGOS[algo.__name__.lower()]
    raise TransferConfigError(
        f"algo={algo!r} is not supported; choose one of {names} (class or name), or a subclass of their Transfer algorithms."
    )


def _resolve_policy(policy: str | type | None, algo_class: type[BaseAlgorithm], observation_space: spaces.Space) -> Any:
    aliases = algo_class.policy_aliases
    if policy is None:
        if isinstance(observation_space, spaces.Dict):
            return "MultiInputPolicy"
        return "CnnPolicy" if is_image_space(observation_space, check_channels=False) else "MlpPolicy"
    if isinstance(policy, str) and policy in aliases:
        return policy
    if isinstance(policy, type) and issubclass(policy, aliases["MlpPolicy"]):
        return policy
    raise TransferConfigError(
        f"policy={policy!r}: {_sb3_name(algo_class)} models are built with {', '.join(aliases)} "
        f"or a subclass of {aliases['MlpPolicy'].__name__}."
    )


def _sb3_name(algo_class: type[BaseAlgorithm]) -> str:
    """The SB3 / sb3-contrib algorithm a class is (``DQN`` for ``TransferDQN``)."""
    return next(c.__name__ for c in algo_class.__mro__ if c.__module__.startswith(("stable_baselines3", "sb3_contrib")))


def _env_name(env: gym.Env | VecEnv) -> str:
    spec = env.get_attr("spec", [0])[0] if isinstance(env, VecEnv) else getattr(env, "spec", None)
    return spec.id if spec is not None else type(env).__name__
