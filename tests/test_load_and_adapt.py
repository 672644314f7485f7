import json

import numpy as np
import pytest
import torch as th
from conftest import (
    CNN_KWARGS,
    MLP_KWARGS,
    TinyDictEnv,
    TinyExtractor,
    TinyImageEnv,
    make_model,
    q_values,
    sample_batch,
)
from gymnasium import spaces
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from torch import nn

from sb3_transfer import (
    IncompatibleSpaceError,
    InputAdapter,
    InvalidSourceError,
    StrictTransferError,
    TransferConfigError,
    TransferReport,
    load_and_adapt,
)
from sb3_transfer.adapt import FINE_TUNING_LR_SCALE
from sb3_transfer.callbacks import warm_start_steps
from sb3_transfer.adapters import adapt_conv_channels


def online_net(model):
    return model.policy.q_net if hasattr(model.policy, "q_net") else model.policy.quantile_net


def target_net(model):
    return model.policy.q_net_target if hasattr(model.policy, "q_net_target") else model.policy.quantile_net_target


@pytest.mark.parametrize("algo", [DQN, QRDQN])
@pytest.mark.parametrize(
    "env_fn, policy_kwargs",
    [(lambda: "CartPole-v1", MLP_KWARGS), (lambda: TinyImageEnv(), CNN_KWARGS), (lambda: TinyDictEnv(), MLP_KWARGS)],
    ids=["mlp", "cnn", "dict"],
)
@pytest.mark.parametrize("as_zip", [True, False], ids=["zip", "model"])
def test_same_spaces_all_gives_equal_q_values(algo, env_fn, policy_kwargs, as_zip, tmp_path):
    source = make_model(algo, env_fn(), seed=1, **policy_kwargs)
    if as_zip:
        source.save(tmp_path / "source.zip")
    model = load_and_adapt(tmp_path / "source.zip" if as_zip else source, env_fn(), transfer="all", seed=2, verbose=0)
    assert isinstance(model, algo)
    obs = sample_batch(model.observation_space)
    assert th.equal(q_values(model, obs), q_values(source, obs))
    assert model.transfer_report.counts()["copied"] == len(online_net(source).state_dict())
    assert not model.transfer_report.by_action("initialised") and not model.transfer_report.by_action("dropped")


@pytest.mark.parametrize("algo", [DQN, QRDQN])
def test_cartpole_to_acrobot_copies_deeper_layers_and_adds_adapter(algo, tmp_path):
    source = make_model(algo, "CartPole-v1", seed=1, **MLP_KWARGS)
    source.save(tmp_path / "cartpole.zip")
    model = load_and_adapt(tmp_path / "cartpole.zip", "Acrobot-v1", seed=0, verbose=0)
    report = model.transfer_report
    assert report.group_actions() == {
        "adapter": {"initialised"},
        "trunk.0": {"copied"},
        "trunk.1": {"copied"},
        "head": {"initialised"},
    }
    src, tgt = online_net(source), online_net(model)
    mlp = "q_net" if algo is DQN else "quantile_net"
    for index in (0, 2):  # trunk.0 and trunk.1
        assert th.equal(getattr(tgt, mlp)[index].weight, getattr(src, mlp)[index].weight)
        assert th.equal(getattr(tgt, mlp)[index].bias, getattr(src, mlp)[index].bias)
    # The adapter starts as the identity on the 4 shared inputs: the pretrained trunk sees exactly those.
    assert isinstance(tgt.features_extractor, InputAdapter)
    adapter = tgt.features_extractor.adapter
    assert th.equal(adapter.weight[:, :4], th.eye(4)) and not adapter.bias.any()
    assert adapter.weight[:, 4:].abs().sum() > 0  # the new inputs are heard from the start
    obs = th.randn(5, 6)
    obs[:, 4:] = 0.0
    with th.no_grad():
        assert th.allclose(
            getattr(tgt, mlp)[:2](tgt.extract_features(obs, tgt.features_extractor)), getattr(src, mlp)[:2](obs[:, :4])
        )


def test_target_network_equals_online_network_after_transplant(cartpole_zip):
    model = load_and_adapt(cartpole_zip, "Acrobot-v1", transfer="all", action_map={0: 0, 2: 1}, verbose=0)
    online, target = online_net(model).state_dict(), target_net(model).state_dict()
    assert online.keys() == target.keys()
    assert all(th.equal(online[k], target[k]) for k in online)


