"""Transfer for actor-critic algorithms (PPO, A2C, MaskablePPO): reading, groups, transplant, policies, saving."""

from __future__ import annotations

import json
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import QRDQN, MaskablePPO
from sb3_contrib.common.envs import InvalidActionEnvDiscrete
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_transfer.callbacks import GradualUnfreeze
from sb3_transfer import (
    InvalidSourceError,
    SourceNotFoundError,
    TransferA2C,
    TransferActorCriticPolicy,
    TransferConfigError,
    TransferMaskablePPO,
    TransferPPO,
    UnsupportedSourceError,
    load_and_adapt,
    read_source,
)
from conftest import CNN_KWARGS, TinyDictEnv, TinyImageEnv

ROLLOUT = dict(n_steps=16, seed=0, device="cpu")
# PPO's default batch of 64 over a rollout of 16: fine for these tests, which train for a few steps at most.
pytestmark = pytest.mark.filterwarnings("ignore:You have specified a mini-batch size")


def make_ac(algo, env, **policy_kwargs):
    """A small, untrained actor-critic model (its random weights are as good a source as any for transplant tests)."""
    if isinstance(env, TinyImageEnv):
        policy, policy_kwargs = "CnnPolicy", {**CNN_KWARGS, **policy_kwargs}
    else:
        policy = "MultiInputPolicy" if isinstance(env, TinyDictEnv) else "MlpPolicy"
        policy_kwargs.setdefault("net_arch", dict(pi=[8], vf=[6, 4]))
    extra = dict(batch_size=16) if algo in (PPO, MaskablePPO) else {}
    # A log_std away from 0, so that a head left at its initial value would show.
    if isinstance(gym.make(env).action_space if isinstance(env, str) else env.action_space, spaces.Box):
        policy_kwargs.setdefault("log_std_init", -0.7)
    return algo(policy, env, policy_kwargs=policy_kwargs, **ROLLOUT, **extra)


def observations(model, n=6):
    space = model.observation_space
    samples = [space.sample() for _ in range(n)]
    if isinstance(space, spaces.Dict):
        batch = {k: np.stack([s[k] for s in samples]) for k in space.spaces}
    else:
        batch = np.stack(samples)
    return model.policy.obs_to_tensor(batch)[0]


def outputs(model, obs):
    """What a policy does on a batch: its action distribution's parameters and its values."""
    with th.no_grad():
        dist = model.policy.get_distribution(obs).distribution
        params = [dist.probs] if hasattr(dist, "probs") else [dist.mean, dist.stddev]
        return [*params, model.policy.predict_values(obs)]


ENVS = {
    "discrete": lambda: "CartPole-v1",
    "box": lambda: "Pendulum-v1",
    "image": TinyImageEnv,
    "dict": TinyDictEnv,
}


@pytest.mark.parametrize("algo, transfer_algo", [(PPO, TransferPPO), (A2C, TransferA2C)], ids=["ppo", "a2c"])
@pytest.mark.parametrize("env", list(ENVS))
@pytest.mark.parametrize("share", [True, False], ids=["shared", "unshared"])
def test_same_spaces_all_gives_the_same_policy_and_values(algo, transfer_algo, env, share, tmp_path):
    source = make_ac(algo, ENVS[env](), share_features_extractor=share)
    source.save(tmp_path / "source.zip")
    model = load_and_adapt(tmp_path / "source.zip", ENVS[env](), transfer="all", verbose=0, **ROLLOUT)
    assert type(model) is transfer_algo  # the algorithm the zip was trained with
    assert model.transfer_report.counts()["initialised"] == 0
    obs = observations(source)
    for ours, theirs in zip(outputs(model, obs), outputs(source, obs), strict=True):
        assert th.equal(ours, theirs)
    groups = list(model.policy.layer_groups())
    if env == "image":
        assert ("features_extractor" in groups) is share
        assert ("vf.features_extractor" in groups) is not share


