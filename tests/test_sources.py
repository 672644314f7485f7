import base64
import io
import json
import pickle
import zipfile

import pytest
import torch as th
from conftest import MLP_KWARGS, TinyImageEnv, make_model, q_values, sample_batch
from sb3_contrib import ARS, QRDQN, RecurrentPPO
from stable_baselines3 import DQN
from torch import nn

from sb3_transfer import (
    InvalidSourceError,
    SourceNotFoundError,
    UnsafeSourceError,
    UnsupportedSourceError,
    load_and_adapt,
    read_source,
)


class WritesAFile:
    """A pickle payload: unpickling it writes ``path``. A stranger's model file could carry this."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('pwned')",))


def rewrite_zip(src, dst, **members) -> None:
    """Copy an SB3 zip, replacing (or adding) members given as bytes."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            if item not in members:
                zout.writestr(item, zin.read(item))
        for name, content in members.items():
            zout.writestr(name, content)


def test_reads_architecture_from_zip_metadata_and_shapes(cartpole_qrdqn_zip):
    network = read_source(cartpole_qrdqn_zip)
    assert network.algo == "QRDQN" and network.n_actions == 2 and network.n_quantiles == 5
    assert network.net_arch == [16, 16] and network.activation_fn is nn.ReLU
    assert list(network.groups) == ["trunk.0", "trunk.1", "head"]
    assert network.input_dim == 4 and "SB3" in network.description


def test_nature_cnn_groups_and_features_dim(tmp_path):
    make_model(DQN, TinyImageEnv(), features_extractor_kwargs=dict(features_dim=24), net_arch=[]).save(tmp_path / "cnn.zip")
    network = read_source(tmp_path / "cnn.zip")
    assert list(network.groups) == ["features_extractor", "head"]
    assert network.features_extractor_name.endswith("NatureCNN") and network.features_extractor_kwargs["features_dim"] == 24
    assert network.input_dim is None


def test_zip_suffix_is_optional_as_in_sb3(cartpole_zip):
    assert read_source(str(cartpole_zip)[: -len(".zip")]).algo == "DQN"


def test_missing_file(tmp_path):
    with pytest.raises(SourceNotFoundError, match=r"nothing\.zip"):
        read_source(tmp_path / "nothing.zip")
    with pytest.raises(FileNotFoundError):  # catchable as the built-in type too
        load_and_adapt(tmp_path / "nothing.zip", "CartPole-v1", verbose=0)


def test_not_a_zip(tmp_path):
    (tmp_path / "model.zip").write_text("hello")
    with pytest.raises(InvalidSourceError, match=r"model\.zip.*not a zip archive"):
        read_source(tmp_path / "model.zip")
    with pytest.raises(InvalidSourceError, match="directory"):
        read_source(tmp_path)


def test_truncated_zip(cartpole_zip, tmp_path):
    data = cartpole_zip.read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidSourceError, match=r"cut\.zip.*(truncated|damaged)"):
        read_source(tmp_path / "cut.zip")


def test_corrupt_member(cartpole_zip, tmp_path):
    data = bytearray(cartpole_zip.read_bytes())
    with zipfile.ZipFile(cartpole_zip) as archive:
        info = archive.getinfo("policy.pth")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 10
    data[start : start + 20] = bytes(20)
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    with pytest.raises(InvalidSourceError, match=r"bad\.zip"):
        read_source(tmp_path / "bad.zip")


def test_zip_that_is_not_an_sb3_model(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(InvalidSourceError, match=r"other\.zip.*not an SB3 model.*data, policy\.pth"):
        read_source(tmp_path / "other.zip")


def test_data_that_is_not_json(cartpole_zip, tmp_path):
    rewrite_zip(cartpole_zip, tmp_path / "x.zip", data=b"\x80not json")
    with pytest.raises(InvalidSourceError, match="JSON"):
        read_source(tmp_path / "x.zip")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RecurrentPPO("MlpLstmPolicy", "Pendulum-v1", n_steps=16, policy_kwargs=dict(net_arch=[8])), "RecurrentPPO"),
        (lambda: ARS("LinearPolicy", "Pendulum-v1"), "ARS"),
    ],
    ids=["recurrentppo", "ars"],
)
def test_unsupported_algorithms_are_named(make, match, tmp_path):
    make().save(tmp_path / "other.zip")
    with pytest.raises(UnsupportedSourceError, match=rf"{match}.*DQN, QRDQN, PPO, A2C, MaskablePPO, SAC, TQC, TD3, DDPG"):
        read_source(tmp_path / "other.zip")
    with pytest.raises(UnsupportedSourceError, match=match):
        load_and_adapt(make(), "CartPole-v1", verbose=0)


