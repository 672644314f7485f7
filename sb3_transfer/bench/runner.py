"""Running a suite: sources trained once and cached, target runs in a local process pool or on a Ray cluster, resumable.

Workers get what they need as bytes and return their results as bytes: a source agent's ``.zip``, a run's
``evaluations.npz`` (SB3's format, with the evaluation at timestep 0). Only this process writes files, each by an
atomic rename to ``<out>/sources/...`` or ``<out>/runs/<pair>/<method>/seed<k>/evaluations.npz``, so a Ray cluster needs
no shared file system and an interrupted suite resumes by skipping the runs whose file exists. Each run's settings are
written beside it (``config.json``, see :func:`run_config`): a finished run made with other settings than the suite's
fails the suite instead of being reused.

One suite runs in a folder at a time (:func:`lock_folder`). The pool's workers end with this process, however it ends
(Ctrl-C, an error, ``kill -9``): see :func:`_worker_init`.
"""

from __future__ import annotations

import fnmatch
import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, cast

from tqdm import tqdm

from sb3_transfer.bench.suites import Method, Pair, Suite
from sb3_transfer.errors import OutputError, OutputInUseError, TransferConfigError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Run:
    """
    One run of the grid.

    :param pair: The pair (with the ``source_seed`` of the source agent the run starts from).
    :param method: The method.
    :param seed: The target run's seed.
    :param source_in_key: The run is one of several source agents' of its cell: its key names the source seed.
    """

    pair: Pair
    method: Method
    seed: int
    source_in_key: bool = False

    @property
    def key(self) -> str:
        source = f"src{self.pair.source_seed}-" if self.source_in_key else ""
        return f"{self.pair.name}/{self.method.name}/{source}seed{self.seed}"


def cell_runs(suite: Suite, pair: Pair, method: Method) -> list[Run]:
    """
    The runs of one cell: for a transfer method, one per source agent (the suite's ``source_seeds``; the pair's own
    seed keeps the key it always had) and target seed; for scratch, as many runs, with as many target seeds.
    """
    sources = suite.source_seeds or (pair.source_seed,)
    if method.transfer is None:
        count = len(suite.seeds) * len(sources)
        extra = range(max(suite.seeds) + 1, max(suite.seeds) + 1 + count - len(suite.seeds))
        return [Run(pair, method, seed) for seed in (*suite.seeds, *extra)]
    return [
        Run(replace(pair, source_seed=j), method, seed, source_in_key=j != pair.source_seed)
        for j in sources
        for seed in suite.seeds
    ]


def suite_runs(suite: Suite) -> list[Run]:
    """Every run of a suite, cell by cell."""
    return [run for pair in suite.pairs for method in suite.methods for run in cell_runs(suite, pair, method)]


def _code(code: types.CodeType) -> bytes:
    # A code object's repr holds an address; its bytecode and constants (nested code by its own) do not.
    consts = [_code(c) if isinstance(c, types.CodeType) else repr(c).encode() for c in code.co_consts]
    return code.co_code + b"|".join(consts) + repr(code.co_names).encode()


def _setting(value: Any) -> str:
    """
    How a setting JSON cannot hold is written. A function: by its dotted name and a digest of its code, defaults and
    closure (its repr holds an address that changes from process to process, and two closures of one factory differ
    only in what they captured). Anything else: by its repr (one that holds an address makes the run count as changed
    every time, which is the safe side).
    """
    if isinstance(value, types.FunctionType):
        captured = [cell.cell_contents for cell in value.__closure__ or ()]
        parts = _code(value.__code__) + json.dumps([value.__defaults__, captured], default=_setting).encode()
        return f"{value.__module__}.{value.__qualname__}#{hashlib.sha1(parts).hexdigest()[:8]}"
    if isinstance(value, types.BuiltinFunctionType):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def source_path(out: Path, pair: Pair) -> Path:
    """
    Where a pair's source agent is cached: shared by the pairs that train it alike (source task, algo, budget, policy,
    hyperparameters and seed; policy and hyperparameters by a digest in the name).
    """
    recipe = json.dumps(
        {"policy": pair.policy, "hyperparams": pair_hyperparams(pair, pair.source_env)}, sort_keys=True, default=_setting
    )
    digest = hashlib.sha1(recipe.encode()).hexdigest()[:8]
    seed = f"-seed{pair.source_seed}" if pair.source_seed else ""  # seed 0's name predates the setting
    return out / "sources" / f"{pair.algo}-{pair.source_env.replace('/', '-')}-{pair.source_steps}-{digest}{seed}.zip"


