"""The ``sb3-transfer`` command: pretrain, inspect, adapt, train, bench.

Torch, SB3 and the modules that use them are imported by the commands that need them, not here: ``--help`` and the
first line of every command come at once (the benchmark's progress bar from its first second).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from sb3_transfer.errors import (
    IncompatibleSpaceError,
    OutputError,
    OutputExistsError,
    TransferConfigError,
    TransferError,
)

#: ``train``'s anchoring (``--anchor``) when the pretrained head is carried over: the standard benchmark's default method.
DEFAULT_ANCHOR = 0.1
#: The algorithms the command line trains, named as in ``sb3_transfer.adapt.ALGOS`` (that module imports torch); the
#: actor-critic ones are Python-only until their fine-tuning defaults are measured.
ALGO_NAMES = ("dqn", "qrdqn")


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line.

    :param argv: Arguments (default: ``sys.argv[1:]``).
    :return: The exit status: 0 on success, 2 on a user error, 1 on any other error (each printed as one line; with
        ``--debug``, raised with its traceback instead), 130 when interrupted (Ctrl-C).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    prefix = f"sb3-transfer {args.command}"
    try:
        return args.run(args)
    except KeyboardInterrupt as e:
        if args.debug:
            raise
        # A command may say what was kept and how to go on (bench: the same command resumes).
        print(f"{prefix}: interrupted{f'; {_one_line(e)}' if str(e) else ''}", file=sys.stderr)
        return 130
    except (TransferError, gym.error.Error) as e:
        if args.debug:
            raise
        print(f"{prefix}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        if args.debug:
            raise
        print(
            f"{prefix}: error: {type(e).__name__}: {_one_line(e)} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


#: sb3_transfer.losses.DECAYS, written out here: the command line imports torch only in the commands that need it.
DISTILL_DECAYS = ("linear", "return", "constant")


def _one_line(error: BaseException) -> str:
    """An error's message on one line: line breaks become spaces, other control characters (from a file?) are escaped."""
    text = " ".join(line.strip() for line in str(error).splitlines())
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sb3-transfer", description="Transfer learning for Stable-Baselines3 DQN and QR-DQN agents."
    )
    parser.add_argument("--debug", action="store_true", help="on an error, show its traceback")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser(
        "pretrain", help="train a source agent, with rl-zoo3's tuned hyperparameters when it has them; print its score"
    )
    p.add_argument("env", help="environment id, e.g. CartPole-v1")
    p.add_argument("--algo", default="dqn", choices=ALGO_NAMES)
    p.add_argument("-o", "--output", required=True, help="where to save the model (.zip)")
    p.add_argument("--steps", type=_positive_int, help="timesteps (default: rl-zoo3's n_timesteps, else 50000)")
    p.add_argument(
        "--n-eval-episodes", type=_positive_int, default=10, help="episodes of the evaluation after training (default: 10)"
    )
    _common(p)
    p.set_defaults(run=_pretrain)

    p = commands.add_parser("inspect", help="groups, shapes and metadata of a source, read without unpickling")
    p.add_argument("source", help="an SB3 .zip")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--trust-source", action="store_true", help="allow unpickling the zip's metadata")
    p.set_defaults(run=_inspect)

    p = commands.add_parser("adapt", help="build a model for a target task from a source, print the report, save it")
    p.add_argument("source", help="an SB3 .zip")
    p.add_argument("env", help="the target task's environment id")
    p.add_argument("-o", "--output", required=True, help="where to save the adapted model (.zip)")
    _transfer_options(p)
    _common(p)
    p.set_defaults(run=_adapt)

    p = commands.add_parser(
        "train",
        help="fine-tune a source on a target task with evaluation; print transfer metrics",
        description="Fine-tune a source agent on a target task (or train from scratch), evaluating on the target from "
        "timestep 0. The defaults are the benchmark's `finetune` method: every layer that fits is carried over "
        "(--transfer all), pretrained layers learn at a tenth of the learning rate (load_and_adapt's default), and the "
        "pretrained policy fills the replay buffer before the first update (--warm-start auto).",
    )
    p.add_argument("source", help="an SB3 .zip, or 'scratch' for a baseline without transfer")
    p.add_argument("env", help="the target task's environment id")
    p.add_argument("--steps", type=_positive_int, help="timesteps (default: rl-zoo3's n_timesteps for the task, else 50000)")
    p.add_argument("--unfreeze-every", type=_positive_int, help="GradualUnfreeze: one more group every N timesteps")
    p.add_argument("--warmup", type=_non_negative_int, default=0, help="learning-rate warm-up of unfrozen groups (timesteps)")
    p.add_argument(
        "--warm-start",
        type=_warm_start_arg,
        default="auto",
        metavar="N|auto",
        help="PolicyWarmStart: the policy fills the replay buffer for N timesteps before any update; auto (default, as "
        "the benchmark's finetune): 5000 at 128 transitions drawn per timestep, scaled to the model's sampling "
        "(warm_start_steps), and none when the head is new (no pretrained policy to act); 0: none",
    )
    p.add_argument("--eval-freq", type=_positive_int, default=5000, help="timesteps between evaluations")
    p.add_argument("--n-eval-episodes", type=_positive_int, default=10)
    p.add_argument("--log-dir", default="logs", help="runs go to LOG_DIR/ALGO/ENV_N, as rl-zoo3 lays them out")
    p.add_argument("--baseline", nargs="+", help="baseline evaluations.npz file(s) or run folder(s) to measure against")
    p.add_argument("--threshold", type=_finite_float, help="score for time to threshold (default: the env's reward threshold)")
    p.add_argument("--score-range", type=_finite_float, nargs=2, metavar=("LOW", "HIGH"), help="normalise scores")
    _transfer_options(p)
    _common(p)
    p.set_defaults(run=_train)

    p = commands.add_parser("bench", help="compare transfer methods against learning from scratch (the main job)")
    p.add_argument(
        "--suite",
        default="quick",
        help="quick (the default: about 2 minutes on 2 idle cores, 7 to 11 on a busy machine), standard (DQN, about 75 "
        "minutes on 2 idle cores), ppo (PPO pairs), sac (a SAC pair), micro (seconds, for tests)",
    )
    p.add_argument("--workers", type=_positive_int, default=2, help="processes of the local pool")
    p.add_argument(
        "--ray-address",
        help="dispatch the runs to a Ray cluster instead: auto (the cluster this machine belongs to), local (a new "
        "instance here) or an address such as ray://head:10001; needs pip install 'sb3-transfer[ray]'",
    )
    p.add_argument("--out", help="output folder (default: sb3t-bench/SUITE); finished runs in it are reused")
    p.add_argument(
        "--no-progress-bar",
        action="store_true",
        help="a line per finished run instead of a progress bar (the default when stderr is not a terminal)",
    )
    p.set_defaults(run=_bench)
    for command in commands.choices.values():
        # Also after the command; SUPPRESS keeps a --debug given before it.
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="on an error, show its traceback")
    return parser


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= 1")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= 0")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=_non_negative_int, default=0)  # numpy's seeds are >= 0
    p.add_argument("--force", action="store_true", help="overwrite outputs that exist")
    p.add_argument("--no-progress-bar", action="store_true", help="do not show a progress bar")