def test_pickle_payload_in_data_is_never_unpickled(cartpole_zip, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned.txt"
    payload = base64.b64encode(pickle.dumps(WritesAFile(str(marker)))).decode()
    with zipfile.ZipFile(cartpole_zip) as archive:
        data = json.loads(archive.read("data"))
    for key in ("policy_class", "observation_space", "action_space", "policy_kwargs", "lr_schedule"):
        data[key] = {**data[key], ":serialized:": payload} if isinstance(data[key], dict) else {":serialized:": payload}
    rewrite_zip(cartpole_zip, tmp_path / "evil.zip", data=json.dumps(data).encode())
    model = load_and_adapt(tmp_path / "evil.zip", "CartPole-v1", transfer="all", verbose=0)
    assert not marker.exists()
    assert model.transfer_report.group_actions()["trunk.1"] == {"copied"}


def test_pickle_payload_in_weights_is_refused(cartpole_zip, tmp_path):
    marker = tmp_path / "pwned.txt"
    buffer = io.BytesIO()
    th.save({"q_net.q_net.0.weight": WritesAFile(str(marker))}, buffer)
    rewrite_zip(cartpole_zip, tmp_path / "evil.zip", **{"policy.pth": buffer.getvalue()})
    with pytest.raises(UnsafeSourceError, match=r"evil\.zip.*trust_source=True"):
        load_and_adapt(tmp_path / "evil.zip", "CartPole-v1", verbose=0)
    assert not marker.exists()


def test_optimizer_state_is_never_read(cartpole_zip, tmp_path):
    marker = tmp_path / "pwned.txt"
    buffer = io.BytesIO()
    th.save({"state": WritesAFile(str(marker))}, buffer)
    rewrite_zip(cartpole_zip, tmp_path / "opt.zip", **{"policy.optimizer.pth": buffer.getvalue()})
    load_and_adapt(tmp_path / "opt.zip", "CartPole-v1", verbose=0)
    assert not marker.exists()


def sb3_v1_zip(path, source_model) -> None:
    """A zip laid out as SB3 1.x wrote it: spaces pickled under the old ``gym`` package, an optimizer over the
    target network's parameters too, ``shape`` instead of ``_shape``, no system_info."""
    gym_box = base64.b64encode(b"cgym.spaces.box\nBox\n(tR.").decode()
    gym_discrete = base64.b64encode(b"cgym.spaces.discrete\nDiscrete\n(tR.").decode()
    data = {
        "policy_class": {
            ":type:": "<class 'abc.ABCMeta'>",
            ":serialized:": base64.b64encode(b"cstable_baselines3.dqn.policies\nDQNPolicy\n.").decode(),
            "__module__": "stable_baselines3.dqn.policies",
            "__init__": "<function DQNPolicy.__init__ at 0x7f0>",
        },
        "policy_kwargs": {"net_arch": [16, 16]},
        "observation_space": {
            ":type:": "<class 'gym.spaces.box.Box'>",
            ":serialized:": gym_box,
            "shape": [4],
            "dtype": "float32",
        },
        "action_space": {
            ":type:": "<class 'gym.spaces.discrete.Discrete'>",
            ":serialized:": gym_discrete,
            "n": 2,
            "shape": [],
        },
        "learning_rate": 0.0001,
        "exploration_final_eps": 0.05,
    }
    policy = source_model.policy
    optimizer = th.optim.Adam(list(policy.q_net.parameters()) + list(policy.q_net_target.parameters()))
    files = {"data": json.dumps(data).encode(), "_stable_baselines3_version": b"1.0"}
    for name, obj in (
        ("policy.pth", policy.state_dict()),
        ("policy.optimizer.pth", optimizer.state_dict()),
        ("pytorch_variables.pth", {}),
    ):
        buffer = io.BytesIO()
        th.save(obj, buffer)
        files[name] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)


def test_reads_sb3_1x_zip_with_old_gym_pickles(tmp_path):
    source = make_model(DQN, "CartPole-v1", seed=3, **MLP_KWARGS)
    sb3_v1_zip(tmp_path / "v1.zip", source)
    network = read_source(tmp_path / "v1.zip")
    assert network.sb3_version == "1.0" and network.n_actions == 2 and network.net_arch == [16, 16]
    model = load_and_adapt(tmp_path / "v1.zip", "CartPole-v1", transfer="all", verbose=0)
    obs = sample_batch(model.observation_space)
    assert th.equal(q_values(model, obs), q_values(source, obs))
    # Trusting the file does not make it unreadable: the unpicklable spaces are not needed.
    assert read_source(tmp_path / "v1.zip", trust_source=True).net_arch == [16, 16]


