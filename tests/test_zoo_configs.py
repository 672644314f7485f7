import importlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from stable_baselines3 import DQN

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


def rl_zoo_train(tmp_path, env, source=None):
    environ = {k: v for k, v in os.environ.items() if k != "SB3T_SOURCE"}
    if source:
        environ["SB3T_SOURCE"] = str(source)
    command = [sys.executable, "-m", "rl_zoo3.train", "--algo", "dqn", "--env", env, "--gym-packages", "sb3_transfer"]
    command += ["-conf", str(ROOT / "zoo_configs" / "dqn.yml"), "-n", "600", "--eval-freq", "300", "--eval-episodes", "2"]
    command += ["-f", str(tmp_path / "logs"), "--seed", "0", "--device", "cpu"]
    result = subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_rl_zoo_trains_transfer_and_scratch_twin(tmp_path, cartpole_zip):
    pytest.importorskip("rl_zoo3")
    source = tmp_path / "cartpole_dqn.zip"
    source.write_bytes(cartpole_zip.read_bytes())
    rl_zoo_train(tmp_path, "CartPoleLongPole-v1", source=source)
    rl_zoo_train(tmp_path, "CartPoleLongPole-v1")
    runs = tmp_path / "logs" / "dqn"
    for run in ("CartPoleLongPole-v1_1", "CartPoleLongPole-v1_2"):
        for output in ("CartPoleLongPole-v1.zip", "evaluations.npz", "CartPoleLongPole-v1/config.yml"):
            assert (runs / run / output).exists(), f"{run}/{output}"
        with np.load(runs / run / "evaluations.npz") as data:
            assert list(data["timesteps"]) == [300, 600]
    kwargs = [
        json.loads(zipfile.ZipFile(runs / r / "CartPoleLongPole-v1.zip").read("data"))["policy_kwargs"]
        for r in ("CartPoleLongPole-v1_1", "CartPoleLongPole-v1_2")
    ]
    assert "cartpole_dqn.zip" in kwargs[0]["pretrained_from"] and kwargs[0]["net_arch"] == [16, 16]
    assert "pretrained_from" not in kwargs[1] and kwargs[1]["net_arch"] == [256, 256]
    # RecordTransfer made the transfer run save its architecture, not its source: it loads without the source.
    assert "pretrained" not in kwargs[0]
    source.unlink()
    DQN.load(runs / "CartPoleLongPole-v1_1" / "CartPoleLongPole-v1.zip", device="cpu")
    pytest.importorskip("seaborn")
    plots = subprocess.run(
        [
            sys.executable,
            "-m",
            "rl_zoo3.cli",
            "all_plots",
            "-a",
            "dqn",
            "-e",
            "CartPoleLongPole-v1",
            "-f",
            str(tmp_path / "logs"),
            "-o",
            str(tmp_path / "plots"),
            "--no-display",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert plots.returncode == 0, plots.stderr[-3000:]
    assert "CartPoleLongPole-v1" in plots.stdout
