"""Transfer for the actor / critics algorithms (SAC, TQC, TD3, DDPG): reading, groups, transplant, policies, saving."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import TQC
from stable_baselines3 import DDPG, DQN, PPO, SAC, TD3

from sb3_transfer import (
    IncompatibleSpaceError,
    InvalidSourceError,
    TransferDDPG,
    TransferSAC,
    TransferSACPolicy,
    TransferTD3,
    TransferTD3Policy,
    TransferTQC,
    load_and_adapt,
    read_source,
)

SMALL = dict(learning_starts=8, buffer_size=256, batch_size=8, seed=0, device="cpu")
NETS = dict(net_arch=dict(pi=[8, 6], qf=[7]))
TRANSFER_ALGOS = {SAC: TransferSAC, TQC: TransferTQC, TD3: TransferTD3, DDPG: TransferDDPG}
ALGO_IDS = ["sac", "tqc", "td3", "ddpg"]


class TwoDimEnv(gym.Env):
    """Box observations of ``obs_dim`` and actions of ``act_dim`` dimensions; episodes of 8 steps."""

    def __init__(self, obs_dim: int = 3, act_dim: int = 2) -> None:
        self.observation_space = spaces.Box(-1, 1, (obs_dim,), np.float32)
        self.action_space = spaces.Box(-1, 1, (act_dim,), np.float32)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        return self.observation_space.sample(), -float(np.square(action).sum()), False, self._t >= 8, {}


def make(algo, env="Pendulum-v1", **policy_kwargs):
    """A small model, trained for a few gradient steps so that its weights (and SAC's entropy coefficient) moved."""
    policy_kwargs = {**NETS, **policy_kwargs}
    if algo is TQC:
        policy_kwargs.setdefault("n_quantiles", 5)
    model = algo("MlpPolicy", env, policy_kwargs=policy_kwargs, **SMALL)
    model.learn(24)
    return model


def critic_values(model, obs, actions, critic=None):
    """Each critic's output on a batch: SAC's and TD3's one value, TQC's quantiles (its critics stack them)."""
    with th.no_grad():
        out = (critic or model.critic)(obs, actions)
        return [q.clone() for q in (out.unbind(1) if isinstance(out, th.Tensor) else out)]


def batch(model, n=5):
    obs = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(n)]))
    actions = th.as_tensor(np.stack([model.action_space.sample() for _ in range(n)]))
    return obs, actions


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    paths = {}
    for algo in TRANSFER_ALGOS:
        model = make(algo)
        paths[algo] = (model, str(folder / f"{algo.__name__}.zip"))
        model.save(paths[algo][1])
    return paths


@pytest.mark.parametrize("algo", list(TRANSFER_ALGOS), ids=ALGO_IDS)
def test_zip_is_read_with_what_it_holds(sources, algo):
    model, path = sources[algo]
    network = read_source(path)
    assert network.trained_with == algo.__name__
    assert network.algo == ("TD3" if algo in (TD3, DDPG) else "SAC")
    assert network.net_arch == {"pi": [8, 6], "qf": [7]}
    assert network.n_actions == 1 and network.continuous
    assert network.n_critics == (1 if algo is DDPG else 2)
    assert network.n_quantiles == (5 if algo is TQC else 1)
    groups = list(network.groups)
    assert groups[:3] == ["actor.trunk.0", "actor.trunk.1", "actor.head"]
    assert "critic.qf0.head" in groups and not any("target" in g for g in groups)
    if algo in (SAC, TQC):  # the learnt coefficient, read from pytorch_variables.pth without unpickling
        assert network.ent_coef == pytest.approx(float(model.log_ent_coef.detach().exp()))
        assert set(network.groups["actor.head"]) == {"weight", "bias", "log_std.weight", "log_std.bias"}
    else:
        assert network.ent_coef is None