def _transfer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--algo", choices=ALGO_NAMES, help="target algorithm (default: the source's)")
    p.add_argument(
        "--transfer",
        nargs="+",
        default=["all"],
        help="features | trunk | all | group patterns (default: all, as the benchmark's finetune: the head too where "
        "the actions match)",
    )
    p.add_argument("--freeze", nargs="+", default=[], help="group patterns to freeze, e.g. 'trunk.*'")
    p.add_argument("--action-map", help="target:source pairs, e.g. 0:0,1:1,2:1")
    p.add_argument("--strict", action="store_true", help="fail if a selected tensor cannot be copied as is")
    p.add_argument("--trust-source", action="store_true", help="allow unpickling the source zip's metadata")
    p.add_argument(
        "--distill",
        type=_nonnegative_float,
        default=0.0,
        metavar="LAMBDA",
        help="distillation toward the source: its weight lambda_0 (TransferDQN's distill_coef; 0: off); needs the head",
    )
    p.add_argument("--distill-decay", choices=DISTILL_DECAYS, default="linear", help="how the distillation weight falls")
    p.add_argument("--distill-temperature", type=_positive_float, default=1.0, metavar="TAU", help="softmax temperature")
    p.add_argument(
        "--anchor",
        type=_nonnegative_float,
        default=None,
        metavar="LAMBDA",
        help="L2-SP toward the transplanted weights (TransferDQN's anchor_coef; 0: off). Default: for train, "
        f"{DEFAULT_ANCHOR} when the pretrained head is carried over (the benchmarks' default method, anchor), else 0; "
        "for adapt, 0",
    )


def _nonnegative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number >= 0")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number > 0")
    return value


