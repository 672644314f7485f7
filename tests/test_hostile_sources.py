"""Hostile and broken files read as sources (issue 15): each refused with a TransferError that names the problem,
within memory bounded by what the file really holds. Every file is crafted here, small; limits are lowered, never
reached, so that no test needs more than a few MB."""

import io
import json
import os
import random
import threading
import tracemalloc
import zipfile
import zlib

import pytest
import torch as th
from conftest import MLP_KWARGS, make_model
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from torch import nn

import sb3_transfer.sources as sources
from sb3_transfer import InvalidSourceError, TransferError, UnsafeSourceError, read_source

MiB = 2**20


# ---- crafting files ---------------------------------------------------------------------------------------------------


def rewrite_zip(src, dst, **members: bytes):
    """Copy an SB3 zip, replacing (or adding) members given as bytes."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            if item not in members:
                zout.writestr(item, zin.read(item))
        for name, content in members.items():
            zout.writestr(name, content)
    return dst


def torch_bytes(obj, legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    th.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def state_dict_of(zip_path) -> dict:
    with zipfile.ZipFile(zip_path) as archive:
        return th.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)


def data_of(zip_path) -> dict:
    with zipfile.ZipFile(zip_path) as archive:
        return json.loads(archive.read("data"))


def with_weights(zip_path, dst, state_dict, legacy: bool = False):
    return rewrite_zip(zip_path, dst, **{"policy.pth": torch_bytes(state_dict, legacy)})


def with_data(zip_path, dst, **changes):
    data = data_of(zip_path)
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) and isinstance(value, dict) else value
    return rewrite_zip(zip_path, dst, data=json.dumps(data).encode())


def add_zeros(archive: zipfile.ZipFile, name: str, size: int) -> None:
    """Add a deflated member of ``size`` zero bytes, written a MiB at a time (never held at once)."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w") as member:
        for _ in range(size // MiB):
            member.write(bytes(MiB))


def rezip(content: bytes, replace: dict | None = None, zeros: dict | None = None) -> bytes:
    """A zip's members written again (fresh sizes and CRCs), some replaced by bytes, some added as deflated zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, (replace or {}).get(info.filename, zin.read(info)))
        for name, size in (zeros or {}).items():
            add_zeros(zout, name, size)
    return out.getvalue()


def declare_size(content: bytes, name: str, size: int) -> bytes:
    """The zip with member ``name``'s uncompressed size in its headers (local and central) replaced by ``size``."""
    data = bytearray(content)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        info = archive.getinfo(name)
        directory = archive.start_dir
    data[info.header_offset + 22 : info.header_offset + 26] = size.to_bytes(4, "little")
    position = directory
    while data[position : position + 4] == b"PK\x01\x02":
        lengths = [int.from_bytes(data[position + i : position + i + 2], "little") for i in (28, 30, 32)]
        if data[position + 46 : position + 46 + lengths[0]] == name.encode():
            data[position + 24 : position + 28] = size.to_bytes(4, "little")
        position += 46 + sum(lengths)
    return bytes(data)


def peak_python_memory(read) -> tuple[BaseException | None, int]:
    """What ``read()`` raised, and the peak of the Python allocations it made (zip members are Python bytes)."""
    tracemalloc.start()
    try:
        read()
        error = None
    except BaseException as e:
        error = e
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return error, peak


@pytest.fixture(scope="module")
def state_dict(cartpole_zip):
    return state_dict_of(cartpole_zip)


@pytest.fixture(scope="module")
def qrdqn_zip(tmp_path_factory):
    """QR-DQN on CartPole with 10 quantiles: a head of 2 x 10 = 20 rows."""
    path = tmp_path_factory.mktemp("hostile") / "qrdqn10.zip"
    make_model(QRDQN, "CartPole-v1", n_quantiles=10, **MLP_KWARGS).save(path)
    return path


# ---- 1. memory bounded by what is really read -------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["data", "policy.pth"])
def test_member_whose_header_understates_its_size_is_stopped(cartpole_zip, tmp_path, member):
    # The header says 1000 bytes; the deflated stream unpacks to 64 MiB. zipfile's read() would inflate it at once.
    out = io.BytesIO()
    with zipfile.ZipFile(cartpole_zip) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            if name != member:
                zout.writestr(name, zin.read(name))
        add_zeros(zout, member, 64 * MiB)
    path = tmp_path / "liar.zip"
    path.write_bytes(declare_size(out.getvalue(), member, 1000))
    error, peak = peak_python_memory(lambda: read_source(path))
    assert isinstance(error, InvalidSourceError) and "damaged" in str(error) and "liar.zip" in str(error)
    assert peak < 4 * MiB


def test_member_over_its_limit_is_refused(cartpole_zip, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_WEIGHTS_BYTES", 5000)
    with pytest.raises(InvalidSourceError, match=r"'policy\.pth' member unpacks to more than 5000 bytes.*MAX_WEIGHTS_BYTES"):
        read_source(cartpole_zip)


def test_deflated_record_inside_policy_pth_is_stopped_at_the_limit(cartpole_zip, tmp_path, monkeypatch):
    # A record of 32 MiB of zeros, deflated to 32 kB: PyTorch's own reader would inflate it whole.
    with zipfile.ZipFile(cartpole_zip) as archive:
        weights = rezip(archive.read("policy.pth"), zeros={"archive/data/99": 32 * MiB})
    path = rewrite_zip(cartpole_zip, tmp_path / "bomb.zip", **{"policy.pth": weights})
    monkeypatch.setattr(sources, "MAX_WEIGHTS_BYTES", 4 * MiB)
    error, peak = peak_python_memory(lambda: read_source(path))
    assert isinstance(error, InvalidSourceError)
    assert "records unpack to more than 4194304 bytes" in str(error) and "MAX_WEIGHTS_BYTES" in str(error)
    assert peak < 12 * MiB  # policy.pth, its records up to the limit, and one chunk


@pytest.mark.parametrize("inner", [True, False])
def test_inflation_out_of_proportion_is_refused_early(cartpole_zip, tmp_path, monkeypatch, inner):
    # 32 MiB of zeros deflated to 32 kB, inside policy.pth (a record) or as policy.pth itself (the SB3 zip's member):
    # stopped at MAX_INFLATION times the compressed size, far below MAX_WEIGHTS_BYTES.
    monkeypatch.setattr(sources, "MIN_INFLATION_BYTES", 256 * 2**10)
    with zipfile.ZipFile(cartpole_zip) as archive:
        weights = archive.read("policy.pth")
    if inner:
        path = rewrite_zip(
            cartpole_zip, tmp_path / "bomb.zip", **{"policy.pth": rezip(weights, zeros={"archive/data/99": 32 * MiB})}
        )
    else:
        out = io.BytesIO()
        with zipfile.ZipFile(cartpole_zip) as zin, zipfile.ZipFile(out, "w") as zout:
            for name in zin.namelist():
                if name != "policy.pth":
                    zout.writestr(name, zin.read(name))
            add_zeros(zout, "policy.pth", 32 * MiB)
        path = tmp_path / "bomb.zip"
        path.write_bytes(out.getvalue())
    error, peak = peak_python_memory(lambda: read_source(path))
    assert isinstance(error, InvalidSourceError) and "MAX_INFLATION" in str(error) and "bomb" in str(error), error
    assert peak < 4 * MiB


def test_deflated_weights_in_proportion_are_read(cartpole_zip, tmp_path, monkeypatch):
    # The same model with every member and record deflated: real weights compress little, so nothing is refused even
    # with the floor at 0.
    monkeypatch.setattr(sources, "MIN_INFLATION_BYTES", 0)
    with zipfile.ZipFile(cartpole_zip) as zin:
        members = {name: zin.read(name) for name in zin.namelist()}
    inner = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(members["policy.pth"])) as zin, zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    members["policy.pth"] = inner.getvalue()
    path = tmp_path / "deflated.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, content in members.items():
            zout.writestr(name, content)
    expected = read_source(cartpole_zip).tensors
    got = read_source(path).tensors
    assert got.keys() == expected.keys() and all(th.equal(got[k], expected[k]) for k in expected)


def test_record_whose_header_understates_its_size_is_damaged(cartpole_zip, tmp_path):
    with zipfile.ZipFile(cartpole_zip) as archive:
        weights = rezip(archive.read("policy.pth"), zeros={"archive/data/99": 32 * MiB})
    path = rewrite_zip(cartpole_zip, tmp_path / "liar.zip", **{"policy.pth": declare_size(weights, "archive/data/99", 1000)})
    error, peak = peak_python_memory(lambda: read_source(path))
    assert isinstance(error, InvalidSourceError) and "policy.pth is damaged" in str(error)
    assert peak < 4 * MiB


def test_records_that_overlap_are_refused(cartpole_zip, tmp_path):
    # One record's sizes stretched over the records after it, CRC and all: its bytes would be read twice.
    with zipfile.ZipFile(cartpole_zip) as archive:
        weights = bytearray(archive.read("policy.pth"))
    with zipfile.ZipFile(io.BytesIO(bytes(weights))) as archive:
        first, *rest = [i for i in archive.infolist() if i.filename.startswith("archive/data/")]
        directory = archive.start_dir
    start = first.header_offset + 30 + len(first.filename) + len(first.extra)
    end = max(i.header_offset + 30 + len(i.filename) + len(i.extra) + i.compress_size for i in rest)
    sizes = b"".join(v.to_bytes(4, "little") for v in (zlib.crc32(weights[start:end]), end - start, end - start))
    weights[first.header_offset + 14 : first.header_offset + 26] = sizes  # CRC, sizes in the local header
    position = directory
    while weights[position : position + 4] == b"PK\x01\x02":
        lengths = [int.from_bytes(weights[position + i : position + i + 2], "little") for i in (28, 30, 32)]
        if weights[position + 46 : position + 46 + lengths[0]] == first.filename.encode():
            weights[position + 16 : position + 28] = sizes  # and in the central directory
        position += 46 + sum(lengths)
    path = rewrite_zip(cartpole_zip, tmp_path / "overlap.zip", **{"policy.pth": bytes(weights)})
    with pytest.raises(InvalidSourceError, match="records overlap"):
        read_source(path)


def test_oversized_zip_directory_is_refused(cartpole_zip, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_DIRECTORY_BYTES", 2**17)
    path = tmp_path / "crowd.zip"
    with zipfile.ZipFile(cartpole_zip) as zin, zipfile.ZipFile(path, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, zin.read(name))
        for i in range(1500):  # ~150 bytes of directory each
            zout.writestr(f"{i:0100d}", b"")
    with pytest.raises(InvalidSourceError, match=r"crowd\.zip.*zip directory.*MAX_DIRECTORY_BYTES"):
        read_source(path)


def test_json_with_too_many_items_is_refused_before_parsing(cartpole_zip, tmp_path, monkeypatch):
    path = rewrite_zip(cartpole_zip, tmp_path / "items.zip", data=b"[" + b"{}," * 1000 + b"{}]")
    monkeypatch.setattr(sources, "MAX_JSON_ITEMS", 500)
    with pytest.raises(InvalidSourceError, match=r"'data' member holds 2002 JSON items.*MAX_JSON_ITEMS"):
        read_source(path)


def test_pickle_over_its_limit_is_refused(cartpole_zip, monkeypatch):
    monkeypatch.setattr(sources, "MAX_PICKLE_BYTES", 200)
    with pytest.raises(InvalidSourceError, match=r"data\.pkl' unpacks to more than 200 bytes.*MAX_PICKLE_BYTES"):
        read_source(cartpole_zip)


def test_legacy_pickle_over_its_limit_is_refused(cartpole_zip, state_dict, tmp_path, monkeypatch):
    path = with_weights(cartpole_zip, tmp_path / "legacy.zip", state_dict, legacy=True)
    monkeypatch.setattr(sources, "MAX_PICKLE_BYTES", 200)
    with pytest.raises(InvalidSourceError, match=r"state dict is longer than 200 bytes.*MAX_PICKLE_BYTES"):
        read_source(path)


def test_long_version_is_refused_and_strings_are_capped(cartpole_zip, tmp_path):
    path = rewrite_zip(cartpole_zip, tmp_path / "version.zip", _stable_baselines3_version=b"2" * (2 * MiB))
    with pytest.raises(InvalidSourceError, match=r"_stable_baselines3_version' member.*more than 1024 bytes"):
        read_source(path)
    rewrite_zip(cartpole_zip, tmp_path / "long.zip", _stable_baselines3_version=b"2." * 500)
    network = read_source(tmp_path / "long.zip")
    assert network.sb3_version is not None and len(network.sb3_version) < sources.MAX_STRING_CHARS + 30
    assert network.sb3_version.endswith("(1000 characters)")


@pytest.mark.parametrize(
    "shape, match",
    [((2**24, 0), r"q_net\.q_net\.0\.weight' has no elements \(shape \(16777216, 0\)\)"), ((16, 0), "width 0")],
    ids=["16M-units", "input-width-0"],
)
def test_zero_element_tensors_are_refused(cartpole_zip, state_dict, tmp_path, shape, match):
    path = with_weights(cartpole_zip, tmp_path / "empty.zip", {**state_dict, "q_net.q_net.0.weight": th.empty(shape)})
    with pytest.raises(InvalidSourceError, match=match):
        read_source(path)


def test_layer_wider_than_the_limit_is_refused(cartpole_zip, monkeypatch):
    monkeypatch.setattr(sources, "MAX_LAYER_SIZE", 8)
    with pytest.raises(
        InvalidSourceError, match=r"layer trunk\.0 has 16 units.*limit of 8 \(sb3_transfer\.sources\.MAX_LAYER_SIZE\)"
    ):
        read_source(cartpole_zip)


def test_views_of_one_storage_are_counted_once(cartpole_zip, state_dict, tmp_path):
    # 40 layers on one storage: 40 times the data it holds, once built. Refused, naming them.
    storage = th.zeros(64 * 64)
    deep = {f"q_net.q_net.{2 * i}.weight": storage.view(64, 64) for i in range(40)}
    deep.update({f"q_net.q_net.{2 * i}.bias": th.zeros(64) for i in range(40)})
    path = with_weights(cartpole_zip, tmp_path / "views.zip", deep)
    with pytest.raises(InvalidSourceError, match=r"tensors 'q_net\.q_net\.0\.weight'.* and 36 more share their data"):
        read_source(path)
    # Views that do not overlap (one flat buffer carved into every tensor) hold their own data: read.
    flat = th.cat([t.flatten() for t in state_dict.values() if t.is_floating_point()])
    carved, offset = {}, 0
    for key, tensor in state_dict.items():
        if tensor.is_floating_point():
            carved[key] = flat[offset : offset + tensor.numel()].view(tensor.shape)
            offset += tensor.numel()
    network = read_source(with_weights(cartpole_zip, tmp_path / "carved.zip", carved))
    assert th.equal(network.tensors["q_net.q_net.2.weight"], state_dict["q_net.q_net.2.weight"])


def test_fifo_and_devices_are_refused_without_hanging(tmp_path):
    fifo = tmp_path / "model.zip"
    os.mkfifo(fifo)
    errors = []

    def read() -> None:
        with pytest.raises(InvalidSourceError) as caught:
            read_source(fifo)
        errors.append(caught)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # let the blocked reader go before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert not reader.is_alive() and errors and "not a regular file" in str(errors[0].value)
    if os.path.exists("/dev/zero"):
        with pytest.raises(InvalidSourceError, match=r"/dev/zero.*not a regular file"):
            read_source("/dev/zero")


def test_unusable_paths_are_transfer_errors(tmp_path):
    with pytest.raises(InvalidSourceError, match="cannot be read"):
        read_source("model\x00.zip")
    with pytest.raises(TransferError):
        read_source(tmp_path / ("x" * 5000))


# ---- 2. non-finite weights ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_weights_are_refused_unless_allowed(cartpole_zip, state_dict, tmp_path, value):
    broken = {k: v.clone() for k, v in state_dict.items()}
    broken["q_net.q_net.2.weight"][3, 5] = value
    path = with_weights(cartpole_zip, tmp_path / "nan.zip", broken)
    with pytest.raises(
        InvalidSourceError, match=r"tensor 'q_net\.q_net\.2\.weight' holds 1 NaN or infinite.*allow_nonfinite=True"
    ):
        read_source(path)
    network = read_source(path, allow_nonfinite=True)
    assert not th.isfinite(network.tensors["q_net.q_net.2.weight"]).all()


def test_nonfinite_live_sources_are_refused():
    model = make_model(DQN, "CartPole-v1", **MLP_KWARGS)
    with th.no_grad():
        model.policy.q_net.q_net[0].bias[0] = float("nan")
    with pytest.raises(InvalidSourceError, match=r"q_net\.q_net\.0\.bias"):
        read_source(model)
    assert read_source(model, allow_nonfinite=True).net_arch == [16, 16]
    encoder = nn.Linear(3, 2)
    with th.no_grad():
        encoder.weight[0, 0] = float("inf")
    with pytest.raises(InvalidSourceError, match=r"features_extractor\.module\.weight"):
        read_source(encoder)


# ---- 3. activations from an allow-list ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "recorded",
    [
        "<class 'torch.nn.modules.activation.Threshold'>",  # needs arguments
        "<class 'torch.nn.modules.activation.GLU'>",  # halves the width
        "<class 'torch.nn.modules.activation.Softmax2d'>",
        "<class 'torch.nn.modules.activation.PReLU'>",  # has parameters: would shift the layer groups
        "<class 'torch.nn.modules.activation.MultiheadAttention'>",
        "<class 'torch.nn.modules.activation.Module'>",
        "<class 'torch.nn.modules.linear.Linear'>",
        "<class 'mypackage.MyActivation'>",
        42,
    ],
)
def test_activation_outside_the_allow_list_is_refused(cartpole_zip, tmp_path, recorded):
    path = with_data(cartpole_zip, tmp_path / "act.zip", policy_kwargs={"activation_fn": recorded})
    name = str(recorded).rsplit(".", 1)[-1].strip("'>")
    with pytest.raises(InvalidSourceError, match=rf"activation_fn .*{name}"):
        read_source(path)


@pytest.mark.parametrize("module, name", [("activation", "Tanh"), ("activation", "LeakyReLU"), ("linear", "Identity")])
def test_allowed_activations_are_read(cartpole_zip, tmp_path, module, name):
    recorded = f"<class 'torch.nn.modules.{module}.{name}'>"
    path = with_data(cartpole_zip, tmp_path / "act.zip", policy_kwargs={"activation_fn": recorded})
    assert read_source(path).activation_fn is getattr(nn, name)


@pytest.mark.parametrize("name", sorted(set().union(*sources.SAFE_ACTIVATIONS.values())))
def test_allow_list_holds_only_elementwise_width_keeping_activations(name):
    cls = getattr(nn, name)
    assert str(cls).rsplit(".", 2)[-2] in sources.SAFE_ACTIVATIONS  # its module is the one the list files it under
    activation = cls()  # built without arguments
    assert not list(activation.parameters())
    x = th.randn(3, 7)
    assert activation.eval()(x).shape == x.shape
    assert th.allclose(activation(x)[:, :1], activation(x[:, :1]))  # element-wise: a column does not see the others


# ---- 4. metadata that disagrees with the tensors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"policy_kwargs": {"n_quantiles": 7}}, r"n_quantiles = 7.*20 outputs"),
        ({"action_space": {"n": 4}}, r"action_space\.n = 4 and n_quantiles = 10, 40 outputs.*20 outputs"),
        ({"action_space": {"n": 3}}, r"action_space\.n = 3.*20 outputs"),
        ({"action_space": {"n": 0}}, r"action_space\.n = 0.*20 outputs"),
        ({"policy_kwargs": {"n_quantiles": True}}, r"n_quantiles = True.*20 outputs"),
        ({"policy_kwargs": {"n_quantiles": "10"}}, r"n_quantiles = '10'.*20 outputs"),
    ],
    ids=["quantiles-7", "actions-4", "actions-3", "actions-0", "quantiles-true", "quantiles-str"],
)
def test_qrdqn_metadata_that_disagrees_with_the_head_is_refused(qrdqn_zip, tmp_path, changes, match):
    assert read_source(qrdqn_zip).n_quantiles == 10
    path = with_data(qrdqn_zip, tmp_path / "meta.zip", **changes)
    with pytest.raises(InvalidSourceError, match=match):
        read_source(path)


