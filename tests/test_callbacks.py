import json

import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from sb3_transfer import TransferConfigError, TransferDQNPolicy
from sb3_transfer.callbacks import (
    WARM_START_STEPS,
    EvaluateAtStart,
    FreezeSchedule,
    GradualUnfreeze,
    PolicyWarmStart,
    RecordTransfer,
    scaled_warm_start,
    warm_start_steps,
)

FAST = dict(learning_starts=0, train_freq=1, batch_size=8, buffer_size=500, device="cpu")


def make(n_envs=1, algo_kwargs=None, **policy_kwargs):
    if "net_arch" not in policy_kwargs:
        policy_kwargs["net_arch"] = [8, 8]
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
    return DQN(TransferDQNPolicy, env, policy_kwargs=policy_kwargs, **{**FAST, **(algo_kwargs or {})})


class Recorder(GradualUnfreeze):
    """Records the frozen groups at every step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.history = []

    def _on_step(self):
        result = super()._on_step()
        self.history.append((self.model.num_timesteps, tuple(self.policy.frozen_groups())))
        return result


def first_time(history, frozen):
    return next(t for t, groups in history if groups == frozen)


@pytest.mark.parametrize("n_envs", [1, 4])
def test_gradual_unfreeze_top_down_order_and_timing(n_envs, cartpole_zip):
    model = make(n_envs, pretrained=str(cartpole_zip), net_arch=None)
    callback = Recorder(every=40)
    model.learn(200, callback=callback)
    history = callback.history
    assert history[0][1] == ("trunk.0", "trunk.1")  # nothing was frozen: all but the head
    assert first_time(history, ("trunk.0",)) == 40  # the group nearest the head first
    assert first_time(history, ()) == 80
    assert model.policy.frozen_groups() == []


def test_gradual_unfreeze_from_policy_freeze_bottom_up_with_warmup():
    model = make(freeze=["trunk.*"])
    callback = Recorder(every=30, order="bottom_up", warmup=20)
    model.learn(45, callback=callback)
    assert first_time(callback.history, ("trunk.1",)) == 30  # the group nearest the input first
    # 15 of trunk.0's 20 warm-up steps done: its learning rate is 3/4 of the others'.
    assert callback.policy.param_group("trunk.0")["lr_warmup"] == pytest.approx(0.75)
    rates = model.policy.learning_rates()
    assert rates["trunk.0"] == pytest.approx(0.75 * rates["head"])
    model.learn(30, callback=callback, reset_num_timesteps=False)
    assert model.policy.learning_rates()["trunk.0"] == pytest.approx(rates["head"])


@pytest.mark.parametrize("n_envs", [1, 4])
def test_freeze_schedule(n_envs):
    model = make(n_envs)
    callback = FreezeSchedule({"trunk.0": 60, "trunk.1": 20})
    model.learn(20 if n_envs == 1 else 12, callback=callback)
    assert model.policy.frozen_groups() == (["trunk.0"] if n_envs == 1 else ["trunk.0", "trunk.1"])
    model.learn(100, callback=callback, reset_num_timesteps=False)
    assert model.policy.frozen_groups() == []


def test_gradual_unfreeze_leaves_a_scratch_run_alone(capsys):
    model = make()
    model.learn(50, callback=GradualUnfreeze(every=10, verbose=1))
    assert model.policy.frozen_groups() == []
    assert "nothing to do" in capsys.readouterr().out


def test_changes_are_logged_and_printed(tmp_path, capsys, cartpole_zip):
    model = make(pretrained=str(cartpole_zip), net_arch=None)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(60, callback=GradualUnfreeze(every=25, verbose=1), log_interval=1)
    printed = capsys.readouterr().out
    assert "froze trunk.0, trunk.1 at timestep 0" in printed and "unfroze trunk.1 at timestep 25" in printed
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"transfer/n_frozen", "transfer/frozen/trunk.0", "transfer/lr/head"} <= set(header)


def test_errors_name_the_problem():
    with pytest.raises(TransferConfigError, match=r"matches no layer group.*trunk\.0, trunk\.1, head"):
        make().learn(5, callback=FreezeSchedule({"encoder": 10}))
    with pytest.raises(TransferConfigError, match="every"):
        GradualUnfreeze(every=0)
    with pytest.raises(TransferConfigError, match="order"):
        GradualUnfreeze(every=5, order="sideways")
    with pytest.raises(TransferConfigError, match="TransferDQNPolicy"):
        DQN("MlpPolicy", "CartPole-v1", **FAST).learn(5, callback=GradualUnfreeze(every=5))


def test_freeze_schedule_keeps_a_group_until_its_latest_pattern():
    model = make()
    callback = FreezeSchedule({"trunk.0": 100, "trunk.*": 40})
    model.learn(60, callback=callback)
    assert model.policy.frozen_groups() == ["trunk.0"]
    model.learn(60, callback=callback, reset_num_timesteps=False)
    assert model.policy.frozen_groups() == []


def test_warmup_never_goes_negative_when_timesteps_restart():
    model = make(freeze=["trunk.*"])
    callback = GradualUnfreeze(every=40, warmup=100)
    model.learn(60, callback=callback)
    model.learn(10, callback=callback)  # reset_num_timesteps=True: the count starts again at 0
    assert all(lr >= 0 for lr in model.policy.learning_rates().values())
    assert 0.0 <= model.policy.param_group("trunk.1")["lr_warmup"] < 1.0


class HoldRecorder(PolicyWarmStart):
    """Records the head's learning rate in each training phase as its optimizer steps use it, by timestep."""

    def __init__(self, *args, **kwargs):
        self.rates = {}
        super().__init__(*args, **kwargs)

    @property
    def history(self):
        return sorted(self.rates.items())

    def _start_over(self):
        super()._start_over()
        if getattr(self, "model", None) is not None:  # a step pre-hook after the policy's, which applies the factors
            self.model.policy.optimizer.register_step_pre_hook(self._record_rate)

    def _record_rate(self, optimizer, args, kwargs):
        self.rates[self.model.num_timesteps] = self.policy.param_group("head")["lr"]