def run_path(out: Path, run: Run) -> Path:
    return out / "runs" / run.key / "evaluations.npz"


def run_config(run: Run, resolved: tuple[dict, int] | None = None) -> dict[str, Any]:
    """
    What a run's result depends on: its pair's and method's settings (not their names) and its seed; the method's
    ``warm_start`` as the run holds it (:func:`run_warm_start`), however it was given; the hyperparameters it is
    built with (rl-zoo3's, resolved: another rl-zoo3 may tune differently); for a transfer run, the cached source's
    file name (which holds a digest of how the source was trained).

    :param run: The run.
    :param resolved: Its :func:`resolve` (computed here if not given).
    """
    hyperparams, hold = resolved or resolve(run)
    pair = {k: v for k, v in asdict(run.pair).items() if k != "name"}
    method = {k: v for k, v in asdict(run.method).items() if k not in ("name", "description", "scale_warm_start")}
    method["warm_start"] = hold
    config = {"pair": pair, "method": method, "seed": run.seed, "hyperparams": hyperparams}
    if run.method.transfer is not None:
        config["source"] = source_path(Path(), run.pair).name
    # Round-tripped through JSON, as it is compared with the saved one.
    return json.loads(json.dumps(config, sort_keys=True, default=_setting))


def _defaults(cls: type) -> dict[str, Any]:
    """
    The defaults of a settings dataclass's fields, as saved settings hold them: what a setting a run's saved settings
    lack stands for, as runs made before a field existed were made as if with it (so a new field's default must be
    the old behaviour). Fields without a default are left out (a missing one counts as ``None``).
    """
    defaults = {
        f.name: f.default if f.default is not MISSING else f.default_factory()  # type: ignore[operator]
        for f in fields(cls)
        if f.default is not MISSING or f.default_factory is not MISSING
    }
    return json.loads(json.dumps(defaults, sort_keys=True, default=_setting))


def _check_finished(out: Path, runs: list[Run], configs: dict[str, dict[str, Any]]) -> None:
    # A finished run made with other settings (a method changed since, under the same name) must not be reused.
    stale = []
    defaults = {"pair": _defaults(Pair), "method": _defaults(Method)}
    for run in runs:
        saved = run_path(out, run).with_name("config.json")
        if not saved.exists():
            stale.append(f"{run.key} (no {saved.name})")
            continue
        new = configs[run.key]
        try:
            old = json.loads(saved.read_text())
            changed = sorted(
                f"{part}.{k}"
                for part in ("pair", "method")
                for k in {*old[part], *new[part]}
                if old[part].get(k, defaults[part].get(k)) != new[part].get(k)
            )
            if old["seed"] != new["seed"]:
                changed.append("seed")
            # Runs saved before these were recorded were made with other optimizer settings (OPTIMIZER_KWARGS).
            changed += [
                key if key in old else f"{key} not recorded"
                for key in ("hyperparams", "source")
                if key in new and old.get(key) != new[key]
            ]
        except (ValueError, KeyError, TypeError, AttributeError):
            changed = [f"unreadable {saved.name}"]
        if changed:
            stale.append(f"{run.key} ({', '.join(changed)})")
    if stale:
        raise TransferConfigError(
            f"{len(stale)} finished run(s) in {out} cannot be taken for this suite's (other or unrecorded settings): "
            f"{'; '.join(stale[:3])}"
            f"{' ...' if len(stale) > 3 else ''}. Move them away, or choose another output folder."
        )


#: Optimizer settings of every model a suite trains (sources, scratch and transfer runs) that uses SB3's default
#: optimizer, Adam: its fused CPU kernel, the same update rule with about a fifth less time per gradient step here
#: (``benchmarks/results/README.md``, ``standard/``, "Time"). A pair's or method's own ``optimizer_kwargs`` win.
OPTIMIZER_KWARGS: dict[str, Any] = {"fused": True}


def _merged(*layers: dict) -> dict:
    """Hyperparameters, later layers winning; ``policy_kwargs`` key by key (naming an optimizer keeps rl-zoo3's net)."""
    merged: dict = {}
    for layer in layers:
        for key, value in layer.items():
            merged[key] = {**(merged.get(key) or {}), **(value or {})} if key == "policy_kwargs" else value
    policy_kwargs = dict(merged.get("policy_kwargs") or {})
    if "optimizer_class" not in policy_kwargs:  # SB3's Adam, which has the fused kernel
        policy_kwargs["optimizer_kwargs"] = {**OPTIMIZER_KWARGS, **(policy_kwargs.get("optimizer_kwargs") or {})}
    return {**merged, "policy_kwargs": policy_kwargs}


