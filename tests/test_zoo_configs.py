import importlib
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from stable_baselines3 import DQN, PPO, SAC

import sb3_transfer  # noqa: F401  (registers the variants)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "zoo_configs").glob("*.yml"))


def entries():
    for path in CONFIGS:
        for env_id, hyperparams in yaml.safe_load(path.read_text()).items():
            yield pytest.param(path, env_id, hyperparams, id=f"{path.stem}-{env_id}")


@pytest.mark.parametrize("path, env_id, hyperparams", list(entries()))
def test_config_entries_resolve(path, env_id, hyperparams, monkeypatch):
    assert env_id in gym.registry
    module, _, name = hyperparams["policy"].rpartition(".")
    assert hasattr(importlib.import_module(module), name)
    for callback in hyperparams["callback"]:
        (dotted,) = [callback] if isinstance(callback, str) else callback
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name)
    # rl-zoo3 eval()s policy_kwargs in a module that has `os`: transfer with SB3T_SOURCE, its scratch twin without.
    monkeypatch.delenv("SB3T_SOURCE", raising=False)
    assert "pretrained" not in eval(hyperparams["policy_kwargs"], {"os": os})
    monkeypatch.setenv("SB3T_SOURCE", "source.zip")
    assert eval(hyperparams["policy_kwargs"], {"os": os})["pretrained"] == "source.zip"


def rl_zoo_train(tmp_path, env, folder, source=None, eval_freq=300, algo="dqn", n=600, overrides=()):
    """rl-zoo3's own train script on a config of ours, as the config's header comment runs it (tiny budgets)."""
    environ = {k: v for k, v in os.environ.items() if k != "SB3T_SOURCE"}
    if source:
        environ["SB3T_SOURCE"] = str(source)
    command = [sys.executable, "-m", "rl_zoo3.train", "--algo", algo, "--env", env, "--gym-packages", "sb3_transfer"]
    command += ["-conf", str(ROOT / "zoo_configs" / f"{algo}.yml"), "-n", str(n), "--eval-freq", str(eval_freq)]
    command += ["--eval-episodes", "2", "-f", str(tmp_path / folder), "--seed", "0", "--device", "cpu"]
    command += ["--hyperparams", *overrides] if overrides else []
    return subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300)


def test_rl_zoo_trains_transfer_and_scratch_twin_apart_with_the_jumpstart(tmp_path, cartpole_zip):
    pytest.importorskip("rl_zoo3")
    source = tmp_path / "cartpole_dqn.zip"
    source.write_bytes(cartpole_zip.read_bytes())
    transfer = rl_zoo_train(tmp_path, "CartPoleLongPole-v1", "logs/transfer", source=source)
    assert transfer.returncode == 0, transfer.stderr[-3000:]
    scratch = rl_zoo_train(tmp_path, "CartPoleLongPole-v1", "logs/scratch")
    assert scratch.returncode == 0, scratch.stderr[-3000:]
    runs = {name: tmp_path / "logs" / name / "dqn" / "CartPoleLongPole-v1_1" for name in ("transfer", "scratch")}
    for name, run in runs.items():
        for output in ("CartPoleLongPole-v1.zip", "evaluations.npz", "CartPoleLongPole-v1/config.yml"):
            assert (run / output).exists(), f"{name}: {output}"
        # rl-zoo3's own evaluations, the first before any update (EvaluateAtStart), for transfer and scratch alike.
        with np.load(run / "evaluations.npz") as data:
            assert list(data["timesteps"]) == [0, 300, 600] and data["results"].shape == (3, 2)
    # The transfer run printed its report and wrote it into rl-zoo3's run folder; the scratch twin has none.
    report_path = runs["transfer"] / "transfer_report.json"
    assert "Transfer report: " in transfer.stdout and f"RecordTransfer: wrote {report_path}" in transfer.stdout
    report = json.loads(report_path.read_text())
    assert report["transfer"] == ["trunk.0", "trunk.1", "head"] and report["counts"]["copied"] == 6
    assert report["target"] == "DQN on CartPoleLongPole-v1"
    assert "Transfer report" not in scratch.stdout and not (runs["scratch"] / "transfer_report.json").exists()
    for run in (transfer, scratch):
        assert "EvaluateAtStart: " in run.stdout and "episodes at timestep 0, before any update" in run.stdout
    kwargs = [json.loads(zipfile.ZipFile(runs[r] / "CartPoleLongPole-v1.zip").read("data"))["policy_kwargs"] for r in runs]
    assert "cartpole_dqn.zip" in kwargs[0]["pretrained_from"] and kwargs[0]["net_arch"] == [16, 16]
    assert "pretrained_from" not in kwargs[1] and kwargs[1]["net_arch"] == [256, 256]
    # RecordTransfer made the transfer run save its architecture, not its source: it loads without the source.
    assert "pretrained" not in kwargs[0]
    source.unlink()
    DQN.load(runs["transfer"] / "CartPoleLongPole-v1.zip", device="cpu")
    # rl-zoo3's all_plots draws the two folders as two labelled lines, each from timestep 0.
    pytest.importorskip("seaborn")
    logs = tmp_path / "logs"
    command = [sys.executable, "-m", "rl_zoo3.cli", "all_plots", "-a", "dqn", "-e", "CartPoleLongPole-v1", "--no-display"]
    command += ["-f", str(logs / "transfer"), str(logs / "scratch"), "--labels", "transfer", "scratch"]
    command += ["-o", str(tmp_path / "curves")]
    plots = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"}
    )
    assert plots.returncode == 0, plots.stderr[-3000:]
    assert "Eval not found" not in plots.stdout and "|transfer|scratch|" in plots.stdout.replace(" ", "")
    with open(tmp_path / "curves.pkl", "rb") as file:
        curves = pickle.load(file)["CartPoleLongPole-v1"]  # the file all_plots wrote itself
    assert sorted(curves) == ["DQN-scratch", "DQN-transfer"]
    assert all(list(curve["timesteps"]) == [0, 300, 600] for curve in curves.values())