def _check_output(path: str | Path, force: bool, suffix: str = ".zip") -> Path:
    """
    Check, before any training, that an output can be written: its folder exists or is made, and is writable; the path
    is not a folder; it exists only if ``force``.

    :param path: Where the output goes (``suffix`` appended if it has another one).
    :param force: Whether an existing file may be replaced.
    :param suffix: The output's suffix.
    :return: The output's path, with its suffix.
    """
    path = Path(path)
    if path.suffix != suffix:
        path = path.with_name(path.name + suffix)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name, e.g. {path / ('model' + suffix)}.")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass --force to overwrite it.")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path} exists and is not a regular file; give another output path.")
    _check_folder(path.parent)
    return path


def _check_folder(folder: Path, hint: str = "choose another output path") -> None:
    """
    Make ``folder`` if needed and check that a file can be made in it (by making one: permission bits do not tell, for
    root or on a read-only file system).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        file = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        problem = f"{file} is a file, not a folder" if file is not None else e.strerror or str(e)
        raise OutputError(f"cannot write in the folder {folder}: {problem}; {hint}.") from None


def _partial(path: Path) -> Path:
    """A temporary name in the output's folder (so that the rename into place is atomic), ending as the output does."""
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


def _save_model(model: Any, path: Path) -> None:
    """
    Save a model to ``path`` (a ``.zip``) through a temporary file renamed into place: an interrupted save leaves
    neither a truncated zip under the final name nor a lost previous file.
    """
    partial = _partial(path)  # ends in .zip: SB3 appends .zip to a name without a suffix
    try:
        model.save(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file renamed into place, as :func:`_save_model` does."""
    partial = _partial(path)
    try:
        partial.write_text(json.dumps(data, indent=2))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _check_env(env_id: str) -> None:
    """Check, before any training, that the task can be made here and has the Discrete actions DQN and QR-DQN need."""
    try:
        env = gym.make(env_id)
    except (gym.error.Error, ImportError) as e:
        raise TransferConfigError(f"environment {env_id} cannot be made here: {e}") from None
    space = env.action_space
    env.close()
    if not isinstance(space, gym.spaces.Discrete):
        raise IncompatibleSpaceError(
            f"{env_id} has actions {space}; DQN and QR-DQN need a Discrete action space: choose a task with discrete actions."
        )


def _progress_bar(args: argparse.Namespace) -> bool:
    return not args.no_progress_bar and all(importlib.util.find_spec(m) for m in ("tqdm", "rich"))


#: The evaluation env's seed is the run's plus this, so that evaluation episodes differ from the training episodes.
_EVAL_SEED_OFFSET = 10_000


def _pretrain(args: argparse.Namespace) -> int:
    from sb3_transfer.adapt import SB3_ALGOS
    from sb3_transfer.zoo import zoo_hyperparams

    output = _check_output(args.output, args.force)
    _check_env(args.env)
    hyperparams, n_timesteps, origin = zoo_hyperparams(args.algo, args.env)
    steps = args.steps or n_timesteps or 50_000
    print(f"Training {args.algo} on {args.env} for {steps} timesteps with {origin}.")
    model = SB3_ALGOS[args.algo]("MlpPolicy", args.env, seed=args.seed, verbose=0, **hyperparams)
    model.learn(steps, progress_bar=_progress_bar(args))
    _save_model(model, output)
    print(f"Saved {output}")
    # Said at once, so that a poor source is noticed before anything is transferred from it.
    mean, std = _evaluate(model, args.env, args.seed, args.n_eval_episodes)
    print(f"Evaluation on {args.env}: {mean:.1f} +/- {std:.1f} (mean +/- std over {args.n_eval_episodes} episodes, greedy)")
    return 0


def _evaluate(model: Any, env_id: str, seed: int, n_episodes: int) -> tuple[float, float]:
    """
    SB3's ``evaluate_policy``: greedy actions, on an env of its own seeded apart from the training env's (as ``train``'s
    evaluations are).
    """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    env = make_vec_env(env_id, n_envs=1, seed=seed + _EVAL_SEED_OFFSET)
    try:
        mean, std = evaluate_policy(model, env, n_eval_episodes=n_episodes, deterministic=True)
    finally:
        env.close()
    return float(mean), float(std)  # type: ignore[arg-type]


def _inspect(args: argparse.Namespace) -> int:
    from sb3_transfer.sources import read_source

    network = read_source(args.source, trust_source=args.trust_source)
    info: dict[str, Any] = {
        "source": network.description,
        "algo": network.algo,
        "sb3_version": network.sb3_version,
        "n_actions": network.n_actions,
        "n_quantiles": network.n_quantiles,
        "net_arch": network.net_arch,
        "activation_fn": network.activation_fn.__name__,
        "features_extractor": network.features_extractor_name,
        "input_dim": network.input_dim,
        "groups": {g: {name: list(t.shape) for name, t in tensors.items()} for g, tensors in network.groups.items()},
        "notes": network.notes,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key not in ("groups", "notes"):
            print(f"{key:<20} {value}")
    print("groups:")
    for group, tensors in info["groups"].items():
        print(f"  {group:<20} " + ", ".join(f"{name} {tuple(shape)}" for name, shape in tensors.items()))
    for note in network.notes:
        print(f"note: {note}")
    return 0


def _warm_start_arg(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of timesteps or 'auto'") from None


def _parse_action_map(text: str | None) -> dict[int, int] | None:
    if not text:
        return None
    try:
        return {int(t): int(s) for t, s in (pair.split(":") for pair in text.split(","))}
    except ValueError as e:
        raise TransferConfigError(f"--action-map '{text}': give target:source pairs, e.g. 0:0,1:1,2:1.") from e


def _build(args: argparse.Namespace) -> tuple[Any, str]:
    """The model for ``adapt`` / ``train``: rl-zoo3's hyperparameters for the target, the architecture of the source."""
    from sb3_transfer.adapt import ALGOS, load_and_adapt
    from sb3_transfer.sources import read_source
    from sb3_transfer.zoo import zoo_hyperparams

    network = None if args.source == "scratch" else read_source(args.source, trust_source=args.trust_source)
    trained_with = (network.trained_with or "").lower() if network is not None else ""
    if not args.algo and network is not None and network.algo in ("ActorCritic", "SAC", "TD3"):
        raise TransferConfigError(
            f"{network.description} is an actor-critic model ({network.trained_with or network.algo}): the command "
            "line trains DQN and QR-DQN targets only so far. Give --algo dqn to carry its extractor and hidden layers "
            f"into a DQN, or use load_and_adapt from Python for a {network.trained_with or network.algo} target."
        )
    algo = args.algo or (trained_with if trained_with in ALGO_NAMES else "dqn")
    hyperparams, _, origin = zoo_hyperparams(algo, args.env)
    if args.source == "scratch":
        policy_kwargs = {**hyperparams.pop("policy_kwargs", {}), "freeze": args.freeze or None}
        model = ALGOS[algo]("MlpPolicy", args.env, policy_kwargs=policy_kwargs, seed=args.seed, verbose=0, **hyperparams)
        return model, origin
    hyperparams.pop("policy_kwargs", None)  # the architecture is the source's
    transfer = (
        args.transfer[0] if len(args.transfer) == 1 and args.transfer[0] in ("features", "trunk", "all") else args.transfer
    )
    model = load_and_adapt(
        network,
        args.env,
        algo,
        transfer=transfer,
        action_map=_parse_action_map(args.action_map),
        strict=args.strict,
        trust_source=args.trust_source,
        verbose=0,
        seed=args.seed,
        policy_kwargs={"freeze": args.freeze or None},
        **_terms(args),
        **hyperparams,
    )
    return model, origin


def _terms(args: argparse.Namespace) -> dict[str, Any]:
    """The training-time transfer terms asked for (TransferDQN's arguments), none when none is."""
    terms: dict[str, Any] = {}
    if args.distill:
        terms.update(distill_coef=args.distill, distill_decay=args.distill_decay, distill_temperature=args.distill_temperature)
    if args.anchor:
        terms["anchor_coef"] = args.anchor
    return terms


def _adapt(args: argparse.Namespace) -> int:
    output = _check_output(args.output, args.force)
    _check_env(args.env)
    model, origin = _build(args)
    if model.transfer_report is not None:
        print(model.transfer_report)
    print(f"Hyperparameters: {origin}.")
    _save_model(model, output)
    report = output.with_suffix(".report.json")
    _write_json(report, model.transfer_report.to_dict())
    print(f"Saved {output} and its transfer report {report}")
    return 0


def _run_dir(log_dir: str, algo: str, env_id: str) -> Path:
    base = Path(log_dir) / algo
    index = 1 + max(
        (int(p.name.rsplit("_", 1)[1]) for p in base.glob(f"{env_id}_*") if p.name.rsplit("_", 1)[1].isdigit()), default=0
    )
    return base / f"{env_id}_{index}"


def _make_run_dir(log_dir: str, algo: str, env_id: str) -> Path:
    """The next run folder (:func:`_run_dir`), made now, checked writable."""
    for _ in range(100):  # another run starting at the same time may take a number first
        run_dir = _run_dir(log_dir, algo, env_id)
        _check_folder(run_dir.parent, "choose another --log-dir")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputError(f"cannot make the run folder {run_dir}: {e.strerror or e}; choose another --log-dir.") from None
        _check_folder(run_dir, "choose another --log-dir")
        return run_dir
    raise OutputError(f"no new run folder could be made in {Path(log_dir) / algo}; choose another --log-dir.")


def _train(args: argparse.Namespace) -> int:
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_transfer.adapt import ALGOS, warm_start_note
    from sb3_transfer.callbacks import GradualUnfreeze, PolicyWarmStart, TransferEvalCallback
    from sb3_transfer.groups import HEAD
    from sb3_transfer.metrics import load_curve
    from sb3_transfer.zoo import zoo_hyperparams

    def schedules_for(hold: int) -> list[BaseCallback]:
        schedules: list[BaseCallback] = []
        if args.unfreeze_every:
            # The unfreezing schedule starts when the warm start releases learning.
            schedules.append(GradualUnfreeze(every=args.unfreeze_every, warmup=args.warmup, delay=hold, verbose=1))
        if hold:
            schedules.append(PolicyWarmStart(hold, verbose=1))
        return schedules

    if args.warm_start != "auto" and args.warm_start < 0:
        raise TransferConfigError(f"--warm-start {args.warm_start}: give a number of timesteps >= 0, or 'auto'.")
    if args.score_range and not args.score_range[0] < args.score_range[1]:
        raise TransferConfigError(f"--score-range {' '.join(map(str, args.score_range))}: give LOW < HIGH.")
    _check_env(args.env)
    # Read now: a wrong path fails before the model and the run folder are made.
    baseline = [load_curve(b) for b in args.baseline] if args.baseline else None
    # Built first: a bad setting fails before anything is written (an automatic warm start needs the model).
    schedules = schedules_for(0 if args.warm_start == "auto" else args.warm_start)
    model, origin = _build(args)
    report = model.transfer_report
    if args.anchor is None and report is not None and HEAD in report.carried():
        # The benchmarks' default method: anchoring kept the start on every near pair (benchmarks/results/README.md).
        model.set_anchor(DEFAULT_ANCHOR)
        report.settings["anchor_coef"] = {
            "value": DEFAULT_ANCHOR,
            "reason": "the pretrained head is carried over: anchoring to the transplanted weights kept the source's "
            "start on every near pair of the standard benchmark (--anchor 0 turns it off)",
        }
    if args.warm_start == "auto":
        schedules = schedules_for(_auto_warm_start(model))
    report = model.transfer_report
    if report is not None:
        # load_and_adapt's advice to pass a PolicyWarmStart is moot when this command adds one (or was told not to).
        advice = warm_start_note(model, report)
        report.notes = [note for note in report.notes if note != advice]
        print(report)
    algo = "qrdqn" if isinstance(model, ALGOS["qrdqn"]) else "dqn"
    _, n_timesteps, _ = zoo_hyperparams(algo, args.env)
    steps = args.steps or n_timesteps or 50_000
    run_dir = _make_run_dir(args.log_dir, algo, args.env)  # before training: an unwritable folder fails now
    model_path = _check_output(run_dir / args.env, force=False)
    # The training env writes its episodes to 0.monitor.csv in the run folder, as rl-zoo3's does (its plot_train reads
    # them); the model was built before the run folder existed, so that a bad setting left no folder behind.
    model.get_env().close()
    model.set_env(make_vec_env(args.env, n_envs=model.n_envs, seed=args.seed, monitor_dir=str(run_dir)))
    threshold = args.threshold if args.threshold is not None else getattr(gym.spec(args.env), "reward_threshold", None)
    evaluation = TransferEvalCallback(
        make_vec_env(args.env, n_envs=1, seed=args.seed + _EVAL_SEED_OFFSET),
        baseline=baseline,
        threshold=threshold,
        score_range=tuple(args.score_range) if args.score_range else None,
        eval_freq=max(args.eval_freq // model.n_envs, 1),
        n_eval_episodes=args.n_eval_episodes,
        log_path=str(run_dir),
        verbose=0,
    )
    callbacks = [evaluation, *schedules]
    print(f"Training on {args.env} for {steps} timesteps with {origin}; logs in {run_dir}")
    model.learn(steps, callback=callbacks, progress_bar=_progress_bar(args))
    _save_model(model, model_path)
    if model.transfer_report is not None:
        _write_json(run_dir / "transfer_report.json", model.transfer_report.to_dict())
    if evaluation.metrics is not None:
        _write_json(run_dir / "metrics.json", evaluation.metrics.to_dict())
        print(evaluation.metrics)
    print(f"Saved {model_path}, {run_dir / 'evaluations.npz'} and {run_dir / '0.monitor.csv'}")
    return 0


def _auto_warm_start(model: Any) -> int:
    """
    ``--warm-start auto``: the benchmark's warm start scaled to the model's sampling when the pretrained head is carried
    over. None otherwise, and it says why: with a new head (or from scratch) no pretrained policy acts; an untrained
    head's greedy actions are an arbitrary policy, and epsilon starts at 1.0 then (``load_and_adapt`` lowers it only
    for a carried-over head), so holding learning would only delay it, as a longer ``learning_starts`` would.
    """
    from sb3_transfer.callbacks import warm_start_steps
    from sb3_transfer.groups import HEAD

    report = model.transfer_report
    if report is None:
        return 0
    if HEAD not in report.carried():
        print(
            "Warm start (auto): none, as the head is new (untrained): no pretrained policy to fill the replay buffer; "
            f"SB3 acts at random for learning_starts={model.learning_starts} timesteps, then learning starts."
        )
        return 0
    return warm_start_steps(model)


def _bench(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    started = time.time()
    # Shown before the benchmark's modules (torch, SB3) are imported, so that something moves from the first second;
    # left out when stderr is not a terminal (a log file would fill with redraws).
    bar = tqdm(desc=f"suite {args.suite}: starting", unit="run", dynamic_ncols=True) if _bench_bar(args) else None
    try:
        from sb3_transfer.bench.report import terminal_summary, write_report
        from sb3_transfer.bench.runner import run_suite
        from sb3_transfer.bench.suites import SUITES

        if args.suite not in SUITES:
            raise TransferConfigError(f"--suite {args.suite}: choose one of {', '.join(SUITES)}.")
        out = Path(args.out or Path("sb3t-bench") / args.suite)
        # The command as given (--debug may come before the command), for the report and to resume.
        given = sys.argv[1:]
        command = "sb3-transfer " + (shlex.join(given) if "bench" in given else f"bench --suite {shlex.quote(args.suite)}")
        try:
            progress = bar if bar is not None else False
            run_suite(SUITES[args.suite], out, workers=args.workers, ray_address=args.ray_address, progress=progress)
        except KeyboardInterrupt:
            # main prints this as the one line of an interruption: finished runs are on disk and are reused.
            raise KeyboardInterrupt(f"the finished runs are kept in {out}: run `{command}` again to resume") from None
    finally:
        if bar is not None:
            bar.close()
    print(f"Writing the report in {out} ...", flush=True)  # its bootstrap intervals take seconds
    summary = write_report(SUITES[args.suite], out, command, time.time() - started)
    print("\n".join(["", *terminal_summary(summary, out / "report.md")]))
    print(f"Written: {out / 'report.md'}, {out / 'summary.json'}, {out / 'plots'}")
    return 0


def _bench_bar(args: argparse.Namespace) -> bool:
    return not args.no_progress_bar and sys.stderr.isatty()


if __name__ == "__main__":
    sys.exit(main())
