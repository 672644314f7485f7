import json
import re
import subprocess
import sys

import numpy as np
import pytest
from stable_baselines3.common.monitor import load_results

from sb3_transfer.bench.suites import METHODS
from sb3_transfer.adapt import ALGOS
from sb3_transfer.cli import ALGO_NAMES, _parser, main


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


def test_the_command_starts_without_torch():
    # --help and the benchmark's progress bar come before torch and SB3 are imported (seconds on a busy machine).
    code = "import sys, sb3_transfer.cli; print(sorted({'torch', 'stable_baselines3'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
    assert set(ALGO_NAMES) <= set(ALGOS)


def test_pretrain_refuses_to_overwrite_without_force(source, capsys):
    assert main(["pretrain", "CartPole-v1", "-o", str(source), "--steps", "10"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["pretrain", "CartPole-v1", "-o", str(source), "--steps", "300", "--force", "--no-progress-bar"]) == 0


def test_pretrain_prints_the_agents_evaluation(source, capsys):
    args = ["pretrain", "CartPole-v1", "-o", str(source), "--steps", "300", "--force", "--no-progress-bar"]
    assert main([*args, "--n-eval-episodes", "3"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"Evaluation on CartPole-v1: \d+\.\d \+/- \d+\.\d \(mean \+/- std over 3 episodes, greedy\)", printed)


def test_train_defaults_are_the_benchmarks_finetune(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "The defaults are the benchmark's `finetune` method" in " ".join(capsys.readouterr().out.split())
    args = _parser().parse_args(["train", "src.zip", "CartPole-v1"])
    finetune = METHODS["finetune"]
    assert args.transfer == [finetune.transfer] and args.warm_start == "auto" and finetune.scale_warm_start
    assert not finetune.freeze and not finetune.lr_scale  # lr x0.1: load_and_adapt's default, as the CLI's


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
    for name in ("CartPoleLongPole-v1.zip", "evaluations.npz", "metrics.json", "transfer_report.json", "0.monitor.csv"):
        assert (run / name).exists(), name
    # The training episodes, as SB3's Monitor writes them (rl-zoo3's plot_train reads them: see the test below).
    assert load_results(str(run))["l"].sum() >= 200
    with np.load(run / "evaluations.npz") as data:
        assert list(data["timesteps"]) == [0, 100, 200]
    metrics = json.loads((run / "metrics.json").read_text())
    assert "jumpstart" in metrics["comparison"]
    printed = capsys.readouterr().out
    assert "jumpstart" in printed
    assert "holds learning (the pretrained policy acts) for 60 timesteps at timestep 0" in printed
    assert "released learning for head at timestep 61" in printed  # the trunk's unfreezing comes 50 steps later
    _rl_zoo_plot_train_draws(logs, ["CartPoleLongPole-v1_1", "CartPoleLongPole-v1_2"])


def _rl_zoo_plot_train_draws(logs, runs):
    """rl-zoo3's plot_train, as `python -m rl_zoo3.cli plot_train` runs it, draws one line per run folder."""
    pytest.importorskip("seaborn")
    # In a process of its own: rl-zoo3's plotting module restyles matplotlib for the whole process on import.
    code = (
        "import sys, matplotlib; matplotlib.use('Agg'); from matplotlib import pyplot as plt; "
        "from rl_zoo3.plots.plot_train import plot_train; "
        f"sys.argv = ['plot_train', '-a', 'dqn', '-e', 'CartPoleLongPole-v1', '-f', {str(logs)!r}, '-w', '1']; "
        "plot_train(); print(sorted(line.get_label() for line in plt.gca().lines))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == repr(sorted(runs))


def test_train_warm_start_says_what_acts(source, tmp_path, capsys):
    common = ["--steps", "100", "--eval-freq", "100", "--n-eval-episodes", "1", "--no-progress-bar"]
    common += ["--log-dir", str(tmp_path)]
    # A new head: auto holds nothing, and says why.
    assert main(["train", str(source), "CartPole-v1", "--transfer", "trunk", *common]) == 0
    printed = capsys.readouterr().out
    assert "Warm start (auto): none, as the head is new (untrained)" in printed and "holds learning" not in printed
    # Asked for, the hold is kept, and the message says the new head acts, not a pretrained policy.
    assert main(["train", str(source), "CartPole-v1", "--transfer", "trunk", "--warm-start", "50", *common]) == 0
    assert "holds learning (the new head acts, untrained) for 50 timesteps" in capsys.readouterr().out
    # From scratch, auto holds nothing, silently.
    assert main(["train", "scratch", "CartPole-v1", *common]) == 0
    printed = capsys.readouterr().out
    assert "Warm start" not in printed and "PolicyWarmStart" not in printed


def test_train_warm_start_auto_follows_the_models_sampling(source, tmp_path, capsys):
    # rl-zoo3's CartPole settings draw 32 transitions per timestep: a quarter of the 5000-step warm start.
    common = ["--eval-freq", "2000", "--n-eval-episodes", "1", "--log-dir", str(tmp_path), "--no-progress-bar"]
    args = ["train", str(source), "CartPole-v1", "--warm-start", "auto", "--unfreeze-every", "50", "--steps", "1400"]
    assert main([*args, *common]) == 0
    printed = capsys.readouterr().out
    assert "holds learning (the pretrained policy acts) for 1250 timesteps at timestep 0" in printed
    assert "pass callback=PolicyWarmStart()" not in printed  # load_and_adapt's advice: this command adds one
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


def test_train_takes_the_transfer_terms(cartpole_zip, tmp_path, capsys):
    from sb3_transfer.cli import DISTILL_DECAYS
    from sb3_transfer.losses import DECAYS

    assert set(DISTILL_DECAYS) == set(DECAYS)
    args = ["train", str(cartpole_zip), "CartPoleWeakMotor-v1", "--steps", "300", "--eval-freq", "300"]
    args += ["--n-eval-episodes", "1", "--log-dir", str(tmp_path), "--no-progress-bar", "--warm-start", "0"]
    assert main([*args, "--distill", "2", "--distill-decay", "constant", "--anchor", "0.5"]) == 0
    run = next((tmp_path / "dqn").iterdir())
    from sb3_transfer import TransferDQN

    model = TransferDQN.load(run / "CartPoleWeakMotor-v1.zip", device="cpu")
    assert (model.distill_coef, model.distill_decay, model.anchor_coef) == (2.0, "constant", 0.5)
    with pytest.raises(SystemExit):
        main([*args, "--anchor", "-1"])


def test_an_actor_critic_source_needs_a_dqn_target_on_the_command_line(tmp_path, capsys):
    from stable_baselines3 import PPO

    PPO("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8]), n_steps=64, batch_size=64).save(tmp_path / "ppo.zip")
    assert main(["adapt", str(tmp_path / "ppo.zip"), "CartPole-v1", "-o", str(tmp_path / "x.zip")]) == 2
    err = capsys.readouterr().err
    assert "actor-critic model (PPO)" in err and "--algo dqn" in err and err.count("\n") == 1
    assert main(["adapt", str(tmp_path / "ppo.zip"), "CartPole-v1", "--algo", "dqn", "-o", str(tmp_path / "x.zip")]) == 0


@pytest.mark.parametrize("anchor, expected", [([], 0.1), (["--anchor", "0"], 0.0)], ids=["default", "off"])
def test_train_anchors_by_default_when_the_head_is_carried(cartpole_zip, tmp_path, capsys, anchor, expected):
    from sb3_transfer import TransferDQN

    args = ["train", str(cartpole_zip), "CartPoleWeakMotor-v1", "--steps", "300", "--eval-freq", "300"]
    args += ["--n-eval-episodes", "1", "--log-dir", str(tmp_path), "--no-progress-bar", "--warm-start", "0"]
    assert main([*args, *anchor]) == 0
    printed = capsys.readouterr().out
    assert ("anchor_coef = 0.1: the pretrained head is carried over" in printed) is (expected > 0)
    model = TransferDQN.load(next((tmp_path / "dqn").iterdir()) / "CartPoleWeakMotor-v1.zip", device="cpu")
    assert model.anchor_coef == expected and (model.teacher is not None) is (expected > 0)