def test_dqn_action_count_that_disagrees_with_the_head_is_refused(cartpole_zip, tmp_path):
    path = with_data(cartpole_zip, tmp_path / "meta.zip", action_space={"n": 3})
    with pytest.raises(InvalidSourceError, match=r"action_space\.n = 3, but its head has 2 outputs"):
        read_source(path)


# ---- 5. damaged weights are not unsafe ones ----------------------------------------------------------------------------


def archive_with_pickle(pickled: bytes):
    def make(cartpole_zip) -> bytes:
        with zipfile.ZipFile(cartpole_zip) as archive:
            return rezip(archive.read("policy.pth"), replace={"archive/data.pkl": pickled})

    return make


@pytest.mark.parametrize(
    "weights",
    [
        lambda _: random.Random(0).randbytes(5000),
        lambda _: b"PK\x03\x04" + random.Random(1).randbytes(5000),
        lambda _: sources._LEGACY_MAGIC + random.Random(2).randbytes(5000),
        lambda _: b"\x80\x02" + random.Random(3).randbytes(5000),
        archive_with_pickle(b"\x80\x02}q\x00(X\x05\x00garbage"),
        archive_with_pickle(b"\x80\x02" + b"]" * 10 + b"0."),  # well formed, but no state dict: lists, POP
    ],
    ids=["random", "zip-magic", "legacy-magic", "pickle-magic", "damaged-pickle", "unreadable-pickle"],
)
def test_garbage_weights_are_damaged_not_unsafe(cartpole_zip, tmp_path, weights):
    path = rewrite_zip(cartpole_zip, tmp_path / "garbage.zip", **{"policy.pth": weights(cartpole_zip)})
    with pytest.raises(InvalidSourceError, match=r"garbage\.zip.*damaged") as caught:
        read_source(path)
    assert not isinstance(caught.value, UnsafeSourceError) and "trust_source" not in str(caught.value)