def _zoo(pair: Pair, env_id: str) -> dict:
    from sb3_transfer.zoo import zoo_hyperparams

    return zoo_hyperparams(pair.algo, env_id)[0] if pair.zoo_hyperparams else {}


def pair_hyperparams(pair: Pair, env_id: str) -> dict:
    """
    A pair's hyperparameters on one of its tasks: rl-zoo3's (unless the pair opts out), then the pair's own, with
    :data:`OPTIMIZER_KWARGS`.
    """
    return _merged(_zoo(pair, env_id), pair.hyperparams)


def run_hyperparams(run: Run) -> dict:
    """A run's hyperparameters: its pair's on the target task, then its method's, with :data:`OPTIMIZER_KWARGS`."""
    return _merged(_zoo(run.pair, run.pair.target_env), run.pair.hyperparams, run.method.hyperparams)


def check_hyperparams(run: Run, hyperparams: dict | None = None) -> dict:
    """
    A run's hyperparameters checked against its algorithm's constructor without building anything (cheap): a
    hyperparameter SB3 does not take fails here, before any training, naming the run.

    :param run: The run.
    :param hyperparams: Its :func:`run_hyperparams` (read here if not given).
    :return: The constructor's settings that shape sampling (``batch_size``, ``gradient_steps``, ``train_freq``),
        given or SB3's defaults; none for an on-policy algorithm.
    """
    import inspect

    from sb3_transfer.adapt import ALGOS, SB3_ALGOS

    given = run_hyperparams(run) if hyperparams is None else hyperparams
    signature = inspect.signature(SB3_ALGOS[run.pair.algo])
    # The Transfer algorithm's own keyword arguments (its transfer terms) on top of SB3's.
    own = inspect.signature(ALGOS[run.pair.algo].__init__).parameters
    extra = {k: v for k, v in given.items() if k in own and k not in signature.parameters}
    try:
        inspect.signature(ALGOS[run.pair.algo].__init__).bind_partial(None, **extra)
        bound = signature.bind_partial("MlpPolicy", run.pair.target_env, **{k: v for k, v in given.items() if k not in extra})
    except TypeError as error:
        raise TransferConfigError(f"run {run.key}: its hyperparameters do not build a model: {error}") from None
    if not set(SAMPLING) <= set(signature.parameters):  # an on-policy algorithm: no replay sampling
        return {}
    settings = {name: bound.arguments.get(name, signature.parameters[name].default) for name in SAMPLING}
    train_freq = settings["train_freq"]
    if not (isinstance(train_freq, int) or (isinstance(train_freq, list | tuple) and len(train_freq) == 2)):
        raise TransferConfigError(f"run {run.key}: train_freq={train_freq!r} is not an int or (n, 'step' | 'episode').")
    return settings


#: The constructor arguments of an off-policy algorithm that set how many transitions it draws per timestep.
SAMPLING = ("batch_size", "gradient_steps", "train_freq")


def run_warm_start(run: Run, sampling: dict | None = None) -> int:
    """
    Timesteps of a run's :class:`~sb3_transfer.callbacks.PolicyWarmStart`: its method's ``warm_start``, scaled to the
    run's sampling by :func:`~sb3_transfer.callbacks.scaled_warm_start` if the method says so (0 for scratch).

    :param run: The run.
    :param sampling: Its :func:`check_hyperparams` settings (read here if needed and not given).
    """
    from sb3_transfer.callbacks import scaled_warm_start

    if run.method.transfer is None or not run.method.warm_start:
        return 0
    if run.pair.algo in ("ppo", "a2c", "maskableppo"):  # no replay buffer for the pretrained policy to fill
        return 0
    if not run.method.scale_warm_start:
        return run.method.warm_start
    sampling = sampling or check_hyperparams(run)
    return scaled_warm_start(run.method.warm_start, **sampling)