@pytest.mark.parametrize("algo", [DQN, QRDQN])
def test_action_map_copies_head_rows_and_new_actions_start_at_mean(algo, tmp_path):
    source = make_model(algo, "CartPole-v1", seed=1, **MLP_KWARGS)
    source.save(tmp_path / "s.zip")
    model = load_and_adapt(tmp_path / "s.zip", "Acrobot-v1", transfer="all", action_map={0: 1, 2: 0}, verbose=0)
    assert model.transfer_report.group_actions()["head"] == {"adapted"}
    n_q = 5 if algo is QRDQN else 1
    src_head, tgt_head = online_net(source).state_dict(), online_net(model).state_dict()
    key = next(k for k in src_head if k.endswith(".4.weight"))
    src_rows = src_head[key].reshape(n_q, 2, -1)
    tgt_rows = tgt_head[key].reshape(n_q, 3, -1)
    assert th.equal(tgt_rows[:, 0], src_rows[:, 1])  # every quantile of the mapped action
    assert th.equal(tgt_rows[:, 2], src_rows[:, 0])
    assert th.allclose(tgt_rows[:, 1], src_rows.mean(dim=1))


def test_new_action_space_without_action_map_gets_new_head(cartpole_zip):
    model = load_and_adapt(cartpole_zip, "Acrobot-v1", transfer="all", verbose=0)
    (row,) = [r for r in model.transfer_report.rows if r.group == "head" and r.target_name.endswith("weight")]
    assert row.action == "initialised" and "action_map carries rows" in row.reason


@pytest.mark.parametrize(
    "source_algo, target_algo, how", [(QRDQN, DQN, "averaged"), (DQN, QRDQN, "repeated")], ids=["qr-to-dqn", "dqn-to-qr"]
)
def test_head_crosses_dqn_and_qrdqn_keeping_expected_q(source_algo, target_algo, how, tmp_path):
    source = make_model(source_algo, "CartPole-v1", seed=1, **MLP_KWARGS)
    model = load_and_adapt(source, "CartPole-v1", algo=target_algo, transfer="all", verbose=0)
    obs = sample_batch(model.observation_space)
    expected_q = lambda m, out: out.mean(dim=1) if isinstance(m, QRDQN) else out  # noqa: E731
    with th.no_grad():
        src_q = expected_q(
            source, source.policy.quantile_net(th.as_tensor(obs)) if source_algo is QRDQN else q_values(source, obs)
        )
    tgt_out = q_values(model, obs)
    assert th.allclose(expected_q(model, tgt_out), src_q, atol=1e-5)
    assert how in next(r.reason for r in model.transfer_report.rows if r.group == "head")


@pytest.mark.parametrize("n_in, n_out", [(4, 7), (5, 3), (4, 2), (3, 200)])
def test_quantile_count_change_keeps_q_values(n_in, n_out):
    source = make_model(QRDQN, "CartPole-v1", seed=1, n_quantiles=n_in, **MLP_KWARGS)
    model = load_and_adapt(source, "CartPole-v1", transfer="all", policy_kwargs=dict(n_quantiles=n_out), verbose=0)
    assert model.policy.n_quantiles == n_out
    obs = sample_batch(model.observation_space)
    out, src = q_values(model, obs), q_values(source, obs)
    assert th.allclose(out.mean(dim=1), src.mean(dim=1), atol=1e-5)
    if n_in == 2 * n_out:  # each target quantile is the mean of two source quantiles
        assert th.allclose(out[:, 0], src[:, :2].mean(dim=1), atol=1e-5)


@pytest.mark.parametrize("channels", [1, 4])
def test_cnn_channel_change_adapts_first_conv_and_copies_the_rest(channels, tmp_path):
    source = make_model(DQN, TinyImageEnv(channels=3), seed=1, **CNN_KWARGS)
    source.save(tmp_path / "img.zip")
    model = load_and_adapt(tmp_path / "img.zip", TinyImageEnv(channels=channels), transfer="all", verbose=0)
    rows = {r.target_name: r for r in model.transfer_report.rows}
    assert rows["q_net.features_extractor.cnn.0.weight"].action == "adapted"
    assert rows["q_net.features_extractor.cnn.0.bias"].action == "copied"
    src, tgt = source.policy.q_net.state_dict(), model.policy.q_net.state_dict()
    assert tgt["features_extractor.cnn.0.weight"].shape[1] == channels
    assert th.equal(
        tgt["features_extractor.cnn.0.weight"], adapt_conv_channels(src["features_extractor.cnn.0.weight"], channels)
    )
    for key in src:
        if key != "features_extractor.cnn.0.weight":
            assert th.equal(tgt[key], src[key]), key