@pytest.mark.parametrize("algo", list(TRANSFER_ALGOS), ids=ALGO_IDS)
def test_same_spaces_all_gives_the_same_actor_and_critics(sources, algo):
    source, path = sources[algo]
    model = load_and_adapt(path, "Pendulum-v1", transfer="all", verbose=0, **SMALL)
    assert type(model) is TRANSFER_ALGOS[algo]
    assert model.transfer_report.counts()["initialised"] == 0
    obs, actions = batch(model)
    np.testing.assert_allclose(
        model.predict(obs.numpy(), deterministic=True)[0], source.predict(obs.numpy(), deterministic=True)[0]
    )
    for q, q_source, q_target in zip(
        critic_values(model, obs, actions),
        critic_values(source, obs, actions),
        critic_values(model, obs, actions, model.critic_target),
        strict=True,
    ):
        th.testing.assert_close(q, q_source)
        th.testing.assert_close(q_target, q)  # the target critics follow the transplanted ones
    if algo in (SAC, TQC):  # the whole action distribution, not only its mean
        with th.no_grad():
            for ours, theirs in zip(
                model.actor.get_action_dist_params(obs), source.actor.get_action_dist_params(obs), strict=True
            ):
                th.testing.assert_close(ours, theirs)
    if algo in (TD3, DDPG):
        for p, q in zip(model.actor_target.parameters(), model.actor.parameters(), strict=True):
            th.testing.assert_close(p, q)


def test_each_optimizer_holds_the_groups_of_its_network(sources):
    model = load_and_adapt(sources[SAC][1], "Pendulum-v1", transfer="all", verbose=0, **SMALL)
    actor = [g["group"] for g in model.actor.optimizer.param_groups]
    critic = [g["group"] for g in model.critic.optimizer.param_groups]
    assert actor == ["actor.trunk.0", "actor.trunk.1", "actor.head"]
    assert critic == ["critic.qf0.trunk.0", "critic.qf0.head", "critic.qf1.trunk.0", "critic.qf1.head"]
    held = {id(p) for g in model.actor.optimizer.param_groups for p in g["params"]}
    assert held == {id(p) for p in model.actor.parameters()}


def test_freeze_and_lr_scale_span_both_optimizers_and_survive_save(sources, tmp_path):
    model = load_and_adapt(
        sources[SAC][1],
        "PendulumHeavy-v1",
        transfer="all",
        verbose=0,
        policy_kwargs=dict(freeze=["actor.trunk.*"], lr_scale={"critic.*": 0.5}),
        **SMALL,
    )
    frozen = {n: p.clone() for n, p in model.actor.latent_pi.named_parameters()}
    head = model.actor.mu.weight.clone()
    model.learn(40)
    for name, param in model.actor.latent_pi.named_parameters():
        th.testing.assert_close(param, frozen[name])
    assert not th.equal(model.actor.mu.weight, head)
    rates = model.policy.learning_rates()
    assert rates["critic.qf0.head"] == pytest.approx(0.5 * rates["actor.head"])
    model.save(tmp_path / "tuned")
    loaded = SAC.load(tmp_path / "tuned", device="cpu")  # SB3's own class reads it
    assert type(loaded.policy) is TransferSACPolicy
    assert loaded.policy.frozen_groups() == ["actor.trunk.0", "actor.trunk.1"]
    assert loaded.policy.learning_rates() == rates


def test_sb3_saved_optimizers_load_into_the_grouped_ones(tmp_path):
    # A model saved with SB3's own policy (one param group per optimizer) loads with the Transfer policy: the same
    # per-parameter state, regrouped.
    model = make(SAC)
    model.save(tmp_path / "own")
    loaded = SAC.load(tmp_path / "own", custom_objects={"policy_class": TransferSACPolicy}, device="cpu")
    for ours, theirs in ((loaded.actor.optimizer, model.actor.optimizer), (loaded.critic.optimizer, model.critic.optimizer)):
        ours_params = [p for g in ours.param_groups for p in g["params"]]
        assert len(ours.param_groups) > 1 and len(ours_params) == len(theirs.param_groups[0]["params"])
        steps = {float(s["step"]) for s in ours.state.values()}
        assert steps == {float(s["step"]) for s in theirs.state.values()}


@pytest.mark.parametrize(
    "user_coef, transfer, expected",
    [(None, "all", 1.0), ("source", "all", "source"), ("source", "trunk", 1.0), ("auto_0.3", "all", 0.3)],
)
def test_entropy_coefficient_starts_at_the_sources_only_when_asked_and_with_its_actor(sources, user_coef, transfer, expected):
    source, path = sources[SAC]
    kwargs = {} if user_coef is None else dict(ent_coef=user_coef)
    model = load_and_adapt(path, "Pendulum-v1", transfer=transfer, verbose=0, **kwargs, **SMALL)
    value = float(source.log_ent_coef.detach().exp()) if expected == "source" else expected
    assert float(model.log_ent_coef.detach().exp()) == pytest.approx(value)
    assert (model.ent_coef_from_source is not None) == (expected == "source")
    assert any("ent_coef='source'" in note for note in model.transfer_report.notes) == (user_coef == "source")