def resolve(run: Run) -> tuple[dict, int]:
    """A run's hyperparameters and warm start, resolved once and checked (they do not depend on the seed)."""
    hyperparams = run_hyperparams(run)
    return hyperparams, run_warm_start(run, check_hyperparams(run, hyperparams))


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread while a run trains (runs repeat bit for bit wherever they run), as it was before after."""
    import torch as th

    threads = th.get_num_threads()
    th.set_num_threads(1)
    try:
        yield
    finally:
        th.set_num_threads(threads)


def train_source(pair: Pair) -> bytes:
    """Train a pair's source agent (seeded with its ``source_seed``); return its ``.zip``."""
    from sb3_transfer.adapt import SB3_ALGOS

    with _one_thread(), tempfile.TemporaryDirectory() as tmp:
        model = SB3_ALGOS[pair.algo](
            pair.policy,
            pair.source_env,
            seed=pair.source_seed,
            verbose=0,
            device="cpu",
            **pair_hyperparams(pair, pair.source_env),
        )
        model.learn(pair.source_steps)
        model.save(Path(tmp) / "source.zip")
        return (Path(tmp) / "source.zip").read_bytes()


def execute(run: Run, source: bytes | None, hyperparams: dict | None = None, hold: int | None = None) -> bytes:
    """
    Train one run on its target task with evaluation at 0 and every ``eval_freq`` timesteps (a method that does not
    train: only evaluate, see :func:`_evaluate_unchanged`).

    :param run: The run.
    :param source: The pair's source ``.zip`` (``None`` for scratch).
    :param hyperparams: The run's hyperparameters (:func:`run_hyperparams`), as the process that records the run's
        settings resolved them (a worker elsewhere may have another rl-zoo3); resolved here if not given.
    :param hold: The run's warm start (:func:`run_warm_start`), likewise.
    :return: The run's ``evaluations.npz``.
    """
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_transfer.adapt import ALGOS, load_and_adapt
    from sb3_transfer.callbacks import GradualUnfreeze, PolicyWarmStart, TransferEvalCallback
    from sb3_transfer.policies import TransferPolicyMixin

    pair, method = run.pair, run.method
    hyperparams = dict(run_hyperparams(run) if hyperparams is None else hyperparams)
    hold = run_warm_start(run) if hold is None else hold
    with _one_thread(), tempfile.TemporaryDirectory() as tmp:
        if method.transfer is None:
            # The pair's policy alias, as a Transfer policy (the same networks as SB3's, and the same weights).
            model = ALGOS[pair.algo](pair.policy, pair.target_env, seed=run.seed, verbose=0, device="cpu", **hyperparams)
        else:
            if source is None:
                raise TransferConfigError(f"run {run.key}: transfer method {method.name!r} needs the source agent.")
            (Path(tmp) / "source.zip").write_bytes(source)
            # The architecture is the source's; the optimizer's settings are the suite's.
            policy_kwargs = hyperparams.pop("policy_kwargs", None) or {}
            hyperparams["policy_kwargs"] = {
                k: v for k, v in policy_kwargs.items() if k in ("optimizer_class", "optimizer_kwargs")
            }
            model = load_and_adapt(
                Path(tmp) / "source.zip",
                pair.target_env,
                pair.algo,
                transfer=method.transfer,
                action_map=pair.action_map,
                verbose=0,
                seed=run.seed,
                device="cpu",
                **hyperparams,
            )
            transfer_policy = cast(TransferPolicyMixin, model.policy)
            groups = list(transfer_policy.layer_groups())
            # Patterns for groups this network lacks (a FlattenExtractor has no weights) are left out.
            freeze = [p for p in method.freeze if fnmatch.filter(groups, p)]
            if freeze:
                transfer_policy.freeze(*freeze)
            lr_scale = {p: f for p, f in method.lr_scale.items() if fnmatch.filter(groups, p)}
            if lr_scale:
                transfer_policy.set_lr_scale(lr_scale)
        eval_env = make_vec_env(pair.target_env, n_envs=1, seed=10_000 + run.seed)
        eval_freq = max(pair.eval_freq // model.n_envs, 1)
        if not method.train:
            _evaluate_unchanged(model, eval_env, pair, eval_freq * model.n_envs, Path(tmp) / "evaluations.npz")
            return (Path(tmp) / "evaluations.npz").read_bytes()
        evaluation = TransferEvalCallback(
            eval_env, eval_freq=eval_freq, n_eval_episodes=pair.n_eval_episodes, log_path=tmp, verbose=0, warn=False
        )
        callbacks: list[BaseCallback] = [evaluation]
        if method.transfer is not None and method.unfreeze_fraction:
            every = max(1, int(pair.target_steps * method.unfreeze_fraction))
            callbacks.append(GradualUnfreeze(every=every, delay=hold))
        if hold:
            callbacks.append(PolicyWarmStart(hold, offline_steps=method.offline_steps))
        model.learn(pair.target_steps, callback=callbacks)
        return (Path(tmp) / "evaluations.npz").read_bytes()


def _evaluate_unchanged(model: Any, eval_env: Any, pair: Pair, every: int, path: Path) -> None:
    """
    What a run that never trains records, without stepping its training env: SB3's ``EvalCallback`` file, with the
    policy evaluated as a training run's callback would (same evaluation env and seed, deterministic actions) at
    timestep 0 and every ``every`` timesteps of the budget. As its policy and evaluation episodes are those of a
    training run held at a zero learning rate, so are its scores (tested). A training run whose last rollout
    overruns the budget past another multiple of ``every`` evaluates once more; this does not.
    """
    import numpy as np
    from stable_baselines3.common.evaluation import evaluate_policy

    timesteps = list(range(0, pair.target_steps + 1, every))
    results, lengths = [], []
    for _ in timesteps:
        rewards, episode_lengths = evaluate_policy(
            model, eval_env, n_eval_episodes=pair.n_eval_episodes, deterministic=True, return_episode_rewards=True, warn=False
        )
        results.append(rewards)
        lengths.append(episode_lengths)
    np.savez(path, timesteps=np.array(timesteps), results=np.array(results), ep_lengths=np.array(lengths))


def _read_times(out: Path) -> dict[str, float]:
    """``<out>/seconds.json``: each job's own seconds (where a suite's time goes; kept across resumed runs)."""
    path = out / "seconds.json"
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except ValueError:  # a damaged record of timings is not worth stopping a suite for
        return {}


def _record_time(out: Path, times: dict[str, float], key: str, seconds: float) -> None:
    """Add a job's own seconds to ``times`` (as :func:`_read_times` read them) and write them out."""
    times[key] = round(seconds, 1)
    _write(out / "seconds.json", json.dumps(times, indent=1, sort_keys=True).encode())


def _write(path: Path, data: bytes) -> None:
    """Write by an atomic rename: a file under its final name is always complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _timed(fn: Callable, *args: Any) -> tuple[float, Any]:
    """``fn(*args)`` and the seconds it took where it ran (a worker's own time, without waiting in the queue)."""
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


#: Seconds between a worker's checks that the main process is still there.
WATCH_SECONDS = 0.5


def _worker_init(main_pid: int, stop: Any) -> None:
    """
    Set up a pool worker. Ctrl-C is left to the main process (a terminal sends it to every process of the group: the
    workers would print a traceback each); the main process ends the workers through ``stop``. A daemon thread ends the
    worker when the main process is gone, however it went: ``kill -9`` runs no cleanup, and a worker would otherwise
    train on, alone, for minutes.

    :param main_pid: The main process.
    :param stop: A multiprocessing ``Event``: set, the worker ends.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Our parent now: the main process, or a fork server that ends with it (either way the parent changes when it goes).
    parent = os.getppid()
    threading.Thread(target=_watch, args=(main_pid, parent, stop), name="sb3t-watch", daemon=True).start()


def _watch(main_pid: int, parent: int, stop: Any) -> None:
    # Polled: Linux's prctl(PR_SET_PDEATHSIG) follows the thread that forked, not the process, and is Linux's alone.
    while not stop.wait(WATCH_SECONDS):
        if os.getppid() != parent or not _alive(main_pid):  # the second: the main process died before we started
            break
    os._exit(1)  # at once, whatever the worker's main thread is doing


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill with signal 0 terminates a process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's (the pid was reused)
        return True
    return True


class _Pool:
    """Jobs on a local process pool, collected as they finish (with :func:`_timed`: ``(seconds, result)``)."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context()
        self.stop = context.Event()
        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_worker_init, initargs=(os.getpid(), self.stop)
        )
        self.pending: dict[Future, Any] = {}
        self.where = f"{workers} workers"

    def submit(self, key: Any, fn: Callable, *args: Any) -> None:
        self.pending[self.executor.submit(_timed, fn, *args)] = key

    def next_done(self, timeout: float | None = None) -> tuple[Any, Any] | None:
        """The next finished job's key and result; ``None`` when none finished within ``timeout`` seconds."""
        done, _ = wait(self.pending, timeout=timeout, return_when=FIRST_COMPLETED)
        if not done:
            return None
        future = next(iter(done))
        return self.pending.pop(future), future.result()

    def cancel_waiting(self) -> None:
        """Cancel the jobs that have not started; running ones go on."""
        for future in [f for f in self.pending if f.cancel()]:
            del self.pending[future]

    def close(self) -> None:
        """
        End the pool. Jobs still running (after Ctrl-C) are ended, not waited for: the workers' watchers end their
        processes, and the executor's own shutdown would wait for the running jobs.
        """
        if self.pending:
            self.stop.set()
        self.executor.shutdown(wait=True, cancel_futures=True)


class _Ray:
    """
    Jobs on a Ray cluster, collected as they finish (with :func:`_timed`: ``(seconds, result)``); a source's bytes go
    to the object store once.
    """

    def __init__(self, ray: Any, started: bool) -> None:
        self.ray, self.started = ray, started
        self.pending: dict[Any, Any] = {}
        self.timed = ray.remote(num_cpus=1)(_timed)
        self.shared: dict[int, tuple[bytes, Any]] = {}  # the bytes are kept so that their id is not reused
        self.where = f"Ray, {int(ray.cluster_resources().get('CPU', 0))} CPUs"

    def submit(self, key: Any, fn: Callable, *args: Any) -> None:
        refs = []
        for arg in args:
            if isinstance(arg, bytes):
                if id(arg) not in self.shared:
                    self.shared[id(arg)] = (arg, self.ray.put(arg))
                arg = self.shared[id(arg)][1]
            refs.append(arg)
        self.pending[self.timed.remote(fn, *refs)] = key

    def next_done(self, timeout: float | None = None) -> tuple[Any, Any] | None:
        """The next finished task's key and result; ``None`` when none finished within ``timeout`` seconds."""
        ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        if not ready:
            return None
        return self.pending.pop(ready[0]), self.ray.get(ready[0])

    def cancel_waiting(self) -> None:
        """Cancel the pending tasks (Ray does not tell which have started)."""
        for ref in self.pending:
            self.ray.cancel(ref)

    def close(self) -> None:
        self.cancel_waiting()
        if self.started:
            self.ray.shutdown()


def _start_ray(address: str) -> tuple[Any, bool]:
    try:
        import ray
    except ImportError:
        raise TransferConfigError(
            f"--ray-address {address}: Ray is not installed (pip install 'sb3-transfer[ray]')."
        ) from None
    if ray.is_initialized():
        return ray, False
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    except ConnectionError as error:
        raise TransferConfigError(f"--ray-address {address}: no Ray cluster reached ({error}).") from None
    return ray, True


# Extras that register or run a suite's tasks, by the start of their ids.
_ENV_EXTRAS = {"MinAtar": "minatar", "LunarLander": "box2d"}


def check_envs(suite: Suite) -> None:
    """Fail before any training when a task of the suite cannot be made here, naming the extra that provides it."""
    import gymnasium as gym

    for env_id in sorted({e for p in suite.pairs for e in (p.source_env, p.target_env)}):
        try:
            gym.make(env_id).close()
        except (gym.error.Error, ImportError) as error:
            extra = next((x for prefix, x in _ENV_EXTRAS.items() if env_id.startswith(prefix)), None)
            hint = f" (pip install 'sb3-transfer[{extra}]')" if extra else ""
            raise TransferConfigError(f"suite {suite.name}: task {env_id} cannot be made here{hint}: {error}") from None


def check_methods(suite: Suite) -> None:
    """Fail before any training when a method's settings are invalid."""
    from sb3_transfer.callbacks import GradualUnfreeze, PolicyWarmStart

    for method in suite.methods:
        try:
            PolicyWarmStart(method.warm_start)
            if method.unfreeze_fraction is not None:
                GradualUnfreeze(every=1, delay=method.warm_start)
                if not 0 < method.unfreeze_fraction <= 1:
                    raise TransferConfigError(f"unfreeze_fraction={method.unfreeze_fraction!r}: give a fraction in (0, 1].")
        except TransferConfigError as error:
            raise TransferConfigError(f"suite {suite.name}, method {method.name}: {error}") from None


#: The lock file of a suite's output folder, there while a suite runs in it (:func:`lock_folder`).
LOCK_FILE = ".bench.lock"


@contextmanager
def lock_folder(out: Path) -> Iterator[None]:
    """
    Hold an output folder's lock (:data:`LOCK_FILE`, holding the pid) while the block runs: another process asking for
    it meanwhile fails at once with :class:`~sb3_transfer.errors.OutputInUseError`, naming the folder and the pid. The
    lock is the operating system's on the open file (``flock``), so it goes with the process however it ends: a lock
    file left by a killed run does not block.

    :param out: The folder (made if needed).
    """
    path = Path(out) / LOCK_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot make the output folder {out}: {error.strerror or error}; choose another one.") from None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise OutputError(
                f"cannot write in the output folder {out}: {error.strerror or error}; choose another one."
            ) from None
        if not _try_lock(fd):
            try:
                holder = os.read(fd, 32).decode(errors="replace").strip()
            except OSError:  # Windows: the holder's lock covers what we would read
                holder = ""
            os.close(fd)
            raise OutputInUseError(
                f"{out} is in use by another benchmark run (pid {holder if holder.isdigit() else 'unknown'}): wait for it "
                "to end (the same command then reuses its finished runs), or choose another output folder."
            )
        try:
            locked_file = os.stat(path)
        except FileNotFoundError:
            locked_file = None
        # The last holder removes the file before unlocking: a lock taken on a file no longer at the path is no lock.
        if locked_file is not None and os.path.samestat(os.fstat(fd), locked_file):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        if fcntl is not None:  # the pool's forked workers share the open file: unlock it for all, not only close ours
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _try_lock(fd: int) -> bool:
    """Lock an open file for this process without waiting; whether it was free."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:
        return False
    return True


def run_suite(
    suite: Suite,
    out: Path,
    workers: int = 2,
    log: Callable[[str], None] = print,
    ray_address: str | None = None,
    progress: bool | tqdm = False,
) -> list[Run]:
    """
    Run every cell of a suite that has no result yet. One suite runs in a folder at a time (:func:`lock_folder`); on
    Ctrl-C (``KeyboardInterrupt``) the running jobs are ended, the finished ones kept: the same call resumes.

    :param suite: The suite.
    :param out: Output folder (sources cache, runs).
    :param workers: Processes of the local pool (without ``ray_address``).
    :param log: Progress messages: what the suite has to do, then a line per finished job (without a bar).
    :param ray_address: Dispatch the runs to a Ray cluster instead: ``"auto"`` (the cluster this machine belongs to),
        ``"local"`` (a new instance on this machine), or an address such as ``"ray://head:10001"``. A Ray instance
        already initialised in this process is used as it is. The cluster's nodes need ``sb3-transfer`` installed;
        results come back to this process, so no shared file system is needed.
    :param progress: ``True``: a tqdm bar over the runs to go, its clock ticking while the source agents train; it
        replaces the line per finished job. A ``tqdm`` bar: that one (given total ``None`` and shown before this
        module was imported, it shows from the first second; the caller closes it). ``False``: none.
    :return: All runs of the suite.
    """
    own = progress is True
    # A tqdm bar has no truth value until it has a total: tested by its type.
    bar = tqdm(unit="run", dynamic_ncols=True) if own else progress if isinstance(progress, tqdm) else None
    try:
        with lock_folder(out):
            return _run_suite(suite, Path(out), workers, _Progress(log, bar), ray_address)
    finally:
        if own and bar is not None:
            bar.close()


def _resolve_cells(runs: list[Run]) -> dict[str, tuple[dict, int]]:
    """Each run's :func:`resolve`, computed once per pair and method (it does not depend on the seeds)."""
    per_cell: dict[tuple[str, str], tuple[dict, int]] = {}
    for r in runs:
        if (r.pair.name, r.method.name) not in per_cell:
            per_cell[r.pair.name, r.method.name] = resolve(r)
    return {r.key: per_cell[r.pair.name, r.method.name] for r in runs}