def weights(model):
    return {k: v.clone() for k, v in model.policy.q_net.state_dict().items()}


def unchanged(before, model):
    return all(th.equal(before[k], v) for k, v in model.policy.q_net.state_dict().items())


def first_update(history):
    return next(t for t, lr in history if lr > 0)


@pytest.mark.parametrize("n_envs", [1, 4])
def test_policy_warm_start_fills_the_buffer_with_the_pretrained_policy(n_envs, cartpole_zip):
    greedy_only = dict(exploration_initial_eps=0.0, exploration_final_eps=0.0)
    model = make(n_envs, greedy_only, pretrained=str(cartpole_zip), net_arch=None)
    pretrained = weights(model)
    callback = HoldRecorder(40)
    model.learn(40, callback=callback)
    assert unchanged(pretrained, model)  # trained every step, at lr 0
    # Unlike SB3's learning_starts (random actions), the pretrained policy chose every action of the buffer.
    n = model.replay_buffer.pos
    obs = model.replay_buffer.observations[:n].reshape(-1, 4)
    actions = model.replay_buffer.actions[:n].reshape(-1)
    greedy, _ = model.policy.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actions, greedy)
    assert {lr for _, lr in callback.history} == {0.0}
    assert not model.policy.learning_held  # learn() ended: the next train() is not held
    model.learn(20, callback=callback, reset_num_timesteps=False)
    assert first_update(callback.history) == 40 + n_envs  # as with learning_starts=40
    assert not unchanged(pretrained, model)


def test_policy_warm_start_spans_learn_calls_and_is_not_saved(tmp_path, cartpole_zip):
    model = make(pretrained=str(cartpole_zip), net_arch=None)
    callback = HoldRecorder(50, verbose=1)
    model.learn(30, callback=callback)
    pretrained = weights(model)
    model.learn(10, callback=callback, reset_num_timesteps=False)
    assert unchanged(pretrained, model) and callback.elapsed == 40 and callback.holding
    # Saved by a callback during a rollout (as CheckpointCallback does): the hold is not in force then.
    model.save(tmp_path / "mid_hold.zip")
    loaded = DQN.load(tmp_path / "mid_hold.zip", device="cpu")
    assert not loaded.policy.learning_held
    model.learn(20, callback=callback, reset_num_timesteps=False)
    assert first_update(callback.history) == 51