class RunsCode:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_well_formed_pickle_of_other_objects_is_unsafe(cartpole_zip, tmp_path, legacy, capsys):
    path = with_weights(cartpole_zip, tmp_path / "evil.zip", {"q_net.q_net.0.weight": RunsCode()}, legacy=legacy)
    with pytest.raises(UnsafeSourceError, match=r"evil\.zip.*other than tensors \(print\).*trust_source=True"):
        read_source(path)
    assert "pwned" not in capsys.readouterr().out


def test_legacy_format_of_sb3_1_0_is_read(cartpole_zip, state_dict, tmp_path):
    path = with_weights(cartpole_zip, tmp_path / "legacy.zip", state_dict, legacy=True)
    network = read_source(path)
    assert network.net_arch == [16, 16] and th.equal(
        network.tensors["q_net.q_net.4.weight"], state_dict["q_net.q_net.4.weight"]
    )


# ---- 6. every error is a TransferError ---------------------------------------------------------------------------------


def read_or_transfer_error(path) -> None:
    try:
        read_source(path)
    except TransferError:
        pass


def test_mutated_files_raise_only_transfer_errors(cartpole_zip, tmp_path):
    """Bytes flipped and files cut, at every level (the zip, policy.pth, its pickle): a TransferError or a network."""
    rng = random.Random(15)
    outer = cartpole_zip.read_bytes()
    with zipfile.ZipFile(cartpole_zip) as archive:
        weights = archive.read("policy.pth")
    with zipfile.ZipFile(io.BytesIO(weights)) as archive:
        pickled = archive.read("archive/data.pkl")

    def mutate(content: bytes) -> bytes:
        content = bytearray(content)
        for _ in range(rng.randint(1, 4)):
            content[rng.randrange(len(content))] = rng.randrange(256)
        return bytes(content)

    path = tmp_path / "mutant.zip"
    cases = [
        *(("zip", mutate(outer)) for _ in range(60)),
        *(("cut", outer[: rng.randrange(len(outer))]) for _ in range(20)),
        *(("weights", rezip(outer, replace={"policy.pth": mutate(weights)})) for _ in range(60)),
        *(("weights-cut", rezip(outer, replace={"policy.pth": weights[: rng.randrange(len(weights))]})) for _ in range(20)),
        *(
            ("pickle", rezip(outer, replace={"policy.pth": rezip(weights, replace={"archive/data.pkl": mutate(pickled)})}))
            for _ in range(80)
        ),
    ]
    for level, content in cases:
        path.write_bytes(content)
        try:
            read_or_transfer_error(path)
        except Exception as e:
            pytest.fail(f"a mutated file ({level}) raised {type(e).__name__}: {e}")


