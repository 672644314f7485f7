"""Every example in README.md and docs/*.md runs.

A file's examples run in document order, in one temporary folder: its ```python blocks in one namespace (so that a
later block builds on an earlier one), its ```bash blocks command by command with ``bash -c`` (``sb3-transfer`` and
``python`` are this environment's). Blocks that are not commands to run (synopses, outputs) are ```text; no other
kind of block is allowed, so that nothing escapes the test.

A block after the line ``<!-- slow -->`` is slow: the default test of its file leaves it out (so a fast block must not
need a slow one), and the slow test of the file runs every block of it in order.

What the test changes in a command, and why:

- step counts are lowered (the options in ``LOWERED``: ``--steps``, rl-zoo3's ``-n``, and the evaluation settings
  that go with them), so that a command written for a real run checks the path in seconds;
- the examples run on one thread (torch in this process, ``OMP_NUM_THREADS=1`` in the commands): their networks are
  small, and a busy machine's other jobs then slow them no more than their share;
- the repository's ``zoo_configs/`` is linked into the folder, as the commands that use it run from the repository's
  root;
- in the README's set-up commands the ``pip install`` steps are left out (this environment is that installation),
  and ``python -m pytest`` is not run (it is the command that runs this test: ``.ci/run`` runs it, taken from the
  README).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch as th

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SLOW = "<!-- slow -->"
LANGUAGES = ("python", "bash", "text")
#: Options whose counts are lowered to at most these values.
LOWERED = {"--steps": 1_000, "-n": 1_000, "--eval-freq": 500, "--eval-episodes": 2, "--n-eval-episodes": 2}
#: The README's test command: run by .ci/run, and the command that runs this test.
TEST_COMMAND = "python -m pytest"


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    code: str
    slow: bool

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} ({self.language})"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, in order."""
    lines = path.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.fullmatch(r"```(\S*)\s*", lines[i])
        if fence is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"{path.name}:{i + 1}: a code block is not closed"
        slow = i > 0 and lines[i - 1].strip() == SLOW
        found.append(Block(path, i + 1, fence.group(1), "\n".join(lines[i + 1 : end]) + "\n", slow))
        i = end + 1
    return found


def commands(block: Block) -> list[str]:
    """
    The shell commands of a bash block: lines continued with a backslash joined, comments and blank lines left out; a
    here-document (``<<'EOF'`` to ``EOF``) stays with its command.
    """
    lines = re.sub(r"[ \t]*\\\n\s*", " ", block.code).splitlines()
    found, i = [], 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        heredoc = re.search(r"<<-?\s*(['\"]?)(\w+)\1", line)
        if heredoc:
            end = next(j for j in range(i, len(lines)) if lines[j].strip() == heredoc[2])
            line, i = "\n".join([line, *lines[i : end + 1]]), end + 1
        found.append(line)
    return found


def lowered(command: str) -> str:
    """The command with its step counts lowered (``LOWERED``)."""
    for option, cap in LOWERED.items():
        pattern = rf"(?<!\S)({re.escape(option)})(\s+|=)(\d[\d_]*)(?!\S)"
        command = re.sub(pattern, lambda m, cap=cap: f"{m[1]}{m[2]}{min(int(m[3].replace('_', '')), cap)}", command)
    return command


def runnable(command: str) -> str | None:
    """The part of a command this test runs: without ``pip install`` steps; ``None`` for the test command itself."""
    steps = [step.strip() for step in command.split("&&")]
    steps = [step for step in steps if not step.startswith("pip install")]
    if not steps or steps == [TEST_COMMAND]:
        return None
    return " && ".join(steps)


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MPLBACKEND"] = "Agg"
    env["OMP_NUM_THREADS"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run_blocks(path: Path, folder: Path, monkeypatch, slow: bool) -> None:
    """Run a file's blocks in order in ``folder``: every block with ``slow``, else the fast ones."""
    monkeypatch.chdir(folder)
    (folder / "zoo_configs").symlink_to(ROOT / "zoo_configs")
    threads = th.get_num_threads()
    th.set_num_threads(1)
    try:
        _run(path, folder, slow)
    finally:
        th.set_num_threads(threads)


def _run(path: Path, folder: Path, slow: bool) -> None:
    namespace: dict = {"__name__": "__main__"}
    env = _environment()
    for block in blocks(path):
        if block.slow and not slow:
            continue
        if block.language == "python":
            exec(compile(block.code, f"{block.path.name}:{block.line}", "exec"), namespace)
        elif block.language == "bash":
            for command in commands(block):
                command = runnable(lowered(command))
                if command is None:
                    continue
                result = subprocess.run(
                    ["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True, timeout=1800
                )
                assert result.returncode == 0, (
                    f"{block}: `{command}` failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
                )


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", DOCS, ids=_id)
def test_examples_run(path, tmp_path, monkeypatch):
    run_blocks(path, tmp_path, monkeypatch, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in DOCS if any(b.slow for b in blocks(p))], ids=_id)
def test_examples_run_with_the_slow_ones(path, tmp_path, monkeypatch):
    run_blocks(path, tmp_path, monkeypatch, slow=True)


@pytest.mark.parametrize("path", DOCS, ids=_id)
def test_every_block_is_run_or_marked_as_text(path):
    for block in blocks(path):
        assert block.language in LANGUAGES, f"{block}: a block is ```python, ```bash (both run) or ```text (not run)"


@pytest.mark.parametrize("path", DOCS, ids=_id)
def test_links_to_files_resolve(path):
    text = path.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        assert resolved.exists(), f"{_id(path)}: the link {target} leads nowhere"
        if anchor and resolved.suffix == ".md":
            headings = re.findall(r"^#+\s+(.+)$", resolved.read_text(), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{_id(path)}: the link {target} names no heading of {resolved.name}"


def test_lowering_and_the_setup_commands():
    assert (
        lowered("sb3-transfer pretrain CartPole-v1 -o a.zip --steps 20000")
        == "sb3-transfer pretrain CartPole-v1 -o a.zip --steps 1000"
    )
    assert lowered("python -m rl_zoo3.train -n 50_000 --eval-freq 2500 --eval-episodes 10") == (
        "python -m rl_zoo3.train -n 1000 --eval-freq 500 --eval-episodes 2"
    )
    assert lowered("sb3-transfer train a.zip CartPole-v1 --steps 500") == "sb3-transfer train a.zip CartPole-v1 --steps 500"
    assert runnable('pip install torch==2.13.0 && pip install -e ".[test]" && python -m pytest') is None
    assert runnable('pip install torch==2.13.0 && pip install -e ".[zoo,plots]" && sb3-transfer bench --suite quick') == (
        "sb3-transfer bench --suite quick"
    )
    assert shlex.split(runnable("sb3-transfer inspect a.zip")) == ["sb3-transfer", "inspect", "a.zip"]
    block = Block(ROOT, 1, "bash", "cat > a.yml <<'EOF'\nkey: 1\nEOF\n# a comment\npython -m x \\\n    -n 50000\n", False)
    assert commands(block) == ["cat > a.yml <<'EOF'\nkey: 1\nEOF", "python -m x -n 50000"]
