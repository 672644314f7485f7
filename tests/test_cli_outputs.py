"""The command line against careless and hostile use: bad counts and tasks, outputs it cannot write, interruptions."""

import errno
import os

import pytest
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_transfer.cli import _write_json, main
from sb3_transfer.errors import OutputError, TransferConfigError


def _one_line_error(capsys, message):
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    return err


def _raise(error):
    def run(*args, **kwargs):
        raise error

    return run


def test_an_unexpected_error_is_one_line_with_the_debug_hint(monkeypatch, capsys):
    monkeypatch.setattr("sb3_transfer.sources.read_source", _raise(RuntimeError("first line\nsecond line")))
    assert main(["inspect", "x.zip"]) == 1
    _one_line_error(capsys, "sb3-transfer inspect: error: RuntimeError: first line second line (run with --debug")
    for args in (["--debug", "inspect", "x.zip"], ["inspect", "x.zip", "--debug"]):  # before or after the command
        with pytest.raises(RuntimeError, match="first line"):
            main(args)


def test_a_user_error_is_one_line_whatever_its_message_holds(monkeypatch, capsys):
    # A message may quote a file's strings: line breaks and terminal escapes must not reach the terminal as such.
    monkeypatch.setattr("sb3_transfer.sources.read_source", _raise(TransferConfigError("bad\nnote: forged\x1b[31m")))
    assert main(["inspect", "x.zip"]) == 2
    _one_line_error(capsys, "sb3-transfer inspect: error: bad note: forged\\x1b[31m")
    with pytest.raises(TransferConfigError):
        main(["--debug", "inspect", "x.zip"])


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    monkeypatch.setattr("sb3_transfer.sources.read_source", _raise(KeyboardInterrupt))
    assert main(["inspect", "x.zip"]) == 130
    assert capsys.readouterr().err == "sb3-transfer inspect: interrupted\n"


def test_output_errors_are_transfer_errors():
    from sb3_transfer import OutputExistsError, OutputInUseError, TransferError

    assert issubclass(OutputError, TransferError) and issubclass(OutputExistsError, FileExistsError)
    assert issubclass(OutputInUseError, OutputError)


@pytest.fixture
def no_training(monkeypatch):
    """Training fails the test: what is checked before training must fail before it."""

    def learn(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(BaseAlgorithm, "learn", learn)


@pytest.mark.parametrize(
    "args, message",
    [
        (["pretrain", "Pendulum-v1", "-o", "{tmp}/x.zip"], "Pendulum-v1 has actions Box"),
        (["train", "scratch", "Pendulum-v1", "--log-dir", "{tmp}"], "need a Discrete action space"),
        (["train", "{src}", "Pendulum-v1", "--log-dir", "{tmp}"], "need a Discrete action space"),
        (["pretrain", "NoSuchEnv-v0", "-o", "{tmp}/x.zip"], "environment NoSuchEnv-v0 cannot be made here"),
        (["train", "scratch", "NoSuchEnv-v0", "--log-dir", "{tmp}"], "environment NoSuchEnv-v0 cannot be made here"),
        (["train", "scratch", "CartPole-v1", "--score-range", "5", "5", "--log-dir", "{tmp}"], "give LOW < HIGH"),
        (["train", "scratch", "CartPole-v1", "--baseline", "{tmp}/none.npz", "--log-dir", "{tmp}"], "does not exist"),
    ],
)
def test_bad_tasks_and_settings_fail_before_training_in_one_line(cartpole_zip, tmp_path, capsys, no_training, args, message):
    assert main([a.format(src=cartpole_zip, tmp=tmp_path) for a in args]) == 2
    _one_line_error(capsys, message)
    assert list(tmp_path.iterdir()) == []  # no model, no run folder


@pytest.mark.parametrize(
    "args",
    [
        ["pretrain", "CartPole-v1", "-o", "x.zip", "--steps"],
        ["train", "scratch", "CartPole-v1", "--steps"],
        ["train", "scratch", "CartPole-v1", "--eval-freq"],
        ["train", "scratch", "CartPole-v1", "--n-eval-episodes"],
        ["train", "scratch", "CartPole-v1", "--unfreeze-every"],
        ["bench", "--workers"],
    ],
)
@pytest.mark.parametrize("value", ["0", "-5", "1.5"])
def test_counts_must_be_positive_whole_numbers(capsys, no_training, args, value):
    with pytest.raises(SystemExit) as exit_info:
        main([*args, value])
    assert exit_info.value.code == 2
    expected = "give a whole number" if value == "1.5" else "give a whole number >= 1"
    assert f"argument {args[-1]}: '{value}': {expected}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--warmup", "-1", "give a whole number >= 0"),
        ("--seed", "-1", "give a whole number >= 0"),
        ("--threshold", "nan", "give a finite number"),
    ],
)
def test_other_numbers_are_checked_by_the_parser(capsys, no_training, flag, value, message):
    with pytest.raises(SystemExit):
        main(["train", "scratch", "CartPole-v1", flag, value])
    assert f"argument {flag}: '{value}': {message}" in capsys.readouterr().err


