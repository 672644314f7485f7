"""Running a suite: sources trained once and cached, target runs in a local process pool, resumable.

Each run writes ``<out>/runs/<pair>/<method>/seed<k>/evaluations.npz`` (SB3's format, with the evaluation at timestep
0) by an atomic rename, so an interrupted suite resumes by skipping the runs whose file exists.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from sb3_transfer.bench.suites import Method, Pair, Suite


@dataclass(frozen=True)
class Run:
    """One cell of the grid."""

    pair: Pair
    method: Method
    seed: int

    @property
    def key(self) -> str:
        return f"{self.pair.name}/{self.method.name}/seed{self.seed}"


def source_path(out: Path, pair: Pair) -> Path:
    """Where a pair's source agent is cached (shared by pairs with the same source task, algo and budget)."""
    return out / "sources" / f"{pair.algo}-{pair.source_env}-{pair.source_steps}.zip"


def run_path(out: Path, run: Run) -> Path:
    return out / "runs" / run.key / "evaluations.npz"


def _hyperparams(pair: Pair, env_id: str) -> dict:
    from sb3_transfer.zoo import zoo_hyperparams

    hyperparams, _, _ = zoo_hyperparams(pair.algo, env_id)
    return {**hyperparams, **pair.hyperparams}


def train_source(pair: Pair, path: Path) -> Path:
    """Train and save a pair's source agent (seed 0), unless it is cached."""
    if path.exists():
        return path
    import torch as th

    from sb3_transfer.adapt import ALGOS

    th.set_num_threads(1)
    model = ALGOS[pair.algo](
        "MlpPolicy", pair.source_env, seed=0, verbose=0, device="cpu", **_hyperparams(pair, pair.source_env)
    )
    model.learn(pair.source_steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.zip")
    model.save(tmp)
    os.replace(tmp, path)
    return path


def execute(run: Run, out: Path) -> Path:
    """Train one run on its target task with evaluation at 0 and every ``eval_freq`` timesteps; write its curve."""
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_transfer.adapt import ALGOS, load_and_adapt
    from sb3_transfer.callbacks import GradualUnfreeze, TransferEvalCallback
    from sb3_transfer.policies import TransferDQNPolicy, TransferQRDQNPolicy

    th.set_num_threads(1)
    pair, method = run.pair, run.method
    hyperparams = _hyperparams(pair, pair.target_env)
    if method.transfer is None:
        policy = TransferQRDQNPolicy if pair.algo == "qrdqn" else TransferDQNPolicy
        model = ALGOS[pair.algo](policy, pair.target_env, seed=run.seed, verbose=0, device="cpu", **hyperparams)
    else:
        hyperparams.pop("policy_kwargs", None)  # the architecture is the source's
        model = load_and_adapt(
            source_path(out, pair),
            pair.target_env,
            pair.algo,
            transfer=method.transfer,
            action_map=pair.action_map,
            verbose=0,
            seed=run.seed,
            device="cpu",
            **hyperparams,
        )
        groups = list(model.policy.layer_groups())
        # Patterns for groups this network lacks (a FlattenExtractor has no weights) are left out.
        freeze = [p for p in method.freeze if fnmatch.filter(groups, p)]
        if freeze:
            model.policy.freeze(*freeze)
        lr_scale = {p: f for p, f in method.lr_scale.items() if fnmatch.filter(groups, p)}
        if lr_scale:
            model.policy.set_lr_scale(lr_scale)
    path = run_path(out, run)
    partial = path.parent / f".partial-{os.getpid()}"
    evaluation = TransferEvalCallback(
        make_vec_env(pair.target_env, n_envs=1, seed=10_000 + run.seed),
        eval_freq=max(pair.eval_freq // model.n_envs, 1),
        n_eval_episodes=pair.n_eval_episodes,
        log_path=str(partial),
        verbose=0,
        warn=False,
    )
    callbacks = [evaluation]
    if method.transfer is not None and method.unfreeze_fraction:
        callbacks.append(GradualUnfreeze(every=max(1, int(pair.target_steps * method.unfreeze_fraction))))
    model.learn(pair.target_steps, callback=callbacks)
    # EvalCallback rewrites its file at every evaluation: only a finished run's file takes the final name.
    os.replace(partial / "evaluations.npz", path)
    partial.rmdir()
    return path


def run_suite(
    suite: Suite,
    out: Path,
    workers: int = 2,
    log: Callable[[str], None] = print,
) -> list[Run]:
    """
    Run every cell of a suite that has no result yet.

    :param suite: The suite.
    :param out: Output folder (sources cache, runs).
    :param workers: Processes of the local pool.
    :param log: Progress messages.
    :return: All runs of the suite.
    """
    runs = [Run(p, m, s) for p in suite.pairs for m in suite.methods for s in suite.seeds]
    todo = [r for r in runs if not run_path(out, r).exists()]
    log(f"suite {suite.name}: {len(runs)} runs, {len(runs) - len(todo)} already done, {len(todo)} to go ({workers} workers)")
    sources = {source_path(out, r.pair): r.pair for r in todo if r.method.transfer is not None}
    sources = {path: pair for path, pair in sources.items() if not path.exists()}
    started = time.time()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for n, future in enumerate(as_completed([pool.submit(train_source, p, path) for path, p in sources.items()]), 1):
            log(f"  source {n}/{len(sources)}: {future.result().name} ({time.time() - started:.0f}s)")
        futures = {pool.submit(execute, r, out): r for r in todo}
        for n, future in enumerate(as_completed(futures), 1):
            future.result()
            log(f"  [{n}/{len(todo)}] {futures[future].key} ({time.time() - started:.0f}s)")
    return runs
