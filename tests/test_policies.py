import contextlib
import importlib

import numpy as np
import pytest
import torch as th
from conftest import CNN_KWARGS, MLP_KWARGS, TinyDictEnv, TinyImageEnv, make_model, q_values, sample_batch
from gymnasium import spaces
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from sb3_transfer.algorithms import linear_schedule
from torch import nn

from sb3_transfer import (
    SourceNotFoundError,
    TransferConfigError,
    TransferDQN,
    TransferDQNPolicy,
    TransferQRDQN,
    TransferQRDQNPolicy,
)

POLICIES = {DQN: TransferDQNPolicy, QRDQN: TransferQRDQNPolicy}
TRANSFER_ALGOS = {DQN: TransferDQN, QRDQN: TransferQRDQN}
FAST = dict(learning_starts=0, train_freq=1, batch_size=8, buffer_size=500, device="cpu")


def online(model):
    return model.policy.q_net if hasattr(model.policy, "q_net") else model.policy.quantile_net


def state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items() if isinstance(v, th.Tensor)}


@pytest.mark.parametrize("algo", [DQN, QRDQN])
@pytest.mark.parametrize(
    "env_fn, sb3_policy, policy_kwargs",
    [
        (lambda: "CartPole-v1", "MlpPolicy", dict(net_arch=[16])),
        (lambda: TinyImageEnv(), "CnnPolicy", dict(net_arch=[8], features_extractor_kwargs=dict(features_dim=8))),
        (lambda: TinyDictEnv(), "MultiInputPolicy", dict(net_arch=[8])),
    ],
    ids=["mlp", "cnn", "dict"],
)
def test_without_pretrained_trains_exactly_like_sb3_policies(algo, env_fn, sb3_policy, policy_kwargs):
    if algo is QRDQN:
        policy_kwargs = {**policy_kwargs, "n_quantiles": 3}
    # Built and trained one after the other: SB3 seeds the global RNGs at construction. Our policy of the same alias.
    ours = algo(TRANSFER_ALGOS[algo].policy_aliases[sb3_policy], env_fn(), policy_kwargs=policy_kwargs, seed=3, **FAST).learn(
        60
    )
    theirs = algo(sb3_policy, env_fn(), policy_kwargs=policy_kwargs, seed=3, **FAST).learn(60)
    a, b = state(online(ours)), state(online(theirs))
    assert a.keys() == b.keys() and all(th.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("algo", [DQN, QRDQN])
def test_pretrained_sets_architecture_and_transplants(algo, tmp_path):
    source = make_model(algo, "CartPole-v1", net_arch=[12, 10], activation_fn=nn.Tanh)
    source.save(tmp_path / "src.zip")
    given = dict(pretrained=str(tmp_path / "src.zip"), transfer="all")
    for model_class in (algo, TRANSFER_ALGOS[algo]):
        model = model_class(POLICIES[algo], "CartPole-v1", policy_kwargs=dict(given), **FAST)
        assert model.policy.net_arch == [12, 10] and model.policy.activation_fn is nn.Tanh
        obs = sample_batch(model.observation_space)
        assert th.equal(q_values(model, obs), q_values(source, obs))
        assert model.policy.transfer_report.group_actions()["head"] == {"copied"}
    # SB3's own algorithm keeps its policy_kwargs as given; ours keeps the architecture instead of the source.
    assert algo(POLICIES[algo], "CartPole-v1", policy_kwargs=dict(given), **FAST).policy_kwargs.items() >= given.items()
    assert "pretrained" not in model.policy_kwargs and "transfer" not in model.policy_kwargs
    assert model.policy_kwargs["net_arch"] == [12, 10] and model.policy_kwargs["activation_fn"] is nn.Tanh
    assert "src.zip" in model.policy_kwargs["pretrained_from"]


@pytest.mark.parametrize("algo", [DQN, QRDQN])
def test_frozen_groups_stay_bit_identical_while_head_trains(algo):
    policy_kwargs = dict(
        net_arch=[16, 16], freeze=["trunk.*"], optimizer_class=th.optim.AdamW, optimizer_kwargs=dict(weight_decay=0.5)
    )
    model = algo(POLICIES[algo], "CartPole-v1", policy_kwargs=policy_kwargs, max_grad_norm=0.01, seed=0, **FAST)
    assert model.policy.frozen_groups() == ["trunk.0", "trunk.1"]
    before = state(online(model))
    model.learn(100)
    after = state(online(model))
    mlp = "q_net" if algo is DQN else "quantile_net"
    for key in before:
        changed = not th.equal(before[key], after[key])
        assert changed == key.startswith(f"{mlp}.4."), key
    # The target network keeps following the online one: a sync copies the frozen values unchanged.
    target = model.policy.q_net_target if algo is DQN else model.policy.quantile_net_target
    target.load_state_dict(online(model).state_dict())
    assert all(th.equal(v, after[k]) for k, v in state(target).items())


def test_freeze_unfreeze_at_any_time_and_errors():
    model = DQN(TransferDQNPolicy, "CartPole-v1", policy_kwargs=dict(net_arch=[8, 8]), **FAST)
    policy = model.policy
    assert policy.freeze("trunk.*", "head") == ["trunk.0", "trunk.1", "head"]
    assert policy.unfreeze("trunk.1") == ["trunk.1"]
    assert policy.frozen_groups() == ["trunk.0", "head"]
    assert not policy.q_net.q_net[0].weight.requires_grad and policy.q_net.q_net[2].weight.requires_grad
    policy.unfreeze()
    assert policy.frozen_groups() == []
    with pytest.raises(
        TransferConfigError, match=r"freeze= pattern 'trunk\.9' matches no layer group.*trunk\.0, trunk\.1, head"
    ):
        policy.freeze("trunk.9")
    with pytest.raises(TransferConfigError, match="lr_scale"):
        DQN(TransferDQNPolicy, "CartPole-v1", policy_kwargs=dict(lr_scale={"nothing": 0.1}), **FAST)
    with pytest.raises(TransferConfigError, match=">= 0"):
        DQN(TransferDQNPolicy, "CartPole-v1", policy_kwargs=dict(lr_scale={"head": -1}), **FAST)


class BatchNormExtractor(BaseFeaturesExtractor):
    def __init__(self, observation_space: spaces.Box) -> None:
        super().__init__(observation_space, 8)
        self.net = nn.Sequential(nn.Linear(observation_space.shape[0], 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.net(observations)


def test_frozen_normalisation_runs_in_eval_mode():
    kwargs = dict(net_arch=[8], features_extractor_class=BatchNormExtractor, freeze=["features_extractor"])
    model = DQN(TransferDQNPolicy, "CartPole-v1", policy_kwargs=kwargs, seed=0, **FAST)
    before = state(model.policy.q_net.features_extractor)
    model.learn(50)
    model.policy.set_training_mode(True)
    assert not model.policy.q_net.features_extractor.training
    assert model.policy.q_net.q_net.training
    after = state(model.policy.q_net.features_extractor)
    assert all(th.equal(before[k], after[k]) for k in before)  # running statistics included


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_lr_scale_survives_sb3_learning_rate_updates(schedule):
    lr = 1e-3 if schedule == "constant" else linear_schedule(1e-3, 1e-4, 1.0)
    model = DQN(
        TransferDQNPolicy,
        "CartPole-v1",
        learning_rate=lr,
        policy_kwargs=dict(net_arch=[8, 8], lr_scale={"trunk.*": 0.1, "trunk.0": 0.01}),
        **FAST,
    )
    model.learn(40)
    expected = model.lr_schedule(model._current_progress_remaining)
    rates = model.policy.learning_rates()
    assert rates["head"] == pytest.approx(expected)
    assert rates["trunk.1"] == pytest.approx(expected * 0.1)
    assert rates["trunk.0"] == pytest.approx(expected * 0.01)  # later patterns win
    if schedule == "linear":
        assert expected < 1e-3
    model.policy.set_lr_scale({"head": 0.5})
    assert model.policy.learning_rates()["head"] == pytest.approx(expected * 0.5)


@pytest.mark.parametrize("algo", [DQN, QRDQN])
def test_save_delete_source_load_and_train_on(algo, tmp_path):
    source = make_model(algo, "CartPole-v1", **MLP_KWARGS)
    source.save(tmp_path / "src.zip")
    kwargs = dict(pretrained=str(tmp_path / "src.zip"), freeze=["trunk.0"], lr_scale={"trunk.1": 0.25})
    model = TRANSFER_ALGOS[algo]("MlpPolicy", "CartPole-v1", policy_kwargs=kwargs, seed=0, **FAST)
    model.learn(50)
    model.policy.freeze("trunk.1")  # changed since construction: must survive too
    model.save(tmp_path / "tuned.zip")
    (tmp_path / "src.zip").unlink()
    loaded = algo.load(tmp_path / "tuned.zip", env=make_vec_env("CartPole-v1"), device="cpu")  # SB3's own class
    obs = sample_batch(model.observation_space)
    assert th.equal(q_values(loaded, obs), q_values(model, obs))
    assert loaded.policy.frozen_groups() == ["trunk.0", "trunk.1"]
    assert loaded.policy.param_group("trunk.1")["lr_scale"] == 0.25
    frozen_before = state(online(loaded))
    loaded.learn(50, reset_num_timesteps=False)
    after = state(online(loaded))
    assert loaded.num_timesteps == 100
    assert any(not th.equal(frozen_before[k], after[k]) for k in after)  # the head trains on
    mlp = "q_net" if algo is DQN else "quantile_net"
    assert all(th.equal(frozen_before[k], after[k]) for k in after if k.startswith((f"{mlp}.0.", f"{mlp}.2.")))
    loaded.learn(10)
    assert loaded.policy.learning_rates()["trunk.1"] == pytest.approx(loaded.lr_schedule(1.0) * 0.25, rel=0.5)


def test_learning_on_never_transplants_again(cartpole_zip):
    model = DQN(TransferDQNPolicy, "CartPole-v1", policy_kwargs=dict(pretrained=str(cartpole_zip), transfer="all"), **FAST)
    policy = model.policy
    model.learn(50)
    model.learn(1, reset_num_timesteps=False)
    model.learn(1)
    assert model.policy is policy
    source = DQN.load(cartpole_zip, device="cpu").policy.q_net.state_dict()
    now = state(online(model))
    assert all(not th.equal(now[k], source[k]) for k in now)


def test_image_observations_with_frozen_cnn():
    source = make_model(DQN, TinyImageEnv(channels=3), **CNN_KWARGS)
    model = DQN(
        TransferDQNPolicy,
        TinyImageEnv(channels=4),
        policy_kwargs=dict(pretrained=source, freeze=["features_extractor"]),
        **FAST,
    )
    assert model.policy.transfer_report.group_actions()["features_extractor"] == {"copied", "adapted"}
    before = state(model.policy.q_net.features_extractor)
    model.learn(30)
    after = state(model.policy.q_net.features_extractor)
    assert all(th.equal(before[k], after[k]) for k in before)


def test_built_from_rl_zoo_style_strings(cartpole_zip):
    # rl-zoo3 imports a dotted policy name and eval()s a policy_kwargs string.
    module, _, name = "sb3_transfer.TransferDQNPolicy".rpartition(".")
    policy_class = getattr(importlib.import_module(module), name)
    policy_kwargs = eval(
        f"dict(pretrained='{cartpole_zip}', transfer='trunk', freeze=['trunk.0'], lr_scale={{'trunk.*': 0.1}})"
    )
    model = DQN(policy_class, "CartPole-v1", policy_kwargs=policy_kwargs, **FAST)
    assert model.policy.frozen_groups() == ["trunk.0"]
    assert model.policy.learning_rates()["trunk.1"] == pytest.approx(model.learning_rate * 0.1)
    model.learn(20)


def test_transfer_policy_with_adapter_and_other_actions(cartpole_zip):
    model = DQN(
        TransferDQNPolicy, "Acrobot-v1", policy_kwargs=dict(pretrained=str(cartpole_zip), action_map={0: 0, 2: 1}), **FAST
    )
    assert list(model.policy.layer_groups()) == ["adapter", "trunk.0", "trunk.1", "head"]
    assert model.policy.transfer_report.group_actions()["head"] == {"adapted"}
    model.learn(20)
    assert np.isfinite(q_values(model, sample_batch(model.observation_space)).numpy()).all()


def test_set_lr_scale_is_checked():
    model = DQN(TransferDQNPolicy, "CartPole-v1", policy_kwargs=dict(net_arch=[8]), **FAST)
    for bad in (-1, "x", float("nan")):
        with pytest.raises(TransferConfigError, match=">= 0"):
            model.policy.set_lr_scale({"head": bad})


def test_plain_sb3_weights_load_into_a_transfer_policy():
    plain = DQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8]), seed=1, **FAST)
    ours = DQN(TransferDQNPolicy, "CartPole-v1", policy_kwargs=dict(net_arch=[8], freeze=["trunk.0"]), **FAST)
    ours.policy.load_state_dict(plain.policy.state_dict())
    obs = sample_batch(ours.observation_space)
    assert th.equal(q_values(ours, obs), q_values(plain, obs))
    assert ours.policy.frozen_groups() == ["trunk.0"]
    assert set(ours.policy.state_dict()) == set(plain.policy.state_dict())  # nothing extra in the weights