@pytest.mark.parametrize(
    "source_algo, target_algo, expected",
    [
        (SAC, TQC, "repeated"),  # a value becomes quantiles that all start at it
        (TQC, SAC, "averaged"),  # quantiles become their mean
    ],
)
def test_critic_heads_convert_between_values_and_quantiles(sources, source_algo, target_algo, expected):
    source, path = sources[source_algo]
    model = load_and_adapt(path, "Pendulum-v1", algo=target_algo.__name__, transfer="all", verbose=0, **SMALL)
    rows = [r for r in model.transfer_report.rows if r.group == "critic.qf0.head"]
    assert {r.action for r in rows} == {"adapted"} and expected in rows[0].reason
    obs, actions = batch(model)
    for ours, theirs in zip(critic_values(model, obs, actions), critic_values(source, obs, actions), strict=True):
        th.testing.assert_close(ours.mean(dim=-1), theirs.mean(dim=-1))  # the value (mean of quantiles) is kept


def test_td3_and_sac_actors_carry_their_layers_across(sources):
    model = load_and_adapt(sources[TD3][1], "Pendulum-v1", algo="SAC", transfer="all", verbose=0, **SMALL)
    report = model.transfer_report
    actions = {(r.target_name, r.action) for r in report.rows if r.group == "actor.head"}
    assert ("actor.mu.weight", "copied") in actions and ("actor.log_std.weight", "initialised") in actions
    assert all(r.action == "copied" for r in report.rows if r.group.startswith(("actor.trunk", "critic.")))
    th.testing.assert_close(model.actor.latent_pi[0].weight, sources[TD3][0].actor.mu[0].weight)


def test_ppo_actor_carries_into_sac_and_back(sources, tmp_path):
    ppo = PPO("MlpPolicy", "Pendulum-v1", n_steps=16, batch_size=16, policy_kwargs=dict(net_arch=dict(pi=[8], vf=[5])))
    ppo.save(tmp_path / "ppo")
    sac = load_and_adapt(tmp_path / "ppo.zip", "Pendulum-v1", algo="SAC", transfer="all", verbose=0, **SMALL)
    assert sac.policy.net_arch == {"pi": [8], "qf": [5]}  # PPO's value network's layers for the critics
    th.testing.assert_close(sac.actor.latent_pi[0].weight, ppo.policy.mlp_extractor.policy_net[0].weight)
    th.testing.assert_close(sac.actor.mu.weight, ppo.policy.action_net.weight)
    report = sac.transfer_report
    assert {r.reason for r in report.rows if r.source_name == "log_std"} == {"no counterpart in the target network"}
    assert all(r.action == "initialised" for r in report.rows if r.group.startswith("critic."))
    back = load_and_adapt(sources[SAC][1], "Pendulum-v1", algo="PPO", transfer="all", verbose=0, n_steps=16, batch_size=16)
    th.testing.assert_close(back.policy.mlp_extractor.policy_net[2].weight, sources[SAC][0].actor.latent_pi[2].weight)
    assert {r.action for r in back.transfer_report.rows if r.group.startswith("critic.")} == {"dropped"}


def test_dqn_trunk_carries_into_a_sac_actor(tmp_path):
    dqn = DQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8]), buffer_size=100, device="cpu")
    env = TwoDimEnv(obs_dim=4)
    model = load_and_adapt(dqn.policy, env, algo=SAC, transfer="all", verbose=0, **SMALL)
    th.testing.assert_close(model.actor.latent_pi[0].weight, dqn.q_net.q_net[0].weight)
    head = {r.target_name: (r.action, r.reason) for r in model.transfer_report.rows if r.group == "actor.head"}
    # Q-values of Discrete actions are no mean action; the log_std layer has no counterpart.
    assert head["actor.mu.weight"] == (
        "initialised",
        "new head: the source's actions are Discrete, the target's Box (from head)",
    )
    assert head["actor.log_std.weight"] == ("initialised", "no pretrained counterpart (new layer)")


