"""The package reaches into SB3 only through public API and documented overrides (the sb3-contrib way)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sb3_transfer"
SOURCES = sorted(PACKAGE.rglob("*.py"))
#: Underscore attributes of the standard library the package may use.
STDLIB_PRIVATE = {("os", "_exit")}


def trees():
    for path in SOURCES:
        yield path.relative_to(PACKAGE.parent), ast.parse(path.read_text())


def test_the_checks_see_the_package():
    assert len(SOURCES) > 20


@pytest.mark.parametrize("path, tree", list(trees()), ids=lambda x: str(x) if isinstance(x, Path) else "")
def test_no_frame_inspection_no_dict_subclass_no_private_sb3_api(path, tree):
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute | ast.Name):
            name = node.attr if isinstance(node, ast.Attribute) else node.id
            inspect_call = (
                isinstance(node, ast.Attribute) and ast.unparse(node.value) == "inspect" and name in ("stack", "trace")
            )
            if name in ("_getframe", "currentframe", "getouterframes", "f_back", "f_locals") or inspect_call:
                problems.append(f"line {node.lineno}: frame inspection ({name})")
        if isinstance(node, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id == "dict" for b in node.bases):
            problems.append(f"line {node.lineno}: class {node.name} subclasses dict")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("stable_baselines3", "sb3_contrib")):
            private = [a.name for a in node.names if a.name.startswith("_")] + [
                p for p in (node.module or "").split(".") if p.startswith("_")
            ]
            if private:
                problems.append(f"line {node.lineno}: private import {private} from {node.module}")
        if isinstance(node, ast.keyword) and node.arg == "_init_setup_model":
            problems.append(f"line {node.lineno}: _init_setup_model=")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            mine = isinstance(owner, ast.Name) and owner.id == "self"
            parent = isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super"
            stdlib = isinstance(owner, ast.Name) and (owner.id, node.attr) in STDLIB_PRIVATE
            if not (mine or parent or stdlib):
                problems.append(f"line {node.lineno}: private attribute {ast.unparse(node)} of an object not our own")
    assert not problems, f"{path}:\n" + "\n".join(problems)


def test_importing_the_package_or_its_metrics_imports_no_torch_and_switches_no_backend():
    code = (
        "import sys, sb3_transfer, sb3_transfer.metrics, sb3_transfer.bench.stats\n"
        "assert 'torch' not in sys.modules, 'torch'\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib'\n"
        "import types\n"
        "extra = {n for n, v in vars(sb3_transfer).items() if not n.startswith('_') and not isinstance(v, types.ModuleType)}\n"
        "assert extra <= set(sb3_transfer.__all__), extra - set(sb3_transfer.__all__)\n"
        "assert sb3_transfer.TransferDQN.__name__ == 'TransferDQN'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_plotting_leaves_the_users_matplotlib_backend_alone(tmp_path):
    pytest.importorskip("matplotlib")
    code = (
        "import matplotlib\nmatplotlib.use('svg')\n"
        "from sb3_transfer.plots import plot_transfer\n"
        f"plot_transfer({{'a': ([0, 1], [0, 1])}}, {str(tmp_path / 'x.png')!r})\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "x.png").stat().st_size > 0


def test_the_benchmark_runner_leaves_the_processes_torch_threads_alone(tmp_path):
    import torch as th

    from sb3_transfer.bench.runner import Run, execute
    from sb3_transfer.bench.suites import SUITES

    suite = SUITES["micro"]
    threads = th.get_num_threads()
    execute(Run(suite.pairs[0], suite.methods[0], 0), None)
    assert th.get_num_threads() == threads