def test_with_sb3s_own_algorithm_the_source_is_read_again_on_load(cartpole_zip, tmp_path):
    source = tmp_path / "src.zip"
    source.write_bytes(cartpole_zip.read_bytes())
    model = DQN(TransferDQNPolicy, "CartPole-v1", policy_kwargs=dict(pretrained=str(source)), **FAST)
    model.learn(20)
    model.save(tmp_path / "tuned.zip")
    loaded = DQN.load(tmp_path / "tuned.zip", device="cpu")
    obs = sample_batch(model.observation_space)
    assert th.equal(q_values(loaded, obs), q_values(model, obs))  # the fine-tuned weights, not the source's
    source.unlink()
    with pytest.raises(SourceNotFoundError, match="TransferDQN"):
        DQN.load(tmp_path / "tuned.zip", device="cpu")


@pytest.mark.parametrize("with_targets", [False, True], ids=["sb3", "sb3-before-2.4"])
def test_an_optimizer_state_saved_with_sb3s_policy_loads_into_a_transfer_policy(tmp_path, with_targets):
    sb3 = DQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8]), seed=1, **FAST)
    if with_targets:  # as SB3 < 2.4 saved DQN: the target network's parameters in the optimizer too
        sb3.policy.optimizer = th.optim.Adam(sb3.policy.parameters(), lr=1e-3)
    sb3.learn(40)
    sb3.save(tmp_path / "sb3.zip")
    context = pytest.warns(UserWarning, match="SB3 < 2.4") if with_targets else contextlib.nullcontext()
    with context:
        ours = DQN.load(tmp_path / "sb3.zip", custom_objects={"policy_class": TransferDQNPolicy}, device="cpu")
    assert [g["group"] for g in ours.policy.optimizer.param_groups] == ["trunk.0", "head"]
    expected = sb3.policy.optimizer.state_dict()["state"]
    got = ours.policy.optimizer.state_dict()["state"]
    assert len(got) == 4 and all(th.equal(got[i]["exp_avg"], expected[i]["exp_avg"]) for i in got)
    ours.set_env(make_vec_env("CartPole-v1"))
    ours.learn(20)