def test_group_names_of_an_actor_critic_policy():
    model = make_ac(PPO, TinyImageEnv(), share_features_extractor=False, net_arch=dict(pi=[8], vf=[6, 4]))
    policy = TransferPPO("CnnPolicy", TinyImageEnv(), policy_kwargs=dict(pretrained=model, transfer="all"), **ROLLOUT).policy
    assert list(policy.layer_groups()) == [
        "pi.features_extractor",
        "pi.trunk.0",
        "pi.head",
        "vf.features_extractor",
        "vf.trunk.0",
        "vf.trunk.1",
        "vf.head",
    ]


def test_a_shared_extractor_starts_both_extractors_of_an_unshared_target():
    source = make_ac(PPO, TinyImageEnv())
    model = load_and_adapt(
        source, TinyImageEnv(), transfer="features", policy_kwargs=dict(share_features_extractor=False), verbose=0, **ROLLOUT
    )
    rows = {(r.group, r.target_name): r for r in model.transfer_report.rows}
    row = rows[("vf.features_extractor", "vf_features_extractor.cnn.0.weight")]
    assert row.action == "copied" and "from features_extractor" in row.reason
    for name in ("pi_features_extractor", "vf_features_extractor"):
        assert th.equal(model.policy.get_submodule(name).cnn[0].weight, source.policy.features_extractor.cnn[0].weight)


def test_trunk_carries_over_between_dqn_and_ppo():
    dqn = DQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8, 8]), buffer_size=100, device="cpu")
    ppo = load_and_adapt(dqn, "CartPole-v1", algo="PPO", transfer="trunk", verbose=0, **ROLLOUT)
    assert type(ppo) is TransferPPO
    for net in ("policy_net", "value_net"):
        for i in (0, 2):
            layer = ppo.policy.mlp_extractor.get_submodule(f"{net}.{i}")
            assert th.equal(layer.weight, dqn.q_net.q_net[i].weight)
    carried = {r.group for r in ppo.transfer_report.rows if r.action == "copied"}
    assert carried == {"pi.trunk.0", "pi.trunk.1", "vf.trunk.0", "vf.trunk.1"}
    back = load_and_adapt(ppo, "CartPole-v1", algo="DQN", transfer="trunk", verbose=0, buffer_size=100)
    assert th.equal(back.q_net.q_net[0].weight, ppo.policy.mlp_extractor.policy_net[0].weight)
    assert any("from pi.trunk.0" in r.reason for r in back.transfer_report.rows)


