import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_shows_the_quickstart_file_verbatim():
    readme = (ROOT / "README.md").read_text()
    quickstart = (ROOT / "benchmarks" / "quickstart.py").read_text()
    assert quickstart in readme


def test_readme_has_exactly_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", setup, re.S)
    assert len(commands) == 2
    assert "sb3-transfer bench --suite quick" in commands[0] and "pytest" in commands[1]


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(ROOT / "benchmarks" / "quickstart.py"), run_name="__main__")
    assert "Transfer report" in capsys.readouterr().out
    assert (tmp_path / "acrobot_from_cartpole.zip").exists()


def test_readme_minatar_snippet_runs():
    pytest.importorskip("minatar")
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"```python\n(from stable_baselines3 import DQN\nfrom sb3_transfer.extractors.+?)```", readme, re.S)
    assert snippet, "the MinAtar snippet is gone from the README"
    scope: dict = {}
    exec(snippet.group(1), scope)
    assert type(scope["model"].policy.q_net.features_extractor).__name__ == "SmallCNN"