def test_policy_warm_start_counts_again_for_a_new_model(cartpole_zip):
    callback = HoldRecorder(30)
    for _ in range(2):
        model = make(pretrained=str(cartpole_zip), net_arch=None)
        pretrained = weights(model)
        model.learn(25, callback=callback)
        assert unchanged(pretrained, model) and callback.elapsed == 25


def test_policy_warm_start_leaves_a_scratch_run_alone(capsys):
    model = make()
    callback = HoldRecorder(30, verbose=1)
    model.learn(20, callback=callback)
    assert all(lr > 0 for _, lr in callback.history)
    assert "no pretrained weights; nothing to do" in capsys.readouterr().out


def test_gradual_unfreeze_waits_for_the_warm_start(cartpole_zip):
    model = make(pretrained=str(cartpole_zip), net_arch=None)
    unfreezing = Recorder(every=10, delay=30)
    model.learn(60, callback=[PolicyWarmStart(30), unfreezing])
    assert first_time(unfreezing.history, ("trunk.0",)) == 40  # the first unfreezing comes `every` after the hold
    with pytest.raises(TransferConfigError, match="delay"):
        GradualUnfreeze(every=10, delay=-1)


@pytest.mark.parametrize(
    "sampling, n_envs, draws",
    [
        (dict(batch_size=128, train_freq=4, gradient_steps=-1), 1, 128),  # rl-zoo3's LunarLander: the measured setting
        (dict(batch_size=128, train_freq=4, gradient_steps=4), 1, 128),  # a gradient step per timestep, counted
        (dict(batch_size=64, train_freq=256, gradient_steps=128), 1, 32),  # its CartPole
        (dict(batch_size=128, train_freq=4, gradient_steps=1), 4, 8),  # 16 timesteps per rollout
        (dict(batch_size=32, train_freq=(2, "episode"), gradient_steps=-1), 1, 32),  # a gradient step per timestep
        (dict(batch_size=32, train_freq=(2, "episode"), gradient_steps=8), 1, 128),  # unknown: left unscaled
        (dict(batch_size=32, train_freq=4, gradient_steps=0), 1, 0),  # never trains: nothing to hold
    ],
)
def test_warm_start_steps_scale_with_the_transitions_drawn_per_timestep(sampling, n_envs, draws):
    model = DQN("MlpPolicy", make_vec_env("CartPole-v1", n_envs=n_envs), device="cpu", **sampling)
    assert warm_start_steps(model, 128) == draws
    assert warm_start_steps(model) == round(WARM_START_STEPS * draws / 128)


def test_warm_start_steps_needs_an_off_policy_model():
    from stable_baselines3 import PPO

    with pytest.raises(TransferConfigError, match="PPO has no replay sampling"):
        warm_start_steps(PPO("MlpPolicy", "CartPole-v1", device="cpu"))
    with pytest.raises(TransferConfigError, match="warm_start_steps steps=-1"):
        warm_start_steps(make(), -1)


@pytest.mark.parametrize("train_freq, draws", [(4, 8), ((8, "step"), 4), ((1, "episode"), 128)])
def test_scaled_warm_start_reads_train_freq_as_the_constructor_takes_it(train_freq, draws):
    assert scaled_warm_start(128, batch_size=32, gradient_steps=1, train_freq=train_freq) == draws
    assert scaled_warm_start(128, batch_size=32, gradient_steps=-1, train_freq=train_freq) == 32
    built = DQN("MlpPolicy", "CartPole-v1", batch_size=32, train_freq=train_freq, device="cpu")
    assert warm_start_steps(built, 128) == draws


def test_policy_warm_start_by_default_holds_for_each_models_sampling(cartpole_zip):
    callback = HoldRecorder()
    for train_freq, hold in ((1, 312), (4, 78)):  # 8 transitions drawn per timestep, then 2
        model = make(algo_kwargs=dict(train_freq=train_freq), pretrained=str(cartpole_zip), net_arch=None)
        model.learn(8, callback=callback)
        assert callback.steps == hold == warm_start_steps(model)


@pytest.mark.parametrize("steps", [-1, 2.5, "5000", True])
def test_policy_warm_start_rejects_bad_steps(steps):
    with pytest.raises(TransferConfigError, match="PolicyWarmStart steps"):
        PolicyWarmStart(steps)


def test_policy_warm_start_takes_whole_floats_and_numpy_integers():
    assert PolicyWarmStart(5e3).steps == 5000 and PolicyWarmStart(np.int64(7)).steps == 7


