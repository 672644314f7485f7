"""The exceptions sb3-transfer raises. Each subclasses the built-in type a caller would already catch."""


class TransferError(Exception):
    """Base class of every error sb3-transfer raises on purpose."""


class SourceNotFoundError(TransferError, FileNotFoundError):
    """The pretrained source file does not exist."""


class InvalidSourceError(TransferError, ValueError):
    """The source exists but cannot be read as a pretrained network (not a zip, truncated, not an SB3 model...)."""


class UnsafeSourceError(InvalidSourceError):
    """Reading the source would execute code from it; refused unless the user passes ``trust_source=True``."""


class UnsupportedSourceError(InvalidSourceError):
    """The source is a valid model of an algorithm sb3-transfer cannot transplant from (PPO, SAC, ...)."""


class TransferConfigError(TransferError, ValueError):
    """An argument of the transfer (``transfer=``, ``action_map=``, ``algo=``...) is invalid."""


class IncompatibleSpaceError(TransferError, ValueError):
    """The target task's spaces cannot be served by the requested algorithm (e.g. a continuous action space for DQN)."""


class StrictTransferError(TransferError, ValueError):
    """``strict=True`` was asked for and some pretrained tensor could not be carried over as it is."""


class OutputError(TransferError, OSError):
    """An output cannot be written where it was asked for: its folder cannot be made or written, or the path is a folder."""


class OutputExistsError(OutputError, FileExistsError):
    """An output path exists and overwriting it was not asked for (``--force``)."""


class OutputInUseError(OutputError):
    """An output folder is being written by another running process (a benchmark suite's folder, held by its lock)."""
