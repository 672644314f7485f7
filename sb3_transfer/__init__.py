"""sb3-transfer: transfer learning for Stable-Baselines3 DQN and QR-DQN agents."""

import os

from sb3_transfer import envs  # noqa: F401  (registers the target-task variants with gymnasium)
from sb3_transfer.adapt import load_and_adapt
from sb3_transfer.adapters import InputAdapter, ModuleExtractor
from sb3_transfer.errors import (
    IncompatibleSpaceError,
    InvalidSourceError,
    OutputError,
    OutputExistsError,
    OutputInUseError,
    SourceNotFoundError,
    StrictTransferError,
    TransferConfigError,
    TransferError,
    UnsafeSourceError,
    UnsupportedSourceError,
)
from sb3_transfer.policies import TransferDQNPolicy, TransferQRDQNPolicy
from sb3_transfer.sources import SourceNetwork, read_source
from sb3_transfer.transplant import TransferReport, TransferRow, transplant

with open(os.path.join(os.path.dirname(__file__), "version.txt")) as file_handler:
    __version__ = file_handler.read().strip()

__all__ = [
    "IncompatibleSpaceError",
    "InputAdapter",
    "InvalidSourceError",
    "ModuleExtractor",
    "OutputError",
    "OutputExistsError",
    "OutputInUseError",
    "SourceNetwork",
    "SourceNotFoundError",
    "StrictTransferError",
    "TransferConfigError",
    "TransferDQNPolicy",
    "TransferError",
    "TransferQRDQNPolicy",
    "TransferReport",
    "TransferRow",
    "UnsafeSourceError",
    "UnsupportedSourceError",
    "load_and_adapt",
    "read_source",
    "transplant",
]