@pytest.mark.parametrize("channels", [1, 2, 3, 5, 6, 9])
def test_adapt_conv_channels_keeps_response_to_alike_channels(channels):
    weight = th.randn(8, 3, 4, 4)
    image = th.rand(1, 1, 4, 4)
    adapted = adapt_conv_channels(weight, channels)
    assert adapted.shape == (8, channels, 4, 4)
    expected = nn.functional.conv2d(image.expand(1, 3, 4, 4), weight)
    assert th.allclose(nn.functional.conv2d(image.expand(1, channels, 4, 4), adapted), expected, atol=1e-5)


def test_adapt_conv_channels_follows_timm_for_multiples():
    weight = th.randn(8, 3, 2, 2)
    assert th.allclose(adapt_conv_channels(weight, 6), weight.repeat(1, 2, 1, 1) / 2)
    assert th.allclose(adapt_conv_channels(weight, 1), weight.sum(dim=1, keepdim=True))


def test_strict_raises_when_anything_selected_cannot_be_copied(cartpole_zip):
    with pytest.raises(StrictTransferError, match="adapter"):
        load_and_adapt(cartpole_zip, "Acrobot-v1", strict=True, verbose=0)
    with pytest.raises(StrictTransferError, match="head"):
        load_and_adapt(cartpole_zip, "Acrobot-v1", transfer=["head"], strict=True, verbose=0)
    model = load_and_adapt(cartpole_zip, "CartPole-v1", strict=True, verbose=0)
    assert model.transfer_report.group_actions()["trunk.1"] == {"copied"}


def test_mismatched_layers_are_listed_never_dropped_silently(cartpole_zip):
    model = load_and_adapt(cartpole_zip, "CartPole-v1", transfer="all", policy_kwargs=dict(net_arch=[16, 8]), verbose=0)
    report = model.transfer_report
    assert report.group_actions() == {"trunk.0": {"copied"}, "trunk.1": {"initialised"}, "head": {"initialised"}}
    assert all("shape mismatch" in r.reason for r in report.rows if r.group != "trunk.0")
    assert any("net_arch" in note for note in report.notes)
    fewer = load_and_adapt(cartpole_zip, "CartPole-v1", transfer="all", policy_kwargs=dict(net_arch=[16]), verbose=0)
    dropped = fewer.transfer_report.by_action("dropped")
    assert {r.source_name for r in dropped} == {"q_net.q_net.2.weight", "q_net.q_net.2.bias"}  # trunk.1; head goes to head
    # Every source tensor appears in the report, used or not.
    assert {r.source_name for r in fewer.transfer_report.rows if r.source_name} == {
        f"q_net.{k}" for k in make_model(DQN, "CartPole-v1", **MLP_KWARGS).policy.q_net.state_dict()
    }


def test_transfer_presets_and_patterns(cartpole_zip):
    features = load_and_adapt(cartpole_zip, "CartPole-v1", transfer="features", verbose=0).transfer_report
    assert features.by_action("copied") == []  # FlattenExtractor has no weights
    assert load_and_adapt(cartpole_zip, "CartPole-v1", transfer=["trunk.1"], verbose=0).transfer_report.group_actions() == {
        "trunk.0": {"initialised"},
        "trunk.1": {"copied"},
        "head": {"initialised"},
    }
    with pytest.raises(TransferConfigError, match=r"matches no layer group.*trunk\.0, trunk\.1, head"):
        load_and_adapt(cartpole_zip, "CartPole-v1", transfer=["trunk.7"], verbose=0)
    with pytest.raises(TransferConfigError, match="transfer="):
        load_and_adapt(cartpole_zip, "CartPole-v1", transfer=3, verbose=0)


@pytest.mark.parametrize(
    "action_map, match",
    [
        ({5: 0}, "target action 5 does not exist"),
        ({0: 2}, "source action 2 does not exist"),
        ({0: "a"}, "integers"),
        ({}, "non-empty"),
    ],
)
def test_bad_action_map_is_named(cartpole_zip, action_map, match):
    with pytest.raises(TransferConfigError, match=match):
        load_and_adapt(cartpole_zip, "Acrobot-v1", action_map=action_map, verbose=0)


def test_numpy_integers_are_accepted_in_action_map(cartpole_zip):
    model = load_and_adapt(cartpole_zip, "Acrobot-v1", action_map={np.int64(0): np.int64(1)}, verbose=0)
    assert model.transfer_report.group_actions()["head"] == {"adapted"}


