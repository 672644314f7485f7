"""rl-baselines3-zoo's tuned hyperparameters, when rl-zoo3 is installed (``pip install 'sb3-transfer[zoo]'``), and
rl-zoo3's training with the Transfer algorithms.

``python -m sb3_transfer.zoo ARGS`` is ``python -m rl_zoo3.train ARGS`` with :class:`~sb3_transfer.TransferDQN` and
:class:`~sb3_transfer.TransferQRDQN` (and ``TransferPPO``, ``TransferA2C``, ``TransferSAC``, ``TransferTQC``,
``TransferTD3``, ``TransferDDPG``) among rl-zoo3's algorithms as ``transfer_dqn`` and ``transfer_qrdqn``
(``transfer_ppo``, ``transfer_a2c``, ``transfer_sac``...): rl-zoo3's
own training (``rl_zoo3.train.train``), whose YAML can then set the transfer terms (``distill_coef``, ``anchor_coef``...)
that only the Transfer algorithms take, and whose runs go to ``logs/transfer_dqn/`` beside the scratch runs of
``--algo dqn``. With SB3's own ``dqn``, a YAML's Transfer policy still transplants (``zoo_configs/dqn.yml``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from torch import nn

from sb3_transfer.envs import source_task

# Keys of rl-zoo's YAML that are not constructor arguments of the algorithm.
_ZOO_ONLY = {"n_timesteps", "policy", "n_envs", "normalize", "env_wrapper", "frame_stack", "callback", "vec_env_wrapper"}


def zoo_hyperparams(algo: str, env_id: str) -> tuple[dict[str, Any], int | None, str]:
    """
    rl-zoo3's tuned hyperparameters for an algorithm on a task, or on the task a registered variant was made from.

    :param algo: ``"dqn"`` or ``"qrdqn"``.
    :param env_id: The task.
    :return: ``(constructor kwargs, n_timesteps, where they come from)``; empty kwargs when rl-zoo3 is not
        installed or has no entry.
    """
    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or not spec.submodule_search_locations:
        return {}, None, "SB3 defaults (rl-zoo3 is not installed: pip install 'sb3-transfer[zoo]')"
    import yaml

    path = Path(next(iter(spec.submodule_search_locations))) / "hyperparams" / f"{algo.lower()}.yml"
    if not path.exists():
        return {}, None, f"SB3 defaults (rl-zoo3 has no {path.name})"
    with open(path) as file:
        table = yaml.safe_load(file) or {}
    key = env_id if env_id in table else source_task(env_id)
    if key not in table:
        return {}, None, f"SB3 defaults (rl-zoo3 has no {algo} entry for {env_id})"
    entry = dict(table[key])
    kwargs = {k: v for k, v in entry.items() if k not in _ZOO_ONLY}
    if isinstance(kwargs.get("policy_kwargs"), str):
        # rl-zoo writes policy_kwargs as Python; this is the installed package's own file, read as rl-zoo reads it.
        kwargs["policy_kwargs"] = eval(kwargs["policy_kwargs"], {"__builtins__": {}, "dict": dict, "nn": nn})
    n_timesteps = int(entry["n_timesteps"]) if "n_timesteps" in entry else None
    return kwargs, n_timesteps, f"rl-zoo3's tuned {algo} hyperparameters for {key}"


#: The Transfer algorithms, by the names rl-zoo3's ``--algo`` takes.
ZOO_ALGOS = {
    "transfer_dqn": "TransferDQN",
    "transfer_qrdqn": "TransferQRDQN",
    "transfer_ppo": "TransferPPO",
    "transfer_a2c": "TransferA2C",
    "transfer_sac": "TransferSAC",
    "transfer_tqc": "TransferTQC",
    "transfer_td3": "TransferTD3",
    "transfer_ddpg": "TransferDDPG",
}


def train(argv: list[str] | None = None) -> None:
    """
    Run rl-zoo3's training (``rl_zoo3.train.train``) with the Transfer algorithms among its ``--algo`` choices.

    :param argv: The arguments (default: ``sys.argv[1:]``), as ``python -m rl_zoo3.train`` takes them.
    """
    import sys

    from rl_zoo3 import train as zoo_train
    from rl_zoo3.utils import ALGOS

    from sb3_transfer import algorithms

    # rl-zoo3 offers no hook for other algorithms: its table is extended here, in this process only.
    ALGOS.update({name: getattr(algorithms, cls) for name, cls in ZOO_ALGOS.items()})
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    zoo_train.train()


if __name__ == "__main__":
    train()
