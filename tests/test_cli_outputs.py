"""The command line against careless and hostile use: bad counts and tasks, outputs it cannot write, interruptions."""

import pytest

from sb3_transfer.cli import main
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
    monkeypatch.setattr("sb3_transfer.cli.read_source", _raise(RuntimeError("first line\nsecond line")))
    assert main(["inspect", "x.zip"]) == 1
    _one_line_error(capsys, "sb3-transfer inspect: error: RuntimeError: first line second line (run with --debug")
    for args in (["--debug", "inspect", "x.zip"], ["inspect", "x.zip", "--debug"]):  # before or after the command
        with pytest.raises(RuntimeError, match="first line"):
            main(args)


def test_a_user_error_is_one_line_whatever_its_message_holds(monkeypatch, capsys):
    # A message may quote a file's strings: line breaks and terminal escapes must not reach the terminal as such.
    monkeypatch.setattr("sb3_transfer.cli.read_source", _raise(TransferConfigError("bad\nnote: forged\x1b[31m")))
    assert main(["inspect", "x.zip"]) == 2
    _one_line_error(capsys, "sb3-transfer inspect: error: bad note: forged\\x1b[31m")
    with pytest.raises(TransferConfigError):
        main(["--debug", "inspect", "x.zip"])


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    monkeypatch.setattr("sb3_transfer.cli.read_source", _raise(KeyboardInterrupt))
    assert main(["inspect", "x.zip"]) == 130
    assert capsys.readouterr().err == "sb3-transfer inspect: interrupted\n"


def test_output_errors_are_transfer_errors():
    from sb3_transfer import OutputExistsError, TransferError

    assert issubclass(OutputError, TransferError) and issubclass(OutputExistsError, FileExistsError)