def test_action_dimension_map_carries_mean_and_log_std_rows():
    source = make(SAC, TwoDimEnv(act_dim=2))
    model = load_and_adapt(source.policy, TwoDimEnv(act_dim=3), algo="SAC", action_map={0: 1, 2: 0}, verbose=0, **SMALL)
    for name in ("mu", "log_std"):
        ours, theirs = getattr(model.actor, name), getattr(source.actor, name)
        th.testing.assert_close(ours.weight[0], theirs.weight[1])
        th.testing.assert_close(ours.weight[2], theirs.weight[0])
        th.testing.assert_close(ours.weight[1], theirs.weight.mean(dim=0))  # an unmapped dimension starts at the mean
    assert model.transfer_report.head_actions == [0, 2]


def test_observation_change_puts_adapters_before_actor_and_critics():
    source = make(SAC, TwoDimEnv(obs_dim=3))
    model = load_and_adapt(source.policy, TwoDimEnv(obs_dim=5), transfer="all", verbose=0, **SMALL)
    groups = list(model.policy.layer_groups())
    assert groups[:2] == ["actor.adapter", "actor.trunk.0"] and "critic.adapter" in groups
    obs = th.zeros(1, 5)
    obs[0, :3] = th.tensor([0.3, -0.2, 0.5])
    with th.no_grad():  # the adapters start as the identity on the shared inputs
        th.testing.assert_close(model.actor(obs, deterministic=True), source.actor(obs[:, :3], deterministic=True))


def test_shared_extractor_is_the_actors_group_only():
    source = make(SAC, TwoDimEnv(obs_dim=3), share_features_extractor=True)
    model = load_and_adapt(source.policy, TwoDimEnv(obs_dim=4), transfer="all", verbose=0, **SMALL)
    assert model.policy.share_features_extractor
    critic_groups = [g["group"] for g in model.critic.optimizer.param_groups]
    assert "actor.adapter" in model.policy.layer_groups() and not any("adapter" in g for g in critic_groups)


@pytest.mark.parametrize("algo", [TransferSAC, TransferTD3])
def test_box_only_algorithms_refuse_discrete_targets(sources, algo):
    with pytest.raises(IncompatibleSpaceError, match="needs a Box"):
        load_and_adapt(sources[SAC][1], "CartPole-v1", algo=algo, verbose=0)


def test_without_source_the_policies_build_what_sb3_builds():
    for algo, policy in ((SAC, TransferSACPolicy), (TD3, TransferTD3Policy)):
        ours = algo(policy, "Pendulum-v1", policy_kwargs=dict(NETS), seed=3, device="cpu")
        theirs = algo("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(NETS), seed=3, device="cpu")
        for (name, p), (_, q) in zip(ours.policy.state_dict().items(), theirs.policy.state_dict().items(), strict=True):
            th.testing.assert_close(p, q, msg=name)


def test_log_std_layer_of_another_shape_is_refused(sources):
    state = dict(sources[SAC][0].policy.state_dict())
    state["actor.log_std.weight"] = th.zeros(1, 3)
    with pytest.raises(InvalidSourceError, match=r"actor\.head is not a Linear layer"):
        read_source(state)


def test_ent_coef_of_a_damaged_variables_file_is_a_note(sources, tmp_path):
    import zipfile

    path = tmp_path / "damaged.zip"
    with zipfile.ZipFile(sources[SAC][1]) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            dst.writestr(item, b"not a torch file" if item.filename == "pytorch_variables.pth" else data)
    network = read_source(path)
    assert network.ent_coef is None and any("entropy coefficient is not read" in n for n in network.notes)
    assert math.isfinite(float(sources[SAC][0].log_ent_coef.detach()))


def test_a_live_model_gives_its_entropy_coefficient(sources):
    model, _ = sources[SAC]
    assert read_source(model).ent_coef == pytest.approx(float(model.log_ent_coef.detach().exp()))


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda s: s.pop("critic.qf0.2.weight"), r"critic\.qf0\.head is not a Linear layer"),
        (lambda s: s.update({"critic.qf0.0.weight": th.tensor(1.0)}), r"critic\.qf0\.trunk\.0 is not a Linear layer"),
        # Layers whose sizes do not chain: the network built from them would hold layers the file does not.
        (lambda s: s.update({"critic.qf0.2.weight": th.zeros(1, 3000)}), r"critic\.qf0\.head takes 3000 inputs"),
    ],
    ids=["missing-weight", "scalar-weight", "unchained"],
)
def test_malformed_critics_are_refused_by_name(sources, change, match):
    state = {k: v.clone() for k, v in sources[SAC][0].policy.state_dict().items()}
    change(state)
    with pytest.raises(InvalidSourceError, match=match):
        read_source(state)