def test_continuous_action_space_is_refused(cartpole_zip):
    with pytest.raises(IncompatibleSpaceError, match=r"Discrete.*Pendulum-v1"):
        load_and_adapt(cartpole_zip, "Pendulum-v1", verbose=0)
    # SAC acts on Box actions only: the other way round.
    with pytest.raises(IncompatibleSpaceError, match=r"SAC needs a Box .* CartPole-v1"):
        load_and_adapt(cartpole_zip, "CartPole-v1", algo="SAC", verbose=0)


@pytest.mark.parametrize("algo, match", [("crossq", "not supported"), (int, "not supported")])
def test_unknown_algo_is_refused(cartpole_zip, algo, match):
    with pytest.raises(TransferConfigError, match=match):
        load_and_adapt(cartpole_zip, "CartPole-v1", algo=algo, verbose=0)


def test_unknown_env_id_is_named(cartpole_zip):
    with pytest.raises(TransferConfigError, match="NoSuchEnv-v0"):
        load_and_adapt(cartpole_zip, "NoSuchEnv-v0", verbose=0)


def test_algo_defaults_to_the_sources(cartpole_qrdqn_zip):
    model = load_and_adapt(cartpole_qrdqn_zip, "CartPole-v1", verbose=0)
    assert isinstance(model, QRDQN) and model.policy.n_quantiles == 5
    assert isinstance(load_and_adapt(cartpole_qrdqn_zip, "CartPole-v1", algo="DQN", verbose=0), DQN)


def test_architecture_follows_the_source(tmp_path):
    source = make_model(DQN, "CartPole-v1", net_arch=[8, 12, 6], activation_fn=nn.Tanh)
    source.save(tmp_path / "tanh.zip")
    model = load_and_adapt(tmp_path / "tanh.zip", "CartPole-v1", verbose=0)
    assert model.policy.net_arch == [8, 12, 6] and model.policy.activation_fn is nn.Tanh


def test_fine_tuning_defaults_are_reported_and_overridable(cartpole_zip, tmp_path):
    pretrained_head = load_and_adapt(cartpole_zip, "CartPole-v1", transfer="all", verbose=0)
    assert pretrained_head.exploration_initial_eps == pretrained_head.exploration_final_eps == 0.05
    assert pretrained_head.exploration_schedule(1.0) == 0.05
    settings = pretrained_head.transfer_report.settings
    assert set(settings) == {"exploration_initial_eps", "lr_scale"}
    lr = pretrained_head.learning_rate
    assert pretrained_head.policy.learning_rates() == {
        g: pytest.approx(lr * FINE_TUNING_LR_SCALE) for g in settings["lr_scale"]["value"]
    }
    # The pretrained policy could fill the buffer before updates start: the report says how.
    (note,) = [n for n in pretrained_head.transfer_report.notes if "PolicyWarmStart" in n]
    assert "learning starts at timestep 100" in note and "PolicyWarmStart()" in str(pretrained_head.transfer_report)
    assert f"holds learning for {warm_start_steps(pretrained_head)} timesteps" in note
    late = load_and_adapt(cartpole_zip, "CartPole-v1", transfer="all", learning_starts=5000, verbose=0)
    assert not any("PolicyWarmStart" in n for n in late.transfer_report.notes)  # SB3's own warm-up covers it
    # A new head learns at the full rate from SB3's exploration schedule; the pretrained trunk at a tenth.
    new_head = load_and_adapt(cartpole_zip, "CartPole-v1", verbose=0)
    assert not any("PolicyWarmStart" in n for n in new_head.transfer_report.notes)  # a new head has no policy yet
    assert new_head.exploration_initial_eps == 1.0 and set(new_head.transfer_report.settings) == {"lr_scale"}
    assert new_head.policy.learning_rates()["head"] == pytest.approx(lr)
    assert new_head.policy.learning_rates()["trunk.0"] == pytest.approx(lr * FINE_TUNING_LR_SCALE)
    yours = load_and_adapt(
        cartpole_zip, "CartPole-v1", transfer="all", exploration_initial_eps=0.5, policy_kwargs=dict(lr_scale={"head": 0.5})
    )
    assert yours.exploration_initial_eps == 0.5 and not yours.transfer_report.settings
    assert yours.policy.learning_rates() == {"trunk.0": lr, "trunk.1": lr, "head": pytest.approx(lr * 0.5)}
    # Saved with the model: a plain DQN.load fine-tunes at the same rates.
    path = tmp_path / "tuned.zip"
    pretrained_head.save(path)
    assert DQN.load(path).policy.learning_rates() == pretrained_head.policy.learning_rates()