class Interrupt(BaseCallback):
    """Ctrl-C at the worst moment: after the warm start has set the hold for the next train()."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def _on_step(self):
        return True

    def _on_rollout_end(self):
        if self.model.num_timesteps == self.at:
            raise KeyboardInterrupt


def test_an_interrupted_warm_start_holds_at_most_one_more_training_phase(cartpole_zip):
    model = make(pretrained=str(cartpole_zip), net_arch=None)
    with pytest.raises(KeyboardInterrupt):
        model.learn(100, callback=[PolicyWarmStart(50), Interrupt(at=20)])
    pretrained = weights(model)
    model.learn(1, reset_num_timesteps=False)  # without the callback: the hold set before the interrupt is used up
    assert unchanged(pretrained, model)
    model.learn(1, reset_num_timesteps=False)
    assert not unchanged(pretrained, model)


class ScaleAtRolloutEnd(BaseCallback):
    def _on_step(self):
        return True

    def _on_rollout_end(self):
        self.model.policy.set_lr_scale({"head": 1.0})


def test_changing_rates_during_the_hold_does_not_end_it(cartpole_zip):
    model = make(pretrained=str(cartpole_zip), net_arch=None)
    pretrained = weights(model)
    model.learn(30, callback=[PolicyWarmStart(100), ScaleAtRolloutEnd()])
    assert unchanged(pretrained, model)


def test_gradual_unfreeze_starts_afresh_on_another_model(cartpole_zip):
    callback = GradualUnfreeze(every=1_000)
    for _ in range(2):
        model = make(pretrained=str(cartpole_zip), net_arch=None)
        model.learn(10, callback=callback)
        assert model.policy.frozen_groups() == ["trunk.0", "trunk.1"]
    assert GradualUnfreeze(every=5e3, delay=np.int64(7)).delay == 7


def _with_source(cartpole_zip):
    """As rl-zoo3 builds a transfer run: SB3's own DQN, a Transfer policy, the source in policy_kwargs."""
    env = make_vec_env("CartPole-v1", seed=0)
    return DQN(TransferDQNPolicy, env, policy_kwargs=dict(pretrained=str(cartpole_zip), transfer="all"), **FAST)


def test_record_transfer_writes_beside_the_evaluations(cartpole_zip, tmp_path, capsys):
    model = _with_source(cartpole_zip)
    evaluation = EvalCallback(make_vec_env("CartPole-v1", seed=1), eval_freq=50, n_eval_episodes=1, log_path=str(tmp_path))
    model.learn(50, callback=[RecordTransfer(beside_evaluations=True), evaluation])
    assert "Transfer report" in capsys.readouterr().out
    assert json.loads((tmp_path / "transfer_report.json").read_text())["counts"]["copied"] == 6
    assert "pretrained" not in model.policy_kwargs  # the model now saves the architecture, not the source


def test_evaluate_at_start_adds_timestep_0_to_the_runs_evaluations(tmp_path):
    model = make()
    evaluation = EvalCallback(make_vec_env("CartPole-v1", seed=1), eval_freq=50, n_eval_episodes=2, log_path=str(tmp_path))
    model.learn(100, callback=CallbackList([EvaluateAtStart(), evaluation]))  # found inside a CallbackList too
    with np.load(tmp_path / "evaluations.npz") as data:
        assert list(data["timesteps"]) == [0, 50, 100] and data["results"].shape == (3, 2)
    model.learn(50, reset_num_timesteps=False, callback=[EvaluateAtStart(), evaluation])  # nothing new at 100
    with np.load(tmp_path / "evaluations.npz") as data:
        assert list(data["timesteps"]) == [0, 50, 100, 150]


@pytest.mark.parametrize("callback", [EvaluateAtStart, lambda: RecordTransfer(beside_evaluations=True)])
def test_without_a_logging_eval_callback_the_run_folder_is_unknown(cartpole_zip, callback):
    model = _with_source(cartpole_zip)
    unlogged = EvalCallback(make_vec_env("CartPole-v1"), eval_freq=50)  # no log_path: no evaluations.npz
    expected = r"none of this training's callbacks is an EvalCallback with a log_path.*--eval-freq N with N > 0"
    with pytest.raises(TransferConfigError, match=expected):
        model.learn(10, callback=[callback(), unlogged])