def _rewrite_variables(path, out, variables):
    import io
    import zipfile

    buffer = io.BytesIO()
    th.save(variables, buffer)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = buffer.getvalue() if item.filename == "pytorch_variables.pth" else src.read(item.filename)
            dst.writestr(item.filename, data)
    return out


@pytest.mark.parametrize(
    "variables, note",
    [
        ({"log_ent_coef": th.tensor([1000.0])}, "outside"),  # e^1000: no coefficient, and no overflow
        ({"log_ent_coef": th.tensor([100.0])}, "outside"),  # finite but beyond float32: would make training NaN
        ({"log_ent_coef": th.zeros(400_000)}, "MAX_VARIABLES_BYTES"),  # 1.6 MB: past the member's budget, not read
    ],
    ids=["overflow", "huge", "too-large"],
)
def test_entropy_coefficient_from_a_hostile_file_is_not_used(sources, tmp_path, variables, note):
    path = _rewrite_variables(sources[SAC][1], tmp_path / "hostile.zip", variables)
    network = read_source(path)
    assert network.ent_coef is None and any(note in n for n in network.notes)
    model = load_and_adapt(path, "Pendulum-v1", transfer="all", ent_coef="source", verbose=0, **SMALL)
    assert float(model.log_ent_coef.detach().exp()) == pytest.approx(1.0)  # SB3's start


def test_ddpg_refuses_discrete_targets(sources):
    with pytest.raises(IncompatibleSpaceError, match="DDPG needs a Box"):
        load_and_adapt(sources[SAC][1], "CartPole-v1", algo="ddpg", verbose=0)


def test_many_critics_are_groups_too():
    model = TransferSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(n_critics=11, net_arch=[4]), **SMALL)
    assert "critic.qf10.head" in model.policy.layer_groups()


def test_a_one_group_optimizer_saved_by_sb3_keeps_its_group(tmp_path):
    # An actor without hidden layers has one group, actor.head: SB3's one param group becomes it, named.
    source = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=dict(pi=[], qf=[8])), **SMALL)
    source.learn(16)
    source.save(tmp_path / "own")
    loaded = SAC.load(tmp_path / "own", custom_objects={"policy_class": TransferSACPolicy}, device="cpu")
    assert [g["group"] for g in loaded.actor.optimizer.param_groups] == ["actor.head"]
    assert set(loaded.policy.learning_rates()) == {
        "actor.head",
        "critic.qf0.trunk.0",
        "critic.qf0.head",
        "critic.qf1.trunk.0",
        "critic.qf1.head",
    }


class TinyImageBoxEnv(gym.Env):
    """Small uint8 images (as NatureCNN takes them) and one Box action."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0, 255, (36, 36, 1), np.uint8)
        self.action_space = spaces.Box(-1, 1, (1,), np.float32)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        return self.observation_space.sample(), 0.0, False, self._t >= 4, {}


@pytest.mark.parametrize("algo, policy", [(TD3, "TransferTD3CnnPolicy"), (SAC, "TransferSACCnnPolicy")])
def test_sb3_saved_shared_extractor_loads_with_its_critic_state(tmp_path, algo, policy):
    # SB3's TD3 critic optimizer holds the shared extractor, SAC's does not; the Transfer policies give it to the actor.
    import sb3_transfer

    kwargs = dict(share_features_extractor=True, net_arch=[4], features_extractor_kwargs=dict(features_dim=4))
    model = algo("CnnPolicy", TinyImageBoxEnv(), policy_kwargs=kwargs, **{**SMALL, "buffer_size": 64})
    model.learn(16)
    model.save(tmp_path / "own")
    loaded = algo.load(tmp_path / "own", custom_objects={"policy_class": getattr(sb3_transfer, policy)}, device="cpu")
    for name, param in loaded.critic.named_parameters():
        if "features_extractor" not in name:
            assert loaded.critic.optimizer.state[param]["exp_avg"] is not None, name
