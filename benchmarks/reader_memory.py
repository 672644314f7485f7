"""Peak memory of reading hostile and ordinary SB3 zips (issue 15): each file read in a fresh process, its peak RSS
(Linux's VmHWM, reset after the imports) reported with the outcome.

    python benchmarks/reader_memory.py                       # this checkout's sb3_transfer
    python benchmarks/reader_memory.py --pythonpath OLD_DIR  # another copy, e.g. `git archive <rev> sb3_transfer`

Crafted files are small on disk (the bombs are deflated zeros) and are written to a temporary folder. Reading the
bombs with an unbounded reader takes several GB: run it on a machine that has them.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MiB, GiB = 2**20, 2**30

CHILD = r"""
import sys, time
sys.path[:0] = {pythonpath!r}
import torch  # noqa
import sb3_transfer
from sb3_transfer import load_and_adapt, read_source

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS: count the read alone
    f.write("5")
before = status("VmRSS")
start = time.perf_counter()
try:
    network = read_source({path!r})
    if {adapt!r}:
        load_and_adapt(network, "CartPole-v1", verbose=0)
    outcome = "read" + (" + adapted" if {adapt!r} else "")
except BaseException as e:
    outcome = f"{{type(e).__name__}}: {{str(e)[:90]}}"
print(sb3_transfer.__file__)
print(status("VmHWM") - before, time.perf_counter() - start, outcome.replace(chr(10), " "), sep="\t")
"""


def add_zeros(archive: zipfile.ZipFile, name: str, size: int, compress: int = zipfile.ZIP_DEFLATED) -> None:
    info = zipfile.ZipInfo(name)
    info.compress_type = compress
    with archive.open(info, "w", force_zip64=size >= 2 * GiB) as member:
        for _ in range(size // MiB):
            member.write(bytes(MiB))


def declare_size(content: bytearray, name: str, size: int) -> None:
    """Set member ``name``'s uncompressed size in its local and central headers to ``size`` (no zip64)."""
    with zipfile.ZipFile(io.BytesIO(bytes(content))) as archive:
        info, position = archive.getinfo(name), archive.start_dir
    content[info.header_offset + 22 : info.header_offset + 26] = size.to_bytes(4, "little")
    while content[position : position + 4] == b"PK\x01\x02":
        lengths = [int.from_bytes(content[position + i : position + i + 2], "little") for i in (28, 30, 32)]
        if content[position + 46 : position + 46 + lengths[0]] == name.encode():
            content[position + 24 : position + 28] = size.to_bytes(4, "little")
        position += 46 + sum(lengths)


def rewrite(
    src: Path, dst: Path, members: dict[str, bytes] | None = None, zeros: dict[str, int] | None = None, compress: bool = False
) -> Path:
    """A copy of an SB3 zip with members replaced by bytes, or by deflated zeros of a size."""
    members = members or {}
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=method) as zout:
        for name in zin.namelist():
            if name not in members and name not in (zeros or {}):
                zout.writestr(name, zin.read(name))
        for name, content in members.items():
            zout.writestr(name, content)
        for name, size in (zeros or {}).items():
            add_zeros(zout, name, size)
    return dst