# ---- 7. strings from the file are shown escaped ------------------------------------------------------------------------


def test_control_characters_from_the_file_are_escaped(cartpole_zip, tmp_path):
    evil = "2.3\x1b[2J\nnote: all weights copied\r"
    data = data_of(cartpole_zip)
    data["policy_kwargs"]["features_extractor_kwargs"] = {"x\n\x1b[31mnote: fake": 1}
    path = rewrite_zip(
        cartpole_zip, tmp_path / "ansi.zip", data=json.dumps(data).encode(), _stable_baselines3_version=evil.encode()
    )
    network = read_source(path)
    shown = [network.sb3_version, network.description, *network.notes]
    assert all(text.isprintable() for text in shown)
    assert network.sb3_version == "2.3\\x1b[2J\\nnote: all weights copied"  # stripped, then escaped
    assert any("x\\n\\x1b[31mnote: fake" in note for note in network.notes)


def test_control_characters_in_names_are_escaped_in_errors(cartpole_zip, state_dict, tmp_path):
    path = with_weights(cartpole_zip, tmp_path / "names.zip", {**state_dict, "q_net.\x1b[2J\nweight": th.zeros(2)})
    with pytest.raises(InvalidSourceError, match=r"not a module path") as caught:
        read_source(path)
    assert str(caught.value).isprintable()
    data = data_of(cartpole_zip)
    data["policy_kwargs"]["features_extractor_class"] = "<class 'evil\x1b[2J\nExtractor'>"
    network = read_source(rewrite_zip(cartpole_zip, tmp_path / "cls.zip", data=json.dumps(data).encode()))
    assert network.features_extractor_name.isprintable() and all(note.isprintable() for note in network.notes)


@pytest.mark.parametrize("pickled", [b"\x80\x02cos\x1b[2J\nsystem\nq\x00.", b"\x80\x02X\x03\x00\x00\x00\x1b\nwq\x00."])
def test_names_in_the_pickle_do_not_reach_messages_unescaped(cartpole_zip, tmp_path, pickled):
    with zipfile.ZipFile(cartpole_zip) as archive:
        weights = rezip(archive.read("policy.pth"), replace={"archive/data.pkl": pickled})
    path = rewrite_zip(cartpole_zip, tmp_path / "evil.zip", **{"policy.pth": weights})
    with pytest.raises(InvalidSourceError) as caught:
        read_source(path)
    assert str(caught.value).isprintable()