class _Progress:
    """
    What a running suite tells: with a tqdm bar, the bar (runs done, the last one, the clock) and the few lines that
    matter above it; without, a line per finished job.
    """

    #: Seconds between two redraws of the bar's clock while no job finishes (a source agent takes a minute).
    TICK = 1.0

    def __init__(self, log: Callable[[str], None], bar: tqdm | None) -> None:
        self.log, self.bar = log, bar
        self.timeout = self.TICK if bar is not None else None  # without a bar, wait for the next job as long as it takes

    def say(self, message: str) -> None:
        """A line that is always said (above the bar)."""
        if self.bar is None:
            self.log(message)
        else:
            with self.bar.external_write_mode():
                self.log(message)

    def start(self, name: str, n_todo: int, n_sources: int) -> None:
        if self.bar is not None:
            self.bar.total = n_todo
            self.sources(name, 0, n_sources)

    def sources(self, name: str, done: int, n_sources: int) -> None:
        if self.bar is not None:
            training = f", training source agents {done}/{n_sources}" if done < n_sources else ""
            self.bar.set_description_str(f"suite {name}{training}", refresh=False)
            self.bar.refresh()

    def job(self, line: str, key: str | None = None) -> None:
        """A finished job: the bar moves on (a run) or redraws (a source); without a bar, its line."""
        if self.bar is None:
            self.log(line)
        elif key is not None:
            self.bar.set_postfix_str(key, refresh=False)
            self.bar.update(1)

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.refresh()