@pytest.mark.slow
def test_rl_zoo_without_evaluation_stops_and_says_why(tmp_path, cartpole_zip):
    pytest.importorskip("rl_zoo3")
    result = rl_zoo_train(tmp_path, "CartPoleLongPole-v1", "logs", source=cartpole_zip, eval_freq=-1)
    assert result.returncode != 0
    assert "an EvalCallback with a log_path. With rl-zoo3, evaluate during training: --eval-freq N" in result.stderr


def test_rl_zoo_trains_a_transfer_algorithm_with_its_terms(tmp_path, cartpole_zip):
    pytest.importorskip("rl_zoo3")
    config = {
        "CartPoleLongPole-v1": {
            "n_timesteps": 400,
            "policy": "MlpPolicy",  # TransferDQN's alias: the Transfer policy
            "learning_starts": 100,
            "buffer_size": 1000,
            "policy_kwargs": f"dict(pretrained='{cartpole_zip}', transfer='all')",
            "distill_coef": 1.0,
            "distill_decay": "return",
            "anchor_coef": 0.1,
            "callback": [{"sb3_transfer.callbacks.RecordTransfer": {"beside_evaluations": True}}],
        }
    }
    (tmp_path / "transfer_dqn.yml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "sb3_transfer.zoo", "--algo", "transfer_dqn", "--env", "CartPoleLongPole-v1"]
    command += ["--gym-packages", "sb3_transfer", "-conf", str(tmp_path / "transfer_dqn.yml"), "-n", "400"]
    command += ["--eval-freq", "200", "--eval-episodes", "1", "-f", str(tmp_path / "logs"), "--seed", "0", "--device", "cpu"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "logs" / "transfer_dqn" / "CartPoleLongPole-v1_1"  # apart from rl-zoo3's own dqn runs
    assert (run / "transfer_report.json").exists()
    from sb3_transfer import TransferDQN

    model = TransferDQN.load(run / "CartPoleLongPole-v1.zip", device="cpu")
    assert (model.distill_coef, model.distill_decay, model.anchor_coef) == (1.0, "return", 0.1)
    assert model.teacher is not None and "pretrained" not in model.policy_kwargs


@pytest.mark.parametrize("env_id, source_env", [("CartPoleLongPole-v1", "CartPole-v1"), ("PendulumHeavy-v1", "Pendulum-v1")])
def test_rl_zoo_trains_ppo_transfer_with_the_jumpstart(tmp_path, env_id, source_env):
    pytest.importorskip("rl_zoo3")
    use_sde = yaml.safe_load((ROOT / "zoo_configs" / "ppo.yml").read_text())[env_id].get("use_sde", False)
    source = tmp_path / "source.zip"
    PPO("MlpPolicy", source_env, use_sde=use_sde, n_steps=64, batch_size=64, seed=0, device="cpu").save(source)
    # One short rollout (rl-zoo3's --hyperparams overrides the config's sizes): evaluations at 0 and after it.
    overrides = ["n_envs:1", "n_steps:64", "batch_size:64", "n_epochs:2"]
    result = rl_zoo_train(tmp_path, env_id, "logs", source=source, eval_freq=64, algo="ppo", n=64, overrides=overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "logs" / "ppo" / f"{env_id}_1"
    report = json.loads((run / "transfer_report.json").read_text())
    assert report["counts"]["initialised"] == 0 and "pi.head" in report["transfer"]
    with np.load(run / "evaluations.npz") as data:
        assert data["timesteps"][0] == 0
    model = PPO.load(run / f"{env_id}.zip", device="cpu")
    assert "pretrained" not in model.policy_kwargs and model.use_sde == use_sde


def test_rl_zoo_trains_sac_transfer_with_the_jumpstart(tmp_path):
    pytest.importorskip("rl_zoo3")
    source = tmp_path / "source.zip"
    SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[16]), buffer_size=100, seed=0, device="cpu").save(source)
    overrides = ["learning_starts:16", "buffer_size:200", "batch_size:16"]
    result = rl_zoo_train(
        tmp_path, "PendulumHeavy-v1", "logs", source=source, eval_freq=32, algo="sac", n=32, overrides=overrides
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "logs" / "sac" / "PendulumHeavy-v1_1"
    report = json.loads((run / "transfer_report.json").read_text())
    assert report["counts"]["initialised"] == 0 and {"actor.head", "critic.qf1.head"} <= set(report["transfer"])
    with np.load(run / "evaluations.npz") as data:
        assert data["timesteps"][0] == 0
    model = SAC.load(run / "PendulumHeavy-v1.zip", device="cpu")
    assert "pretrained" not in model.policy_kwargs and model.policy_kwargs["net_arch"] == {"pi": [16], "qf": [16]}
