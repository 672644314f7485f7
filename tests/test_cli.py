import json

import numpy as np
import pytest

from sb3_transfer.cli import main


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "src.zip"
    assert main(["pretrain", "CartPole-v1", "-o", str(path), "--steps", "300", "--no-progress-bar"]) == 0
    return path


@pytest.mark.parametrize("command", [[], ["pretrain"], ["inspect"], ["adapt"], ["train"]])
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: sb3-transfer" in capsys.readouterr().out


def test_pretrain_refuses_to_overwrite_without_force(source, capsys):
    assert main(["pretrain", "CartPole-v1", "-o", str(source), "--steps", "10"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["pretrain", "CartPole-v1", "-o", str(source), "--steps", "300", "--force", "--no-progress-bar"]) == 0


def test_inspect(source, capsys):
    assert main(["inspect", str(source), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["algo"] == "DQN" and info["n_actions"] == 2 and list(info["groups"]) == ["trunk.0", "trunk.1", "head"]
    assert main(["inspect", str(source)]) == 0
    assert "trunk.1" in capsys.readouterr().out


def test_adapt_prints_report_and_saves(source, tmp_path, capsys):
    out = tmp_path / "acrobot.zip"
    args = ["adapt", str(source), "Acrobot-v1", "-o", str(out), "--freeze", "trunk.*", "--action-map", "0:0,2:1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Transfer report" in printed and "adapter" in printed and out.exists()
    from stable_baselines3 import DQN

    assert DQN.load(out, device="cpu").policy.frozen_groups() == ["trunk.0", "trunk.1"]


def test_train_writes_rl_zoo_layout_and_metrics(source, tmp_path, capsys):
    logs = tmp_path / "logs"
    common = ["--steps", "200", "--eval-freq", "100", "--n-eval-episodes", "2", "--log-dir", str(logs), "--no-progress-bar"]
    assert main(["train", "scratch", "CartPoleLongPole-v1", *common]) == 0
    scratch = logs / "dqn" / "CartPoleLongPole-v1_1"
    assert (
        main(
            [
                "train",
                str(source),
                "CartPoleLongPole-v1",
                "--baseline",
                str(scratch),
                "--unfreeze-every",
                "50",
                "--warm-start",
                "60",
                *common,
            ]
        )
        == 0
    )
    run = logs / "dqn" / "CartPoleLongPole-v1_2"
    for name in ("CartPoleLongPole-v1.zip", "evaluations.npz", "metrics.json", "transfer_report.json"):
        assert (run / name).exists(), name
    with np.load(run / "evaluations.npz") as data:
        assert list(data["timesteps"]) == [0, 100, 200]
    metrics = json.loads((run / "metrics.json").read_text())
    assert "jumpstart" in metrics["comparison"]
    printed = capsys.readouterr().out
    assert "jumpstart" in printed
    assert "holds learning (the pretrained policy acts) for 60 timesteps at timestep 0" in printed
    assert "released learning for head at timestep 61" in printed  # the trunk's unfreezing comes 50 steps later


def test_train_warm_start_auto_follows_the_models_sampling(source, tmp_path, capsys):
    # rl-zoo3's CartPole settings draw 32 transitions per timestep: a quarter of the 5000-step warm start.
    common = ["--eval-freq", "2000", "--n-eval-episodes", "1", "--log-dir", str(tmp_path), "--no-progress-bar"]
    args = ["train", str(source), "CartPole-v1", "--warm-start", "auto", "--unfreeze-every", "50", "--steps", "1400"]
    assert main([*args, *common]) == 0
    printed = capsys.readouterr().out
    assert "holds learning (the pretrained policy acts) for 1250 timesteps at timestep 0" in printed
    # The unfreezing schedule starts at the release: its first step comes 50 timesteps after it.
    assert printed.index("unfroze") == printed.index("unfroze trunk.1 at timestep 1300")
    with pytest.raises(SystemExit):
        main(["train", str(source), "CartPole-v1", "--warm-start", "lots", *common])
    assert "--warm-start: 'lots': give a number of timesteps or 'auto'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["inspect", "missing.zip"], "does not exist"),
        (["adapt", "{src}", "Acrobot-v1", "-o", "{tmp}/x.zip", "--action-map", "0:7"], "source action 7 does not exist"),
        (["adapt", "{src}", "Acrobot-v1", "-o", "{tmp}/x.zip", "--action-map", "zero"], "target:source pairs"),
        (["adapt", "{src}", "NoSuchEnv-v0", "-o", "{tmp}/x.zip"], "NoSuchEnv"),
        (["adapt", "{src}", "Pendulum-v1", "-o", "{tmp}/x.zip"], "Discrete"),
        (["train", "{src}", "CartPole-v1", "--freeze", "trunk.9", "--log-dir", "{tmp}"], "matches no layer group"),
        (["train", "{src}", "CartPole-v1", "--warm-start", "-5", "--log-dir", "{tmp}"], "--warm-start -5: give a number"),
        (
            ["train", "{src}", "CartPole-v1", "--warm-start", "-5", "--unfreeze-every", "9", "--log-dir", "{tmp}"],
            "--warm-start -5",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_2(source, tmp_path, capsys, args, message):
    args = [a.format(src=source, tmp=tmp_path) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
