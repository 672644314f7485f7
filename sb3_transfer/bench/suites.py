"""Benchmark suites: pairs of a source and a target task, transfer methods, seeds. A new pair is a few lines."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sb3_transfer.callbacks import WARM_START_STEPS
from sb3_transfer.extractors import SmallCNN


@dataclass(frozen=True)
class Pair:
    """
    A source task and a target task, with the budgets of both.

    :param name: Short name, used in paths and tables.
    :param source_env: The source task.
    :param target_env: The target task.
    :param source_steps: Timesteps to pretrain the source agent (trained once per suite and cached).
    :param target_steps: Timesteps of every run on the target.
    :param eval_freq: Timesteps between evaluations on the target.
    :param score_range: ``(random score, solved score)`` of the target, to normalise scores across pairs.
    :param threshold: Target score for the time to threshold.
    :param algo: ``"dqn"``, ``"qrdqn"``, ``"ppo"`` or ``"a2c"``.
    :param n_eval_episodes: Episodes per evaluation.
    :param action_map: ``{target_action: source_action}`` for cross-space pairs, if any.
    :param hyperparams: Overrides of the algorithm's hyperparameters (rl-zoo3's for the target's source task
        otherwise).
    :param policy: The source agent's policy (``"MlpPolicy"``, ``"CnnPolicy"``); scratch runs use the Transfer
        policy with the same ``policy_kwargs``.
    :param zoo_hyperparams: Start from rl-zoo3's tuned hyperparameters (``False`` for tasks rl-zoo3 has none for).
    :param source_seed: Seed of the source agent's training: pairs that differ in it transfer from different agents.
    """

    name: str
    source_env: str
    target_env: str
    source_steps: int
    target_steps: int
    eval_freq: int
    score_range: tuple[float, float]
    threshold: float
    algo: str = "dqn"
    n_eval_episodes: int = 10
    action_map: dict[int, int] | None = None
    hyperparams: dict[str, Any] = field(default_factory=dict)
    policy: str = "MlpPolicy"
    zoo_hyperparams: bool = True
    source_seed: int = 0


@dataclass(frozen=True)
class Method:
    """
    A way to start on the target task.

    :param name: Short name.
    :param transfer: ``transfer=`` of ``load_and_adapt``; ``None`` learns from scratch.
    :param freeze: Groups frozen at the start.
    :param lr_scale: Per-group learning-rate factors.
    :param unfreeze_fraction: With frozen groups, ``GradualUnfreeze(every=...)`` at this fraction of the budget.
    :param hyperparams: Overrides of the pair's hyperparameters for this method.
    :param warm_start: Timesteps the pretrained policy fills the replay buffer before any update
        (:class:`~sb3_transfer.callbacks.PolicyWarmStart`; 0: none).
    :param scale_warm_start: ``warm_start`` is given at rl-zoo3's LunarLander sampling (128 transitions drawn per
        timestep) and each run holds it scaled to its own (:func:`~sb3_transfer.callbacks.warm_start_steps`; a quarter
        on rl-zoo3's CartPole settings).
    :param offline_steps: Gradient steps on the warm start's buffer when it ends, before acting changes (QDagger's
        offline phase; :class:`~sb3_transfer.callbacks.PolicyWarmStart`).
    :param train: ``False``: the adapted model is never trained, only evaluated when and as a training run is (same
        timesteps, evaluation env and seed), without stepping the training env: what the pretrained policy scores on
        the target as it is, and how far the evaluations of one unchanged policy wander (the noise floor of the
        no-forgetting check).
    :param description: What it is, for reports.
    """

    name: str
    transfer: str | None
    freeze: tuple[str, ...] = ()
    lr_scale: dict[str, float] = field(default_factory=dict)
    unfreeze_fraction: float | None = None
    hyperparams: dict[str, Any] = field(default_factory=dict)
    warm_start: int = 0
    scale_warm_start: bool = False
    offline_steps: int = 0
    train: bool = True
    description: str = ""


METHODS = {
    "scratch": Method("scratch", None, description="learning from scratch"),
    "zeroshot": Method(
        "zeroshot",
        "all",
        train=False,
        description="the adapted pretrained policy as it is, never trained on the target (its curve is evaluation noise)",
    ),
    # The warm start: benchmarks/results/README.md, "warm start".
    "finetune": Method(
        "finetune",
        "all",
        warm_start=WARM_START_STEPS,
        scale_warm_start=True,
        description="every pretrained layer fine-tuned (at lr x0.1: load_and_adapt's default), after a PolicyWarmStart "
        "(5k steps at 128 transitions drawn per step, scaled to the pair's sampling)",
    ),
    # Keeping what the source knows: benchmarks/keep_source_pilot.py chose the settings (benchmarks/results/README.md).
    "distill": Method(
        "distill",
        "all",
        warm_start=WARM_START_STEPS,
        scale_warm_start=True,
        hyperparams=dict(distill_coef=1.0, distill_temperature=0.1, distill_decay="return"),
        description="finetune + distillation toward the source (lambda_0 1, tau 0.1, QDagger's return decay)",
    ),
    "anchor": Method(
        "anchor",
        "all",
        warm_start=WARM_START_STEPS,
        scale_warm_start=True,
        hyperparams=dict(anchor_coef=0.1),
        description="finetune + L2-SP anchor to the transplanted weights (lambda 0.1)",
    ),
    # For on-policy algorithms (no replay buffer, so no warm start), whose fine-tuning rate load_and_adapt leaves as it is.
    "finetune-lr1": Method(
        "finetune-lr1", "all", description="every pretrained layer fine-tuned at the algorithm's own learning rate"
    ),
    "finetune-lr0.1": Method(
        "finetune-lr0.1",
        "all",
        lr_scale={"*": 0.1},
        description="every pretrained layer fine-tuned at a tenth of the learning rate (lr_scale {'*': 0.1})",
    ),
    # SAC's entropy coefficient after a transfer: SB3's start at 1.0 (TransferSAC's default) against the source's.
    "finetune-ent1": Method(
        "finetune-ent1",
        "all",
        hyperparams=dict(ent_coef="auto"),
        description="every pretrained layer fine-tuned, the entropy coefficient learnt from SB3's 1.0 (TransferSAC's default)",
    ),
    "finetune-entsrc": Method(
        "finetune-entsrc",
        "all",
        hyperparams=dict(ent_coef="source"),
        description="every pretrained layer fine-tuned, the entropy coefficient learnt from the source's (ent_coef='source')",
    ),
    "frozen": Method(
        "frozen", "all", freeze=("features_extractor", "trunk.*"), description="pretrained trunk frozen, head trains (lr x0.1)"
    ),
    "gradual": Method(
        "gradual",
        "all",
        freeze=("features_extractor", "trunk.*"),
        lr_scale={"trunk.*": 0.1},
        unfreeze_fraction=0.15,
        description="trunk frozen, unfrozen one group at a time (every 15% of the budget); lr x0.1",
    ),
}

CARTPOLE: dict[str, Any] = dict(score_range=(9.0, 500.0), threshold=475.0)
ACROBOT: dict[str, Any] = dict(score_range=(-500.0, -60.0), threshold=-100.0)
# Random play scores about -180; 200 is "solved".
LUNAR: dict[str, Any] = dict(score_range=(-180.0, 200.0), threshold=100.0, n_eval_episodes=5)
# MinAtar has no rl-zoo3 entry: the network and settings of Young & Tian (2019), with an update every 4 steps.
MINATAR: dict[str, Any] = dict(
    policy="CnnPolicy",
    zoo_hyperparams=False,
    hyperparams=dict(
        policy_kwargs=dict(features_extractor_class=SmallCNN, net_arch=[]),
        learning_rate=5e-4,
        buffer_size=100_000,
        learning_starts=5_000,
        batch_size=32,
        train_freq=4,
        target_update_interval=1_000,
        exploration_fraction=0.25,
        exploration_final_eps=0.05,
    ),
)

# PPO: rl-zoo3's tuned settings for the source task, on one env (the runner's): its rollout of 8 x 32 steps on
# CartPole as 256 steps of one env; Adam's eps as SB3's actor-critic policies set it.
PPO_CARTPOLE: dict[str, Any] = dict(
    algo="ppo",
    zoo_hyperparams=False,
    n_eval_episodes=5,
    hyperparams=dict(
        n_steps=256,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        policy_kwargs=dict(optimizer_kwargs=dict(eps=1e-5)),
    ),
)
# rl-zoo3's tuned PPO for Pendulum explores with gSDE; random play scores about -1200, a swing-up about -150.
PPO_PENDULUM: dict[str, Any] = dict(
    algo="ppo",
    zoo_hyperparams=False,
    n_eval_episodes=5,
    score_range=(-1300.0, -150.0),
    threshold=-400.0,
    hyperparams=dict(
        n_steps=1024,
        gae_lambda=0.95,
        gamma=0.9,
        n_epochs=10,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        use_sde=True,
        sde_sample_freq=4,
        policy_kwargs=dict(optimizer_kwargs=dict(eps=1e-5)),
    ),
)

# SAC: rl-zoo3's tuned SAC for Pendulum (learning rate 1e-3, SB3's defaults otherwise) with smaller networks (64 x 64
# instead of 256 x 256), so that a run takes a minute on one core.
SAC_PENDULUM: dict[str, Any] = dict(
    algo="sac",
    zoo_hyperparams=False,
    n_eval_episodes=5,
    score_range=(-1300.0, -150.0),
    threshold=-400.0,
    hyperparams=dict(learning_rate=1e-3, policy_kwargs=dict(net_arch=[64, 64])),
)

PAIRS = {
    # near pairs: same spaces, other dynamics
    "cartpole-longpole": Pair("cartpole-longpole", "CartPole-v1", "CartPoleLongPole-v1", 50_000, 30_000, 2_000, **CARTPOLE),
    "cartpole-weakmotor": Pair("cartpole-weakmotor", "CartPole-v1", "CartPoleWeakMotor-v1", 50_000, 30_000, 2_000, **CARTPOLE),
    # 20k steps where rl-zoo3's settings make a gradient step per timestep (the dearest runs), so that the suite fits
    # 90 minutes on 2 cores; what the shorter budget costs: benchmarks/results/README.md, standard/, "Time".
    "lunar-windy": Pair("lunar-windy", "LunarLander-v3", "LunarLanderWindy-v3", 100_000, 20_000, 2_000, **LUNAR),
    "lunar-lowgravity": Pair(
        "lunar-lowgravity", "LunarLander-v3", "LunarLanderLowGravity-v3", 100_000, 20_000, 2_000, **LUNAR
    ),
    "acrobot-heavy": Pair(
        "acrobot-heavy", "Acrobot-v1", "AcrobotHeavy-v1", 50_000, 20_000, 2_000, n_eval_episodes=5, **ACROBOT
    ),
    # cross-space pairs
    "cartpole-acrobot": Pair(
        "cartpole-acrobot",
        "CartPole-v1",
        "Acrobot-v1",
        50_000,
        30_000,
        3_000,
        n_eval_episodes=5,
        action_map={0: 0, 2: 1},  # torque -1 <- push left, torque +1 <- push right
        **ACROBOT,
    ),
    "breakout-spaceinvaders": Pair(
        "breakout-spaceinvaders",
        "MinAtarImage/Breakout-v1",
        "MinAtarImage/SpaceInvaders-v1",
        200_000,
        50_000,
        5_000,
        score_range=(3.0, 50.0),
        threshold=20.0,
        n_eval_episodes=5,
        action_map={0: 0, 1: 1, 2: 2},  # no-op, left, right; fire starts at their mean
        **MINATAR,
    ),
    # PPO pairs (the `ppo` suite)
    "ppo-cartpole-longpole": Pair(
        "ppo-cartpole-longpole", "CartPole-v1", "CartPoleLongPole-v1", 100_000, 40_000, 2_000, **CARTPOLE, **PPO_CARTPOLE
    ),
    "ppo-pendulum-heavy": Pair(
        "ppo-pendulum-heavy", "Pendulum-v1", "PendulumHeavy-v1", 100_000, 50_000, 2_500, **PPO_PENDULUM
    ),
    # SAC pairs (the `sac` suite)
    "sac-pendulum-heavy": Pair("sac-pendulum-heavy", "Pendulum-v1", "PendulumHeavy-v1", 15_000, 10_000, 1_000, **SAC_PENDULUM),
}


@dataclass(frozen=True)
class Suite:
    """
    A grid of runs: every pair, with every method, for every seed.

    :param name: Suite name.
    :param pairs: The pairs.
    :param methods: The methods (the first must be ``scratch``: the others are measured against it).
    :param seeds: Seeds of the target runs.
    :param default_method: The method the suite's results make the default (named in its report), if any.
    :param source_seeds: Seeds of the source agents each pair's transfer methods start from (empty: the pair's own
        ``source_seed``): a transfer cell has a run per source agent and target seed, a scratch cell as many runs
        with as many target seeds, so that conclusions hold across source agents, not only across target seeds.
    """

    name: str
    pairs: tuple[Pair, ...]
    methods: tuple[Method, ...]
    seeds: tuple[int, ...]
    source_seeds: tuple[int, ...] = ()
    default_method: str | None = None


def _shrunk(pair: Pair, factor: float, eval_freq: int, episodes: int) -> Pair:
    return replace(
        pair,
        source_steps=int(pair.source_steps * factor),
        target_steps=int(pair.target_steps * factor),
        eval_freq=eval_freq,
        n_eval_episodes=episodes,
    )


ALL_METHODS = tuple(METHODS.values())
#: The methods of the quick suite (and of the standard suite until its runs over source agents).
CLASSIC_METHODS = tuple(METHODS[m] for m in ("scratch", "zeroshot", "finetune", "frozen", "gradual"))
#: The standard suite's grid: frozen and gradual lost everywhere (benchmarks/results/README.md) and left it to make
#: room for the source agents; they stay runnable by name.
STANDARD_METHODS = tuple(METHODS[m] for m in ("scratch", "zeroshot", "finetune", "distill", "anchor"))

SUITES = {
    # The README's main job: about 2 minutes on 2 idle cores, 7 to 11 on a busy machine (measured on the project's
    # 2-core machine: 116 s idle, benchmarks/results/README.md, quick/; 427 s and 640 s with the cores shared with
    # other jobs, load average 6 to 7.5).
    "quick": Suite(
        "quick",
        (replace(PAIRS["cartpole-longpole"], source_steps=30_000, target_steps=15_000, eval_freq=1_500, n_eval_episodes=5),),
        # Half the budget, half the warm start.
        tuple(replace(m, warm_start=m.warm_start // 2) for m in CLASSIC_METHODS),
        (0, 1, 2),
    ),
    # Three source agents per pair and three target seeds: nine runs per cell (scratch: nine target seeds).
    # anchor: the one method that kept its start and ended not below zeroshot or scratch on every near pair
    # (benchmarks/results/README.md, standard_sources/).
    "standard": Suite(
        "standard",
        tuple(p for p in PAIRS.values() if p.algo == "dqn"),
        STANDARD_METHODS,
        (0, 1, 2),
        source_seeds=(0, 1, 2),
        default_method="anchor",
    ),
    # PPO, same spaces: does a pretrained start help, and at which fine-tuning rate (load_and_adapt sets none for PPO).
    "ppo": Suite(
        "ppo",
        (PAIRS["ppo-cartpole-longpole"], PAIRS["ppo-pendulum-heavy"]),
        tuple(METHODS[m] for m in ("scratch", "zeroshot", "finetune-lr1", "finetune-lr0.1")),
        (0, 1, 2),
    ),
    # SAC, same spaces: the pretrained start, and the entropy coefficient it starts with (SB3's 1.0 became TransferSAC's
    # default: the source's did no better, benchmarks/results/README.md).
    "sac": Suite(
        "sac",
        (PAIRS["sac-pendulum-heavy"],),
        tuple(METHODS[m] for m in ("scratch", "zeroshot", "finetune-ent1", "finetune-entsrc")),
        (0, 1, 2),
    ),
    # For tests: seconds.
    "micro": Suite(
        "micro",
        (
            _shrunk(PAIRS["cartpole-longpole"], 0.02, 200, 2),
            _shrunk(PAIRS["cartpole-acrobot"], 0.015, 200, 1),
        ),
        tuple(
            replace(METHODS[m], warm_start=METHODS[m].warm_start // 50) for m in ("scratch", "finetune", "gradual", "zeroshot")
        ),
        (0, 1),
    ),
}
