"""SB3's and sb3-contrib's own DQN / QR-DQN tests with sb3-transfer's policies as the algorithms' policy aliases
(``tests/sb3_suite/``): the plugin swaps the aliases (fast), and the suites pass as often as with SB3's own (slow)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sb3_contrib import QRDQN
from stable_baselines3 import DQN

SUITE = Path(__file__).resolve().parent / "sb3_suite"


def _load(name: str):
    full_name = f"sb3_suite_{name}"
    if full_name not in sys.modules:  # registered before it runs: its dataclasses look their module up
        spec = importlib.util.spec_from_file_location(full_name, SUITE / f"{name}.py")
        sys.modules[full_name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[full_name]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SUITE), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTEST_ADDOPTS", None)
    return env


INNER_TEST = """
import sb3_contrib.qrdqn
import stable_baselines3.dqn
from sb3_contrib import QRDQN
from stable_baselines3 import DQN

import sb3_transfer as st

EXPECTED = {
    DQN: {"MlpPolicy": st.TransferDQNPolicy, "CnnPolicy": st.TransferDQNCnnPolicy,
          "MultiInputPolicy": st.TransferDQNMultiInputPolicy},
    QRDQN: {"MlpPolicy": st.TransferQRDQNPolicy, "CnnPolicy": st.TransferQRDQNCnnPolicy,
            "MultiInputPolicy": st.TransferQRDQNMultiInputPolicy},
}


def test_aliases_are_ours():
    for algo, module in ((DQN, stable_baselines3.dqn), (QRDQN, sb3_contrib.qrdqn)):
        for name, policy in EXPECTED[algo].items():
            assert algo.policy_aliases[name] is policy
            assert getattr(module, name) is policy


def test_models_build_ours():
    assert type(DQN("MlpPolicy", "CartPole-v1", buffer_size=100).policy) is st.TransferDQNPolicy
    model = QRDQN("MlpPolicy", "CartPole-v1", buffer_size=100, policy_kwargs=dict(n_quantiles=3))
    assert type(model.policy) is st.TransferQRDQNPolicy
"""


def test_plugin_swaps_the_aliases(tmp_path):
    """``pytest -p transfer_aliases`` makes ``DQN("MlpPolicy", ...)`` / ``QRDQN(...)`` build sb3-transfer's policies."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # this folder is the inner run's rootdir, not the project's
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TEST))
    cmd = [sys.executable, "-m", "pytest", "-p", "transfer_aliases", "-p", "no:cacheprovider", "-q", str(tmp_path)]
    result = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_swap_is_undone_and_not_made_by_the_library():
    """Without the plugin the aliases are SB3's own (importing sb3_transfer changes nothing); the plugin undoes its swap."""
    import sb3_transfer  # noqa: F401
    from sb3_contrib.qrdqn.policies import QRDQNPolicy
    from stable_baselines3.dqn.policies import DQNPolicy

    own = {DQN: dict(DQN.policy_aliases), QRDQN: dict(QRDQN.policy_aliases)}
    assert own[DQN]["MlpPolicy"] is DQNPolicy and own[QRDQN]["MlpPolicy"] is QRDQNPolicy
    plugin = _load("transfer_aliases")
    try:
        swapped = plugin.swap_aliases()
        assert swapped["DQN"]["CnnPolicy"] == "TransferDQNCnnPolicy"
        assert swapped["QRDQN"]["MultiInputPolicy"] == "TransferQRDQNMultiInputPolicy"
        assert DQN.policy_aliases["MlpPolicy"] is not DQNPolicy
    finally:
        plugin.restore_aliases()
    assert DQN.policy_aliases == own[DQN] and QRDQN.policy_aliases == own[QRDQN]


def test_selection_rules(tmp_path):
    """A test is selected when its id names the algorithm, or when its body uses the algorithm's class."""
    run = _load("run")
    path = tmp_path / "test_x.py"
    path.write_text(
        "def test_a():\n    DQN('MlpPolicy')\n\ndef test_b():\n    from x import DQN\n    PPO\n\ndef test_c():\n    sb3.DQN\n"
    )
    assert run.names_used_by_tests(path) == {"test_a": {"DQN"}, "test_b": {"PPO"}, "test_c": {"sb3", "DQN"}}


@pytest.mark.slow
def test_sb3_and_contrib_suites_pass_with_our_policies(tmp_path):
    """
    SB3's DQN and sb3-contrib's QR-DQN tests (of the installed versions) pass as often with our policies: the
    ``--quick`` selection (building, training, saving and loading each policy kind; 5 to 11 minutes on 2 shared cores), or all
    of them (20 to 25 minutes) with ``SB3_SUITE_FULL=1``.
    """
    run = _load("run")
    folder = run.DEFAULT_CACHE
    try:
        for suite in run.SUITES.values():
            run.find_sdist(suite, folder, download=True)
    except run.SuiteError as e:
        pytest.skip(f"the SB3 / sb3-contrib source distributions cannot be found or downloaded: {e}")
    cmd = [sys.executable, str(SUITE / "run.py"), "--tests", str(folder), "--workdir", str(tmp_path)]
    if os.environ.get("SB3_SUITE_FULL") != "1":
        cmd.append("--quick")
    result = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    assert result.returncode == 0, result.stdout + result.stderr


def test_verdicts():
    """WORSE only where SB3's own policies passed every run; a test SB3's own also fail at times is flaky."""
    run = _load("run")
    passed, failed = run.Outcome("passed"), run.Outcome("failed", "assert 0")
    comparison = run.Comparison(
        sb3={"same": [passed], "worse": [passed] * 3, "flaky": [passed, failed, failed], "better": [failed] * 3},
        ours={"same": [passed], "worse": [passed, failed, passed], "flaky": [failed] * 3, "better": [passed] * 3},
    )
    assert comparison.differing() == ["worse", "flaky", "better"]
    assert comparison.regressions() == ["worse"]
    assert comparison.flaky() == ["flaky"]