@pytest.fixture
def blocked(tmp_path):
    """A regular file where a folder would have to be (unwritable whoever runs the tests, root too)."""
    path = tmp_path / "a-file"
    path.write_text("")
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["pretrain", "CartPole-v1", "-o", "{blocked}/x.zip"], "cannot write in the folder {blocked}: {blocked} is a file"),
        (["adapt", "{src}", "Acrobot-v1", "-o", "{blocked}/sub/x"], "{blocked} is a file, not a folder"),
        (
            ["train", "scratch", "CartPole-v1", "--log-dir", "{blocked}"],
            "{blocked} is a file, not a folder; choose another --log-dir",
        ),
    ],
)
def test_outputs_that_cannot_be_written_fail_before_training(cartpole_zip, blocked, capsys, no_training, args, message):
    assert main([a.format(src=cartpole_zip, blocked=blocked) for a in args]) == 2
    _one_line_error(capsys, message.format(blocked=blocked))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_an_output_that_is_not_a_regular_file_is_refused_even_with_force(tmp_path, capsys, no_training):
    os.mkfifo(tmp_path / "pipe.zip")  # writing into it would hang until someone reads
    assert main(["pretrain", "CartPole-v1", "-o", str(tmp_path / "pipe.zip"), "--force"]) == 2
    _one_line_error(capsys, f"{tmp_path / 'pipe.zip'} exists and is not a regular file")


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_an_output_that_is_a_folder_is_refused(tmp_path, capsys, no_training, force):
    folder = tmp_path / "dir.zip"
    folder.mkdir()
    assert main(["pretrain", "CartPole-v1", "-o", str(folder), *force]) == 2
    _one_line_error(capsys, f"{folder} is a folder; give a file name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.zip"]  # SB3 would have saved dir.zip_2


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes in read-only folders")
def test_a_read_only_output_folder_fails_before_training(tmp_path, capsys, no_training):
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    try:
        assert main(["pretrain", "CartPole-v1", "-o", str(folder / "x.zip")]) == 2
    finally:
        folder.chmod(0o700)
    _one_line_error(capsys, f"cannot write in the folder {folder}: Permission denied")


@pytest.mark.parametrize("command", ["pretrain", "adapt", "train"])
def test_a_folder_that_refuses_files_fails_before_training(cartpole_zip, tmp_path, capsys, monkeypatch, no_training, command):
    # What a read-only file system says, even to root (who passes the permission bits, so the test above skips for root).
    def refused(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("sb3_transfer.cli.tempfile.TemporaryFile", refused)
    args = {
        "pretrain": ["pretrain", "CartPole-v1", "-o", str(tmp_path / "x.zip")],
        "adapt": ["adapt", str(cartpole_zip), "CartPole-v1", "-o", str(tmp_path / "x.zip")],
        "train": ["train", "scratch", "CartPole-v1", "--log-dir", str(tmp_path)],
    }[command]
    assert main(args) == 2
    _one_line_error(capsys, ": Read-only file system; choose another")


@pytest.mark.parametrize("command", ["pretrain", "adapt"])
def test_an_interrupted_save_keeps_the_previous_file(cartpole_zip, tmp_path, capsys, monkeypatch, command):
    output = tmp_path / "model.zip"
    output.write_bytes(b"the previous model")

    def interrupted_save(self, path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(BaseAlgorithm, "save", interrupted_save)
    args = (
        ["pretrain", "CartPole-v1", "--steps", "10"] if command == "pretrain" else ["adapt", str(cartpole_zip), "CartPole-v1"]
    )
    assert main([*args, "-o", str(output), "--force", "--no-progress-bar"]) == 130
    _one_line_error(capsys, f"sb3-transfer {command}: interrupted")
    assert output.read_bytes() == b"the previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.zip"]  # the partial file is gone too


def test_a_save_replaces_the_previous_file_and_leaves_nothing_else(cartpole_zip, tmp_path):
    output = tmp_path / "model.zip"
    output.write_bytes(b"the previous model")
    assert main(["adapt", str(cartpole_zip), "CartPole-v1", "-o", str(output), "--force"]) == 0
    assert output.read_bytes()[:2] == b"PK"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.report.json", "model.zip"]  # the report beside it


def test_json_that_cannot_be_written_keeps_the_previous_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"previous": 1}')
    with pytest.raises(TypeError):
        _write_json(path, {"value": object()})  # fails half way through serialising
    assert path.read_text() == '{"previous": 1}' and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_ctrl_c_during_bench_says_how_to_resume(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("sb3_transfer.bench.runner.run_suite", _raise(KeyboardInterrupt))
    monkeypatch.setattr("sys.argv", ["sb3-transfer", "bench", "--suite", "micro", "--out", str(tmp_path)])
    assert main(["bench", "--suite", "micro", "--out", str(tmp_path)]) == 130
    _one_line_error(
        capsys,
        f"sb3-transfer bench: interrupted; the finished runs are kept in {tmp_path}: "
        f"run `sb3-transfer bench --suite micro --out {tmp_path}` again to resume",
    )
