import numpy as np
import pytest
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from sb3_transfer import load_and_adapt
from sb3_transfer.callbacks import TransferEvalCallback
from sb3_transfer.metrics import InvalidCurveError, load_curve
from sb3_transfer.plots import plot_transfer

FAST = dict(learning_starts=0, train_freq=1, batch_size=8, buffer_size=500, device="cpu")


@pytest.mark.parametrize("n_envs, eval_freq", [(1, 20), (4, 5)])
def test_evaluates_at_start_and_every_eval_freq_writing_sb3_npz(tmp_path, n_envs, eval_freq):
    model = DQN("MlpPolicy", make_vec_env("CartPole-v1", n_envs=n_envs, seed=0), policy_kwargs=dict(net_arch=[8]), **FAST)
    callback = TransferEvalCallback(
        make_vec_env("CartPole-v1", n_envs=1, seed=1),
        eval_freq=eval_freq,
        n_eval_episodes=2,
        log_path=str(tmp_path),
        verbose=0,
    )
    model.learn(60, callback=callback)
    assert callback.timesteps == [0, 20, 40, 60]
    with np.load(tmp_path / "evaluations.npz") as data:
        assert set(data.files) == {"timesteps", "results", "ep_lengths"}
        assert list(data["timesteps"]) == [0, 20, 40, 60]
        assert data["results"].shape == (4, 2) and data["ep_lengths"].shape == (4, 2)
    assert callback.metrics is not None and not callback.metrics.comparison  # no baseline
    # A further learn() that goes on does not evaluate timestep 60 twice.
    model.learn(20, callback=callback, reset_num_timesteps=False)
    assert callback.timesteps == [0, 20, 40, 60, 80]


def test_measures_transfer_against_a_baseline_and_logs_it(tmp_path, cartpole_zip):
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=1)
    scratch = DQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[16, 16]), seed=0, **FAST)
    scratch.learn(
        40, callback=TransferEvalCallback(eval_env, eval_freq=20, n_eval_episodes=2, log_path=str(tmp_path / "scratch"))
    )
    model = load_and_adapt(cartpole_zip, "CartPole-v1", transfer="all", seed=0, verbose=0, **FAST)
    model.set_logger(configure(str(tmp_path / "transfer"), ["csv"]))
    callback = TransferEvalCallback(
        eval_env,
        baseline=str(tmp_path / "scratch" / "evaluations.npz"),
        threshold=50,
        eval_freq=20,
        n_eval_episodes=2,
        log_path=str(tmp_path / "transfer"),
        verbose=0,
    )
    model.learn(40, callback=callback)
    metrics = callback.metrics
    _, v_scratch = load_curve(tmp_path / "scratch")
    _, v_transfer = load_curve(tmp_path / "transfer")
    assert metrics.jumpstart.value == pytest.approx(v_transfer[0] - v_scratch[0])
    assert {"jumpstart", "asymptotic_gain", "transfer_ratio", "time_to_threshold_ratio"} <= set(metrics.comparison)
    header = (tmp_path / "transfer" / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"transfer/jumpstart", "transfer/transfer_ratio", "eval/mean_reward"} <= set(header)


def test_bad_baseline_fails_before_training(tmp_path):
    with pytest.raises(InvalidCurveError, match="does not exist"):
        TransferEvalCallback(make_vec_env("CartPole-v1"), baseline=str(tmp_path / "nope.npz"))


def test_plot_writes_a_png_that_opens(tmp_path):
    import matplotlib.image

    t = [0, 10, 20, 30]
    path = plot_transfer(
        {"transfer": [(t, [5, 6, 8, 10]), (t, [4, 7, 9, 10])], "scratch": (t, [0, 2, 4, 10])},
        tmp_path / "curves.png",
        threshold=8,
    )
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_plot_names_its_statistic_and_its_bands():
    from sb3_transfer.bench.stats import iqm
    from sb3_transfer.plots import transfer_figure

    t = [0, 10, 20]
    seeds = [(t, [0, 5, 9]), (t, [1, 6, 9]), (t, [2, 7, 9]), (t, [100, 100, 100])]
    (ax,) = transfer_figure({"transfer": seeds}, statistic=iqm, statistic_name="IQM").axes
    assert ax.get_ylabel() == "evaluation return, IQM over seeds"
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "bands: bootstrap 95% CI of the IQM over seeds" in legend
    # The line is the IQM (the outlying seed is cut), not the mean.
    assert list(ax.lines[0].get_ydata()) == [iqm([0, 1, 2, 100]), iqm([5, 6, 7, 100]), 9.0]
    (ax,) = transfer_figure({"scratch": (t, [0, 1, 2])}).axes  # one seed: no band to explain
    assert ax.get_ylabel() == "evaluation return, mean over seeds" and "bands" not in str(ax.get_legend().get_texts())


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    import sys

    from sb3_transfer import TransferError

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # the figure is drawn without pyplot
    with pytest.raises(TransferError, match=r"sb3-transfer\[plots\]"):
        plot_transfer({"a": ([0, 1], [0, 1])}, tmp_path / "x.png")