def test_report_is_readable_and_serialisable(cartpole_zip, capsys):
    model = load_and_adapt(cartpole_zip, "Acrobot-v1", transfer="all", action_map={0: 0}, verbose=1)
    report = model.transfer_report
    assert isinstance(report, TransferReport)
    printed = capsys.readouterr().out
    assert str(report) in printed
    for word in ("copied", "adapted", "initialised", "q_net.q_net.2.weight", "exploration_initial_eps", "cartpole_dqn.zip"):
        assert word in printed
    data = json.loads(json.dumps(report.to_dict()))
    assert data["counts"] == report.counts() and len(data["rows"]) == len(report.rows)
    assert data["rows"][0]["target_shape"] == list(report.rows[0].target_shape)


def test_custom_extractor_needs_class_or_trust(tmp_path):
    source = make_model(DQN, "CartPole-v1", net_arch=[8], features_extractor_class=TinyExtractor)
    source.save(tmp_path / "custom.zip")
    with pytest.raises(InvalidSourceError, match=r"TinyExtractor.*trust_source=True"):
        load_and_adapt(tmp_path / "custom.zip", "CartPole-v1", verbose=0)
    given = load_and_adapt(
        tmp_path / "custom.zip",
        "CartPole-v1",
        transfer="all",
        policy_kwargs=dict(features_extractor_class=TinyExtractor),
        verbose=0,
    )
    trusted = load_and_adapt(tmp_path / "custom.zip", "CartPole-v1", transfer="all", trust_source=True, verbose=0)
    obs = sample_batch(source.observation_space)
    for model in (given, trusted):
        assert model.transfer_report.group_actions()["features_extractor"] == {"copied"}
        assert th.equal(q_values(model, obs), q_values(source, obs))


def test_vector_encoder_module_becomes_features_extractor_behind_adapter():
    encoder = nn.Sequential(nn.Linear(4, 10), nn.ReLU())
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    model = load_and_adapt(encoder, "Acrobot-v1", verbose=0)
    assert model.policy.q_net.features_dim == 10
    assert model.transfer_report.group_actions()["features_extractor"] == {"copied"}
    assert model.transfer_report.group_actions()["adapter"] == {"initialised"}
    inner = model.policy.q_net.features_extractor.extractor.module
    assert th.equal(inner.get_submodule("0").weight, encoder[0].weight) and inner is not encoder
    assert all(th.equal(v, encoder.state_dict()[k]) for k, v in before.items())


def test_image_encoder_module_serves_image_task_with_other_channels():
    encoder = nn.Sequential(nn.Conv2d(3, 4, 6, stride=6), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=3))
    model = load_and_adapt(encoder, TinyImageEnv(channels=4), verbose=0)
    assert model.policy.q_net.features_dim == 4 * 2 * 2
    rows = {r.target_name: r for r in model.transfer_report.rows}
    assert rows["q_net.features_extractor.module.0.weight"].action == "adapted"
    assert rows["q_net.features_extractor.module.2.weight"].action == "copied"
    assert encoder[0].in_channels == 3  # the caller's module is left alone
    model.learn(16)


def test_encoder_that_cannot_take_the_observations_is_named():
    with pytest.raises(InvalidSourceError, match="Sequential failed on a sample observation"):
        load_and_adapt(nn.Sequential(nn.Conv2d(3, 4, 3)), "CartPole-v1", verbose=0)


def test_adapted_model_trains_saves_and_loads_with_plain_sb3(cartpole_zip, tmp_path):
    model = load_and_adapt(cartpole_zip, "Acrobot-v1", learning_starts=0, train_freq=1, verbose=0)
    model.learn(64)
    model.save(tmp_path / "acrobot.zip")
    loaded = DQN.load(tmp_path / "acrobot.zip", device="cpu")
    obs = sample_batch(model.observation_space)
    assert th.equal(q_values(loaded, obs), q_values(model, obs))


def test_adapted_model_can_be_a_source_again(cartpole_zip, tmp_path):
    first = load_and_adapt(cartpole_zip, "Acrobot-v1", verbose=0)
    first.save(tmp_path / "acrobot.zip")
    again = load_and_adapt(tmp_path / "acrobot.zip", "Acrobot-v1", transfer="all", strict=True, verbose=0)
    obs = sample_batch(first.observation_space)
    assert th.equal(q_values(again, obs), q_values(first, obs))


def test_input_adapter_for_fewer_inputs_reads_missing_ones_as_zero():
    adapter = InputAdapter(spaces.Box(-1, 1, (3,)), adapted_dim=5)
    assert th.equal(adapter.adapter.weight, th.eye(5, 3)) and adapter.features_dim == 5
