import base64
import json
import subprocess
import sys
import zipfile

import pytest
import torch as th
import torch.nn.functional as F
from conftest import TinyImageEnv, q_values, sample_batch
from torch import nn

from sb3_transfer import InvalidSourceError, load_and_adapt
from sb3_transfer.encoders import build_module, describe_module
from sb3_transfer.extractors import GraphExtractor


class ConvEncoder(nn.Module):
    """An encoder as users write them: their own class, nested layers, a bare parameter, functional calls."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 6, stride=6), nn.ReLU())
        self.fc = nn.Linear(8 * 6 * 6, 16)
        self.scale = nn.Parameter(th.linspace(0.5, 1.5, 16))
        self.unused = nn.Linear(2, 2)

    def forward(self, x: th.Tensor) -> th.Tensor:
        x = self.body(x)
        x = x.view(x.size(0), -1)
        return F.gelu(self.fc(x)) * self.scale


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 8)

    def forward(self, x: th.Tensor) -> th.Tensor:
        return self.fc(x) if x.sum() > 0 else -self.fc(x)  # torch.fx cannot trace a branch on the data


def test_a_description_rebuilds_the_encoder_without_its_class():
    encoder = ConvEncoder()
    description = json.loads(json.dumps(describe_module(encoder)))  # plain data
    rebuilt = build_module(description)
    assert "ConvEncoder" not in json.dumps(description) and type(rebuilt) is not ConvEncoder
    rebuilt.load_state_dict({k: v for k, v in encoder.state_dict().items() if not k.startswith("unused.")})
    x = th.rand(2, 3, 36, 36)
    assert th.equal(rebuilt(x), encoder(x))


def node(description, op):
    return next(n for n in description["nodes"] if n[0] == op)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: node(d, "call_function").__setitem__(2, "torch.load"), "function 'torch.load'"),
        (lambda d: node(d, "call_method").__setitem__(2, "__reduce__"), "tensor method '__reduce__'"),
        (lambda d: d["layers"]["body.0"].__setitem__("class", "Module"), "'Module' is not a layer"),
        (lambda d: d["nodes"][0].__setitem__(0, "eval"), "unknown operation 'eval'"),
        (lambda d: d["layers"]["body.0"]["kwargs"].__setitem__("in_channels", {"os": "system"}), "malformed"),
    ],
)
def test_a_description_from_a_file_calls_only_what_the_allow_lists_name(edit, match):
    description = describe_module(ConvEncoder())
    edit(description)
    with pytest.raises(InvalidSourceError, match=match):
        build_module(description)


def test_an_encoder_transfer_saves_a_description_and_loads_without_the_encoders_class(tmp_path):
    env = TinyImageEnv(channels=4)
    model = load_and_adapt(ConvEncoder(), env, verbose=0, buffer_size=100)
    assert model.policy.features_extractor_class is GraphExtractor
    rows = {r.target_name: r.action for r in model.transfer_report.rows}
    assert rows["q_net.features_extractor.module.body.0.weight"] == "adapted"  # 3 -> 4 channels
    assert rows["q_net.features_extractor.module.scale"] == "copied"
    model.save(tmp_path / "model.zip")
    # No pickle of the encoder: the saved policy_kwargs name only importable classes and plain data.
    data = json.loads(zipfile.ZipFile(tmp_path / "model.zip").read("data"))
    pickled = base64.b64decode(data["policy_kwargs"][":serialized:"])
    assert b"test_encoders" not in pickled and b"torch.fx" not in pickled  # a pickled class names its module
    obs = sample_batch(model.observation_space, n=3)
    th.save({"obs": th.as_tensor(obs), "q": q_values(model, obs)}, tmp_path / "expected.pt")
    script = f"""
import torch as th
from stable_baselines3 import DQN
expected = th.load({str(tmp_path / "expected.pt")!r})
model = DQN.load({str(tmp_path / "model.zip")!r}, device="cpu")
with th.no_grad():
    q = model.policy.q_net(expected["obs"])
assert th.equal(q, expected["q"]), (q, expected["q"])
"""
    # A fresh process whose path has no tests folder: the encoder's class cannot be imported there.
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_an_encoder_that_cannot_be_described_is_kept_as_a_module_with_a_note():
    model = load_and_adapt(DataDependent(), "CartPole-v1", verbose=0)
    (note,) = [n for n in model.transfer_report.notes if "kept as a module" in n]
    assert "needs its class to load" in note and "cannot trace" in note
    assert model.transfer_report.group_actions()["features_extractor"] == {"copied"}


def test_a_model_trained_from_an_encoder_is_a_source_again_without_unpickling(tmp_path):
    env = TinyImageEnv(channels=3)
    first = load_and_adapt(ConvEncoder(), env, verbose=0, buffer_size=100)
    first.save(tmp_path / "first.zip")
    again = load_and_adapt(tmp_path / "first.zip", TinyImageEnv(channels=3), transfer="all", strict=True, verbose=0)
    obs = sample_batch(again.observation_space, n=4)
    assert th.equal(q_values(again, obs), q_values(first, obs))


def test_a_description_that_does_not_match_the_files_tensors_is_not_built(tmp_path):
    first = load_and_adapt(ConvEncoder(), TinyImageEnv(channels=3), verbose=0, buffer_size=100)
    first.save(tmp_path / "first.zip")
    with zipfile.ZipFile(tmp_path / "first.zip") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    layers = data["policy_kwargs"]["features_extractor_kwargs"]["description"]["layers"]
    layers["fc"]["kwargs"]["out_features"] = 60_000  # a bigger layer than the weights the file holds
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(tmp_path / "tampered.zip", "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(InvalidSourceError, match="custom features extractor"):
        load_and_adapt(tmp_path / "tampered.zip", TinyImageEnv(channels=3), verbose=0)
