"""What the README promises about itself. Its examples run in tests/test_docs.py, with those of docs/."""

import re
from pathlib import Path

import pytest

from sb3_transfer.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
#: The main job's run time, as measured (sb3_transfer/bench/suites.py says where).
QUICK_TIME = "about 2 minutes on 2 idle cores, 7 to 11 on a busy machine"


def test_readme_shows_the_quickstart_file_verbatim():
    quickstart = (ROOT / "benchmarks" / "quickstart.py").read_text()
    assert f"```python\n{quickstart}```" in README


def test_readme_has_exactly_two_setup_commands():
    setup = README.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", setup, re.S)
    assert len(commands) == 2
    assert "sb3-transfer bench --suite quick" in commands[0] and "pytest" in commands[1]


def test_the_main_jobs_run_time_is_the_same_in_readme_help_and_suites(capsys):
    setup = README.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    assert QUICK_TIME in setup
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert QUICK_TIME in " ".join(capsys.readouterr().out.split())
    assert QUICK_TIME in (ROOT / "sb3_transfer" / "bench" / "suites.py").read_text()


def test_readme_is_short_and_links_every_guide():
    assert len(README.splitlines()) <= 200
    for guide in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{guide.name})" in README, f"README does not link docs/{guide.name}"
    assert "(benchmarks/results/README.md)" in README


def test_readme_says_what_is_not_supported():
    support = README.split("## Set-up on a fresh machine", 1)[0]
    for name in ("DQN", "QR-DQN", "Discrete", "PPO", "SAC", "TD3"):
        assert name in support