class WideBox(gym.Env):
    """Pendulum-sized observations, ``dims`` continuous action dimensions."""

    def __init__(self, dims: int = 2) -> None:
        self.observation_space = spaces.Box(-8, 8, (3,), np.float32)
        self.action_space = spaces.Box(-2, 2, (dims,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, True, {}


def test_box_dimensions_map_the_mean_and_log_std_rows():
    source = make_ac(PPO, "Pendulum-v1")
    model = load_and_adapt(source, WideBox(3), action_map={0: 0, 2: 0}, verbose=0, **ROLLOUT)
    head, src_head = model.policy.action_net, source.policy.action_net
    for dim in (0, 2):
        assert th.equal(head.weight[dim], src_head.weight[0])
        assert th.equal(model.policy.log_std[dim], source.policy.log_std[0])
    assert th.equal(head.weight[1], src_head.weight[0])  # an unmapped dimension starts at the mapped rows' mean
    reasons = {r.reason for r in model.transfer_report.rows if r.group == "pi.head"}
    assert any("action dimensions 0<-0, 2<-0" in reason for reason in reasons)
    # Without a map, another number of dimensions gets a new head, and the report says why.
    model = load_and_adapt(source, WideBox(2), transfer="all", verbose=0, **ROLLOUT)
    assert {r.action for r in model.transfer_report.rows if r.group == "pi.head"} == {"initialised"}


def test_a_box_head_does_not_become_a_discrete_one():
    source = make_ac(PPO, WideBox(2))
    model = load_and_adapt(source, gym.make("CartPole-v1"), transfer="all", verbose=0, **ROLLOUT)
    rows = [r for r in model.transfer_report.rows if r.group == "pi.head"]
    assert {r.action for r in rows} == {"initialised", "dropped"}
    assert any("source's actions are Box, the target's Discrete" in r.reason for r in rows)
    with pytest.raises(TransferConfigError, match=r"action_map= cannot be applied.*Box"):
        load_and_adapt(source, "CartPole-v1", action_map={0: 0}, verbose=0, **ROLLOUT)


class PaddedCartPole(gym.ObservationWrapper):
    """CartPole with two more observation inputs, always 0."""

    def __init__(self) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.observation_space = spaces.Box(-np.inf, np.inf, (6,), np.float32)

    def observation(self, observation):
        return np.concatenate([observation, np.zeros(2, np.float32)])


@pytest.mark.parametrize("share", [True, False], ids=["shared", "unshared"])
def test_a_larger_observation_gets_an_input_adapter(share):
    source = make_ac(PPO, "CartPole-v1", share_features_extractor=share)
    model = load_and_adapt(source, PaddedCartPole(), transfer="all", verbose=0, **ROLLOUT)
    groups = list(model.policy.layer_groups())
    assert (["adapter"] if share else ["pi.adapter", "vf.adapter"]) == [g for g in groups if g.endswith("adapter")]
    obs = th.as_tensor(np.random.default_rng(0).normal(size=(5, 4)), dtype=th.float32)
    padded = th.cat([obs, th.zeros(5, 2)], dim=1)
    with th.no_grad():
        assert th.allclose(model.policy.predict_values(padded), source.policy.predict_values(obs), atol=1e-6)
        probs = model.policy.get_distribution(padded).distribution.probs
        assert th.allclose(probs, source.policy.get_distribution(obs).distribution.probs, atol=1e-6)


def test_frozen_groups_and_learning_rate_factors_with_sb3s_own_ppo(tmp_path):
    source = make_ac(PPO, "CartPole-v1")
    source.save(tmp_path / "source.zip")
    kwargs = dict(pretrained=str(tmp_path / "source.zip"), freeze=["pi.trunk.*"], lr_scale={"*": 0.1, "vf.*": 1.0})
    model = PPO(TransferActorCriticPolicy, "CartPole-v1", policy_kwargs=kwargs, learning_rate=1e-3, batch_size=16, **ROLLOUT)
    assert model.policy.learning_rates() == pytest.approx(
        {"pi.trunk.0": 1e-4, "pi.head": 1e-4, "vf.trunk.0": 1e-3, "vf.trunk.1": 1e-3, "vf.head": 1e-3}
    )
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(32)
    after = model.policy.state_dict()
    assert th.equal(after["mlp_extractor.policy_net.0.weight"], before["mlp_extractor.policy_net.0.weight"])
    assert not th.equal(after["action_net.weight"], before["action_net.weight"])
    assert not th.equal(after["value_net.weight"], before["value_net.weight"])


def test_saved_model_loads_with_sb3s_ppo_without_the_source(tmp_path):
    source = make_ac(PPO, "Pendulum-v1")
    model = TransferPPO(
        "MlpPolicy",
        "Pendulum-v1",
        policy_kwargs=dict(pretrained=source, transfer="all", freeze=["vf.trunk.0"]),
        batch_size=16,
        **ROLLOUT,
    )
    model.learn(32)
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    assert type(loaded.policy) is TransferActorCriticPolicy
    assert "pretrained" not in loaded.policy_kwargs and loaded.policy_kwargs["net_arch"] == dict(pi=[8], vf=[6, 4])
    assert loaded.policy.frozen_groups() == ["vf.trunk.0"]
    obs = observations(model)
    for ours, theirs in zip(outputs(loaded, obs), outputs(model, obs), strict=True):
        assert th.equal(ours, theirs)
    # And it is a source itself, read from its zip without unpickling.
    assert read_source(tmp_path / "model.zip").net_arch == dict(pi=[8], vf=[6, 4])


def test_without_a_source_it_builds_what_sb3s_policy_builds():
    ours = PPO(TransferActorCriticPolicy, "CartPole-v1", **ROLLOUT)
    theirs = PPO("MlpPolicy", "CartPole-v1", **ROLLOUT)
    assert isinstance(ours.policy, ActorCriticPolicy)
    for (name, a), (_, b) in zip(ours.policy.state_dict().items(), theirs.policy.state_dict().items(), strict=True):
        assert th.equal(a, b), name


def test_maskable_ppo(tmp_path):
    env = InvalidActionEnvDiscrete(dim=10, n_invalid_actions=3)
    source = MaskablePPO("MlpPolicy", env, policy_kwargs=dict(net_arch=[8]), n_steps=16, batch_size=16, seed=0)
    source.save(tmp_path / "source.zip")
    assert read_source(tmp_path / "source.zip").trained_with == "MaskablePPO"
    model = load_and_adapt(tmp_path / "source.zip", env, transfer="all", verbose=0, n_steps=16, batch_size=16, seed=1)
    assert type(model) is TransferMaskablePPO
    obs = observations(source)
    with th.no_grad():
        probs = model.policy.get_distribution(obs).distribution.probs
        assert th.equal(probs, source.policy.get_distribution(obs).distribution.probs)
    model.learn(32)


@pytest.mark.parametrize("algo", [DQN, QRDQN])
def test_value_based_targets_refuse_box_actions(algo):
    source = make_ac(PPO, "Pendulum-v1")
    with pytest.raises(Exception, match="Discrete action space"):
        load_and_adapt(source, "Pendulum-v1", algo=algo, verbose=0)


@pytest.mark.parametrize("full_std", [True, False])
def test_gsde_actors_carry_over_into_gsde_actors(full_std, tmp_path):
    """rl-zoo3's tuned PPO for Pendulum and other continuous tasks explores with gSDE: its log_std is a matrix."""
    kwargs = dict(net_arch=[8], full_std=full_std, log_std_init=-1.0)
    source = PPO("MlpPolicy", "Pendulum-v1", use_sde=True, policy_kwargs=kwargs, batch_size=16, **ROLLOUT)
    source.save(tmp_path / "source.zip")
    assert read_source(tmp_path / "source.zip").use_sde
    model = load_and_adapt(tmp_path / "source.zip", "Pendulum-v1", transfer="all", verbose=0, **ROLLOUT)
    assert model.use_sde and model.transfer_report.counts()["initialised"] == 0
    obs = observations(source)
    for ours, theirs in zip(outputs(model, obs), outputs(source, obs), strict=True):
        assert th.equal(ours, theirs)
    # Into an actor without gSDE, the matrix has no place: log_std starts fresh, the report says so; the mean carries.
    model = load_and_adapt(tmp_path / "source.zip", "Pendulum-v1", transfer="all", use_sde=False, verbose=0, **ROLLOUT)
    rows = {r.target_name: r for r in model.transfer_report.rows}
    assert rows["log_std"].action == "initialised" and "shape mismatch" in rows["log_std"].reason
    assert rows["action_net.weight"].action == "copied"
    assert th.equal(model.policy.action_net.weight, source.policy.action_net.weight)


def test_layers_shared_by_actor_and_critic_are_named():
    """SB3 < 1.8 could share hidden layers between actor and critic (``mlp_extractor.shared_net``)."""
    state = {
        "mlp_extractor.shared_net.0.weight": th.zeros(8, 4),
        "mlp_extractor.shared_net.0.bias": th.zeros(8),
        "action_net.weight": th.zeros(2, 8),
        "action_net.bias": th.zeros(2),
        "value_net.weight": th.zeros(1, 8),
        "value_net.bias": th.zeros(1),
    }
    with pytest.raises(UnsupportedSourceError, match=r"shared by actor and critic \(SB3 < 1\.8\)"):
        read_source(state)


def test_a_value_net_without_an_action_net_is_no_actor_critic():
    with pytest.raises(InvalidSourceError, match=r"does not hold an SB3 DQN / QR-DQN Q-network, an actor-critic policy"):
        read_source({"value_net.weight": th.zeros(1, 8), "value_net.bias": th.zeros(1)})


@pytest.mark.parametrize("layout", ["beside", "zoo"])
def test_the_sources_vecnormalize_statistics_carry_over(layout, tmp_path):
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]))
    source = PPO("MlpPolicy", venv, policy_kwargs=dict(net_arch=[8]), batch_size=16, **ROLLOUT)
    source.learn(32)  # the statistics move away from their start
    source.save(tmp_path / "Pendulum-v1.zip")
    folder = tmp_path if layout == "beside" else tmp_path / "Pendulum-v1"  # rl-zoo3 saves them in a folder of that name
    folder.mkdir(exist_ok=True)
    venv.save(folder / "vecnormalize.pkl")
    path = tmp_path / "Pendulum-v1.zip"
    model = load_and_adapt(path, "Pendulum-v1", transfer="all", vecnormalize=True, verbose=0, **ROLLOUT)
    normalizer = model.get_vec_normalize_env()
    assert isinstance(normalizer, VecNormalize) and normalizer.training
    assert np.array_equal(normalizer.obs_rms.mean, venv.obs_rms.mean) and normalizer.obs_rms.count == venv.obs_rms.count
    assert any("VecNormalize statistics" in note for note in model.transfer_report.notes)
    with pytest.raises(SourceNotFoundError, match=r"VecNormalize statistics .*x\.pkl' does not exist"):
        load_and_adapt(path, "Pendulum-v1", vecnormalize=tmp_path / "none" / "x.pkl", verbose=0)
    (folder / "vecnormalize.pkl").unlink()
    with pytest.raises(SourceNotFoundError, match=r"no vecnormalize\.pkl beside"):
        load_and_adapt(path, "Pendulum-v1", vecnormalize=True, verbose=0)


