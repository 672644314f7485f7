"""``load_and_adapt``: one call from a pretrained source to a ready-to-train DQN / QR-DQN model for a new task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
from gymnasium import spaces
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv

from sb3_transfer.adapters import InputAdapter, ModuleExtractor
from sb3_transfer.errors import IncompatibleSpaceError, InvalidSourceError, TransferConfigError
from sb3_transfer.sources import SourceNetwork, read_source
from sb3_transfer.transplant import ADAPTED, COPIED, HEAD, TransferReport, transplant

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
        A ``policy`` key chooses the policy (default: ``MlpPolicy``, ``CnnPolicy`` or ``MultiInputPolicy`` by the
        target's observations).
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
    user_policy_kwargs = dict(model_kwargs.pop("policy_kwargs", None) or {})
    policy_kwargs, notes = target_policy_kwargs(network, algo_class, vec_env.observation_space, user_policy_kwargs)
    policy = model_kwargs.pop("policy", None) or _default_policy(vec_env.observation_space)
    model = algo_class(policy, vec_env, policy_kwargs=policy_kwargs, verbose=verbose, **model_kwargs)
    report = transplant(
        network,
        model.policy,
        transfer=transfer,
        action_map=action_map,
        strict=strict,
        target_description=f"{algo_class.__name__} on {env_name}",
    )
    report.notes += notes
    report.settings = apply_fine_tuning_defaults(model, report, model_kwargs)
    model.transfer_report = report  # type: ignore[attr-defined]
    if verbose >= 1:
        print(report)
    return model  # type: ignore[return-value]


def apply_fine_tuning_defaults(model: BaseAlgorithm, report: TransferReport, user_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """
    Set the hyperparameters that suit a pretrained start, where the user left them unset.

    With the head carried over, the model already acts on what it learnt; SB3's default exploration starts with fully
    random actions (epsilon 1.0) and would throw that jumpstart away, so epsilon starts at its final value instead.
    With a new head the policy is untrained and SB3's defaults stand.

    :param model: The model, after the transplant.
    :param report: The transplant's report.
    :param user_kwargs: The constructor arguments the user gave.
    :return: ``{name: {"value": ..., "reason": ...}}`` for each setting changed.
    """
    settings: dict[str, Any] = {}
    head_actions = report.group_actions().get(HEAD, set())
    head_carried = bool(head_actions) and head_actions <= {COPIED, ADAPTED}
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


def target_policy_kwargs(
    network: SourceNetwork,
    algo_class: type[BaseAlgorithm],
    observation_space: spaces.Space,
    user_kwargs: Mapping[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    """
    The ``policy_kwargs`` of a target policy that fits a source network: its architecture, and an input adapter
    when the vector observation size differs. The user's ``policy_kwargs`` take precedence.

    :param network: The source network.
    :param algo_class: The target algorithm.
    :param observation_space: The target's observation space (after SB3's wrappers, i.e. images channel-first).
    :param user_kwargs: The user's ``policy_kwargs``.
    :return: The policy kwargs, and notes for the report.
    """
    notes: list[str] = []
    kwargs: dict[str, Any] = {}
    if network.algo != "module":
        kwargs.update(net_arch=list(network.net_arch), activation_fn=network.activation_fn)
        if network.algo == "QRDQN" and issubclass(algo_class, QRDQN):
            kwargs["n_quantiles"] = network.n_quantiles
    image = is_image_space(observation_space)
    if image and network.normalize_images is not None:
        kwargs["normalize_images"] = network.normalize_images

    cls = ModuleExtractor if network.module is not None else network.features_extractor_class
    extractor_kwargs = {"module": network.module} if network.module is not None else dict(network.features_extractor_kwargs)
    if "features_extractor_class" in user_kwargs:
        cls, extractor_kwargs = (
            user_kwargs["features_extractor_class"],
            dict(user_kwargs.get("features_extractor_kwargs") or {}),
        )
    elif cls is None:
        raise InvalidSourceError(
            f"{network.description} uses the custom features extractor {network.features_extractor_name}, which is not "
            "imported from a file that may come from a stranger. Pass policy_kwargs=dict(features_extractor_class=..., "
            "features_extractor_kwargs=...) with that class, or trust_source=True if you trust the file."
        )
    fits = {
        FlattenExtractor: not image and not isinstance(observation_space, spaces.Dict),
        NatureCNN: image,
        CombinedExtractor: isinstance(observation_space, spaces.Dict),
    }.get(cls, True)
    input_dim = network.input_dim
    if not fits:
        notes.append(
            f"the source's {cls.__name__} does not fit the target observations {observation_space}; "
            "the target uses SB3's default extractor for them, freshly initialised."
        )
    elif (
        "features_extractor_class" not in user_kwargs
        and input_dim is not None
        and isinstance(observation_space, spaces.Box)
        and not image
        and (network.adapted_dim is not None or get_flattened_obs_dim(observation_space) != input_dim)
    ):
        adapted_dim = network.adapted_dim or input_dim
        kwargs["features_extractor_class"] = InputAdapter
        kwargs["features_extractor_kwargs"] = dict(
            adapted_dim=adapted_dim, extractor_class=cls, extractor_kwargs=extractor_kwargs
        )
        notes.append(
            f"the target has {get_flattened_obs_dim(observation_space)} observation inputs, the pretrained layers take "
            f"{adapted_dim}: an input adapter sits in front of them."
        )
    else:
        kwargs.update(features_extractor_class=cls, features_extractor_kwargs=extractor_kwargs)

    for key, value in user_kwargs.items():
        if key in kwargs and kwargs[key] != value and key != "features_extractor_kwargs":
            notes.append(f"policy_kwargs {key}={value!r} from you (the source has {kwargs[key]!r}).")
        kwargs[key] = value
    return kwargs, notes


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


def _default_policy(observation_space: spaces.Space) -> str:
    if isinstance(observation_space, spaces.Dict):
        return "MultiInputPolicy"
    return "CnnPolicy" if is_image_space(observation_space) else "MlpPolicy"