def _run_suite(suite: Suite, out: Path, workers: int, progress: _Progress, ray_address: str | None) -> list[Run]:
    check_methods(suite)
    check_envs(suite)
    runs = suite_runs(suite)
    # Before any training (bad hyperparameters fail now), once per pair and method; recorded with each run and handed
    # to the workers as resolved here.
    resolved = _resolve_cells(runs)
    configs = {run.key: run_config(run, resolved[run.key]) for run in runs}
    _check_finished(out, [r for r in runs if run_path(out, r).exists()], configs)
    todo = [r for r in runs if not run_path(out, r).exists()]
    # Once per source agent (it reads rl-zoo3's file).
    source_of = {(r.pair.name, r.pair.source_seed): source_path(out, r.pair) for r in runs if r.method.transfer is not None}
    waiting: dict[Path, list[Run]] = {}  # transfer runs by the source they need
    for run in todo:
        if run.method.transfer is not None:
            waiting.setdefault(source_of[run.pair.name, run.pair.source_seed], []).append(run)
    sources = {path: path.read_bytes() for path in waiting if path.exists()}
    started = time.time()
    times = _read_times(out)
    jobs: _Pool | _Ray = _Ray(*_start_ray(ray_address)) if ray_address else _Pool(workers)
    to_train = [path for path in waiting if path not in sources]
    progress.say(
        f"suite {suite.name}: {len(runs)} runs, {len(runs) - len(todo)} already done, {len(todo)} to go"
        f"{f' after {len(to_train)} source agent(s)' if to_train else ''} ({jobs.where})"
    )
    progress.start(suite.name, len(todo), len(to_train))
    try:
        # Sources first; runs that need nothing more go meanwhile; the rest go as their source arrives.
        for path in to_train:
            jobs.submit(path, train_source, waiting[path][0].pair)
        for run in todo:
            if run.method.transfer is None:
                jobs.submit(run, execute, run, None, *resolved[run.key])
            elif source_of[run.pair.name, run.pair.source_seed] in sources:
                jobs.submit(run, execute, run, sources[source_of[run.pair.name, run.pair.source_seed]], *resolved[run.key])
        n_sources = n_runs = 0
        failure: Exception | None = None
        while jobs.pending:
            try:
                finished = jobs.next_done(progress.timeout)
            except Exception as error:
                # Start nothing more, but keep (and write) what is already running; then report the first failure.
                if failure is None:
                    failure = error
                    jobs.cancel_waiting()
                continue
            if finished is None:
                progress.tick()
                continue
            key, (seconds, data) = finished
            if isinstance(key, Path):
                _write(key, data)
                n_sources += 1
                _record_time(out, times, f"sources/{key.name}", seconds)
                progress.job(
                    f"  source {n_sources}/{len(to_train)}: {key.name} ({seconds:.0f}s; {time.time() - started:.0f}s in all)"
                )
                progress.sources(suite.name, n_sources, len(to_train))
                if failure is None:
                    for run in waiting[key]:
                        jobs.submit(run, execute, run, data, *resolved[run.key])
            else:
                _write(run_path(out, key).with_name("config.json"), json.dumps(configs[key.key], indent=1).encode())
                _write(run_path(out, key), data)
                n_runs += 1
                _record_time(out, times, key.key, seconds)
                line = f"  [{n_runs}/{len(todo)}] {key.key} ({seconds:.0f}s; {time.time() - started:.0f}s in all)"
                progress.job(line, key.key)
        if failure is not None:
            raise failure
    finally:
        jobs.close()
    return runs