def test_gradual_unfreeze_leaves_the_heads_of_an_actor_critic_learning():
    source = make_ac(PPO, "CartPole-v1")
    model = load_and_adapt(source, "CartPole-v1", transfer="all", verbose=0, batch_size=16, **ROLLOUT)
    unfreeze = GradualUnfreeze(every=16)
    model.learn(32, callback=unfreeze)
    assert "pi.head" not in model.policy.frozen_groups() and "vf.head" not in model.policy.frozen_groups()
    assert model.policy.frozen_groups() == ["pi.trunk.0"]  # unfrozen from the top: vf.trunk.1, vf.trunk.0, ...


class MultiDiscreteCartPole(gym.Env):
    """CartPole-sized observations, MultiDiscrete([3, 2]) actions."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1, 1, (4,), np.float32)
        self.action_space = spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, True, {}


def test_a_head_of_another_kind_of_action_space_carries_at_the_same_shape():
    source = make_ac(PPO, MultiDiscreteCartPole())
    model = load_and_adapt(source, MultiDiscreteCartPole(), transfer="all", verbose=0, **ROLLOUT)
    assert {r.action for r in model.transfer_report.rows if r.group == "pi.head"} == {"copied"}
    obs = observations(source)
    with th.no_grad():
        ours, theirs = model.policy.get_distribution(obs), source.policy.get_distribution(obs)
        assert all(th.equal(a.probs, b.probs) for a, b in zip(ours.distribution, theirs.distribution, strict=True))


def test_other_actor_critic_algorithms_are_named(tmp_path):
    from sb3_contrib import TRPO, RecurrentPPO

    RecurrentPPO("MlpLstmPolicy", "CartPole-v1", n_steps=16, batch_size=16, device="cpu").save(tmp_path / "rppo.zip")
    with pytest.raises(UnsupportedSourceError, match="RecurrentPPO"):
        read_source(tmp_path / "rppo.zip")
    TRPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, device="cpu").save(tmp_path / "trpo.zip")
    assert read_source(tmp_path / "trpo.zip").trained_with == "TRPO"  # its policy is PPO's: it reads as one


def test_box_metadata_that_disagrees_with_the_head_is_refused(tmp_path):
    make_ac(PPO, WideBox(2)).save(tmp_path / "box.zip")
    with zipfile.ZipFile(tmp_path / "box.zip") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    data["action_space"]["_shape"] = [5]
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(tmp_path / "lying.zip", "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(InvalidSourceError, match=r"metadata says action_space\.n = 5, but its head has 2 outputs"):
        read_source(tmp_path / "lying.zip")


def test_layers_that_do_not_chain_are_refused():
    """Sizes read from a file must build only layers the file holds: each takes what the one before gives."""
    state = make_ac(PPO, "CartPole-v1", net_arch=dict(pi=[8, 8], vf=[6])).policy.state_dict()
    state["mlp_extractor.policy_net.2.weight"] = th.zeros(8, 7)
    message = r"layer pi\.trunk\.1 takes 7 inputs, but layer pi\.trunk\.0 before it gives 8"
    with pytest.raises(InvalidSourceError, match=message):
        read_source(state)