def torch_bytes(obj, legacy: bool = False) -> bytes:
    import torch as th

    buffer = io.BytesIO()
    th.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def make_files(folder: Path) -> list[tuple[str, Path, bool]]:
    """The files to read: (case, path, whether to adapt the source to CartPole after reading it)."""
    import torch as th
    from stable_baselines3 import DQN

    files = []

    def add(case: str, name: str, adapt: bool = False, **rewrite_args) -> None:
        files.append((case, rewrite(cartpole, folder / name, **rewrite_args), adapt))

    cartpole, wide = folder / "cartpole.zip", folder / "wide_mlp.zip"
    for path, net_arch in ((cartpole, [64, 64]), (wide, [2048] * 4)):
        DQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=net_arch), buffer_size=100, device="cpu").save(path)
    files += [("ordinary: CartPole DQN [64, 64]", cartpole, False), ("ordinary: DQN [2048] x 4 (100 MB)", wide, False)]
    with zipfile.ZipFile(cartpole) as archive:
        weights = archive.read("policy.pth")
    state_dict = th.load(io.BytesIO(weights), weights_only=True)

    # A hidden layer of (2**22, 0) weights, no bias, then a (2, 0) head: an unbounded reader builds a 4M-unit layer.
    empty = {k: v for k, v in state_dict.items() if k != "q_net.q_net.2.bias"}
    empty |= {"q_net.q_net.2.weight": th.empty(2**22, 0), "q_net.q_net.4.weight": th.empty(2, 0)}
    add("(2**22, 0) Linear weight, adapted", "empty.zip", True, members={"policy.pth": torch_bytes(empty)})

    storage = th.zeros(2048 * 2048)  # 16 MiB
    views = {f"q_net.q_net.{2 * i}.weight": storage.view(2048, 2048) for i in range(40)}
    views |= {f"q_net.q_net.{2 * i}.bias": th.zeros(2048) for i in range(40)}
    views |= {
        "q_net.q_net.0.weight": th.zeros(2048, 4),
        "q_net.q_net.78.weight": th.zeros(2, 2048),
        "q_net.q_net.78.bias": th.zeros(2),
    }
    add("40 views of one 16 MiB storage, adapted", "views.zip", True, members={"policy.pth": torch_bytes(views)})

    inner = io.BytesIO()  # policy.pth whose record data/0, which its pickle reads, is 2.5 GiB of deflated zeros
    with zipfile.ZipFile(io.BytesIO(weights)) as zin, zipfile.ZipFile(inner, "w") as zout:
        for info in zin.infolist():
            if info.filename.endswith("data/0"):
                add_zeros(zout, info.filename, 5 * GiB // 2)
            else:
                zout.writestr(info.filename, zin.read(info))
    add("policy.pth record inflating to 2.5 GiB", "record.zip", members={"policy.pth": inner.getvalue()})

    for member in ("data", "policy.pth"):
        add(f"'{member}' declaring 1000 bytes, inflating to 1.5 GiB", f"liar_{member}.zip", zeros={member: 3 * GiB // 2})
        content = bytearray(files[-1][1].read_bytes())
        declare_size(content, member, 1000)
        files[-1][1].write_bytes(bytes(content))

    add("1 GiB _stable_baselines3_version", "version.zip", zeros={"_stable_baselines3_version": GiB})
    add("60 MiB of JSON '{},' in data", "items.zip", members={"data": b"[" + b"{}," * (60 * MiB // 3) + b"{}]"}, compress=True)

    lists = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(weights)) as zin, zipfile.ZipFile(lists, "w") as zout:
        for info in zin.infolist():
            pickled = b"\x80\x02" + b"]" * (MiB - 4) + b"0."  # a million empty lists, then STOP
            zout.writestr(info.filename, pickled if info.filename.endswith("data.pkl") else zin.read(info))
    add("1 MiB pickle of empty lists", "lists.zip", members={"policy.pth": lists.getvalue()})

    legacy = torch_bytes({"q_net.q_net.0.weight": th.zeros(77)}, legacy=True)
    # The storage's element count in the pickle, 77 ('KM'), declared as 2**31 - 1 (an 8 GiB float storage).
    legacy = legacy.replace(b"KM", b"J" + (2**31 - 1).to_bytes(4, "little"), 1)
    add("legacy policy.pth declaring an 8 GiB storage", "legacy.zip", members={"policy.pth": legacy})

    fifo = folder / "fifo.zip"
    os.mkfifo(fifo)
    files.append(("a FIFO", fifo, False))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pythonpath", default=None, help="folder holding the sb3_transfer to measure (default: this one)")
    args = parser.parse_args()
    pythonpath = [str(Path(args.pythonpath).resolve())] if args.pythonpath else [str(Path(__file__).resolve().parents[1])]
    with tempfile.TemporaryDirectory() as folder:
        files = make_files(Path(folder))
        machine = f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores"
        print(f"{machine}; sb3_transfer from {pythonpath[0]}")
        print("| file | on disk | peak RSS of reading | time | outcome |")
        print("|---|---|---|---|---|")
        for case, path, adapt in files:
            code = CHILD.format(pythonpath=pythonpath, path=str(path), adapt=adapt)
            size = "FIFO" if case == "a FIFO" else f"{path.stat().st_size / 1024:,.0f} kB"
            try:
                timeout = 30 if case == "a FIFO" else 300
                done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
                lines = done.stdout.strip().splitlines()
                peak, seconds, outcome = lines[-1].split("\t") if lines else ("nan", "nan", done.stderr[-200:])
                print(f"| {case} | {size} | {int(peak) / MiB:,.0f} MB | {float(seconds):.1f} s | {outcome} |", flush=True)
            except subprocess.TimeoutExpired:
                print(f"| {case} | {size} | - | > {timeout} s | hung (killed) |", flush=True)


if __name__ == "__main__":
    main()