@pytest.mark.parametrize("algo", [DQN, QRDQN])
def test_model_policy_and_state_dict_sources(algo):
    source = make_model(algo, "CartPole-v1", seed=4, **MLP_KWARGS)
    online = source.policy.q_net if algo is DQN else source.policy.quantile_net
    # A QR-DQN state dict does not say how its outputs split into actions and quantiles (here 2 x 5).
    givens = [source, source.policy] + ([source.policy.state_dict(), online.state_dict()] if algo is DQN else [])
    for given in givens:
        network = read_source(given)
        assert network.algo == algo.__name__ and network.net_arch == [16, 16]
        model = load_and_adapt(given, "CartPole-v1", transfer="all", verbose=0)
        obs = sample_batch(model.observation_space)
        assert th.equal(q_values(model, obs), q_values(source, obs))


def test_qrdqn_state_dict_of_unknown_split_is_named():
    source = make_model(QRDQN, "CartPole-v1", **MLP_KWARGS)
    with pytest.raises(InvalidSourceError, match="pass the model or policy"):
        read_source(source.policy.state_dict())


def test_state_dict_of_something_else_is_named():
    with pytest.raises(InvalidSourceError, match=r"does not hold an SB3 DQN.*nn\.Module itself"):
        read_source(nn.Linear(3, 2).state_dict())


def test_unusable_source_type_is_named():
    with pytest.raises(InvalidSourceError, match="Cannot use a int"):
        read_source(42)


def test_qrdqn_default_quantiles_assumed_and_noted():
    source = QRDQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8]), buffer_size=100)
    network = read_source({k: v for k, v in source.policy.state_dict().items()})
    assert network.n_quantiles == 200 and network.n_actions == 2
    assert any("200" in note for note in network.notes)


def save_state_dict_zip(cartpole_zip, path, state_dict) -> None:
    buffer = io.BytesIO()
    th.save(state_dict, buffer)
    rewrite_zip(cartpole_zip, path, **{"policy.pth": buffer.getvalue()})


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda sd: sd.update({"q_net.q_net.0.weight": sd["q_net.q_net.0.weight"].long()}), "not a dense float tensor"),
        (lambda sd: sd.update({"q_net.q_net.0.weight": th.zeros(1).expand(16, 4)}), "claims more elements"),
        (lambda sd: sd.update({"q_net.foo": th.zeros(2)}), "belongs to no known part"),
        (lambda sd: sd.update({"q_net.q_net.4.bias": th.zeros(3)}), r"layer head is not a Linear layer"),
        (lambda sd: sd.update({"q_net.q_net.2.weight": th.zeros(16)}), r"layer trunk\.1 is not a Linear layer"),
        (lambda sd: sd.update({7: th.zeros(2)}), "is not a string"),
    ],
    ids=["int-weight", "stride-0", "stray-key", "head-bias", "1d-weight", "int-key"],
)
def test_malformed_weights_are_named(cartpole_zip, tmp_path, edit, match):
    state_dict = DQN.load(cartpole_zip, device="cpu").policy.state_dict()
    edit(state_dict)
    save_state_dict_zip(cartpole_zip, tmp_path / "bad.zip", state_dict)
    with pytest.raises(InvalidSourceError, match=match):
        load_and_adapt(tmp_path / "bad.zip", "CartPole-v1", verbose=0)


@pytest.mark.parametrize(
    "key, value",
    [
        ("action_space", {"n": "²"}),
        ("action_space", {"n": "9" * 5000}),
        ("policy_kwargs", {"features_extractor_kwargs": {"foo": 1}}),
        ("policy_kwargs", ["not", "a", "dict"]),
        ("policy_class", None),
    ],
)
def test_odd_metadata_is_read_safely(cartpole_zip, tmp_path, key, value):
    with zipfile.ZipFile(cartpole_zip) as archive:
        data = json.loads(archive.read("data"))
    data[key] = value
    rewrite_zip(cartpole_zip, tmp_path / "odd.zip", data=json.dumps(data).encode())
    model = load_and_adapt(tmp_path / "odd.zip", "CartPole-v1", transfer="all", verbose=0)
    assert model.policy.activation_fn is nn.ReLU
    assert model.transfer_report.group_actions()["head"] == {"copied"}


@pytest.mark.parametrize("content", [b"[" * 100_000, b'{"n": ' + b"9" * 5000 + b"}"], ids=["deep", "bigint"])
def test_hostile_json_is_named(cartpole_zip, tmp_path, content):
    rewrite_zip(cartpole_zip, tmp_path / "x.zip", data=content)
    with pytest.raises(InvalidSourceError, match="JSON"):
        read_source(tmp_path / "x.zip")


def test_members_that_unpack_too_large_are_refused(cartpole_zip, monkeypatch):
    import sb3_transfer.sources

    monkeypatch.setattr(sb3_transfer.sources, "MAX_DATA_BYTES", 100)
    with pytest.raises(InvalidSourceError, match="unpacks to more than 100 bytes"):
        read_source(cartpole_zip)
