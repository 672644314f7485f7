"""sb3-transfer: transfer learning for Stable-Baselines3 agents (DQN, QR-DQN, PPO, A2C, MaskablePPO).

``import sb3_transfer`` registers the target-task variants with gymnasium and nothing else: the public names below are
imported when first used, so that ``import sb3_transfer.metrics`` (pure numpy) does not import torch.
"""

from importlib import import_module as _import_module
from pathlib import Path as _Path
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from sb3_transfer import envs  # noqa: F401  (registers the target-task variants with gymnasium)
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

__version__ = _Path(__file__).with_name("version.txt").read_text().strip()

# Public name -> the module that defines it.
_LAZY = {
    "load_and_adapt": "sb3_transfer.adapt",
    "TransferDQN": "sb3_transfer.algorithms",
    "TransferQRDQN": "sb3_transfer.algorithms",
    "TransferPPO": "sb3_transfer.algorithms",
    "TransferA2C": "sb3_transfer.algorithms",
    "TransferMaskablePPO": "sb3_transfer.algorithms",
    "TransferSAC": "sb3_transfer.algorithms",
    "TransferTQC": "sb3_transfer.algorithms",
    "TransferTD3": "sb3_transfer.algorithms",
    "TransferDDPG": "sb3_transfer.algorithms",
    "InputAdapter": "sb3_transfer.adapters",
    "ModuleExtractor": "sb3_transfer.adapters",
    "TransferDQNPolicy": "sb3_transfer.policies",
    "TransferDQNCnnPolicy": "sb3_transfer.policies",
    "TransferDQNMultiInputPolicy": "sb3_transfer.policies",
    "TransferQRDQNPolicy": "sb3_transfer.policies",
    "TransferQRDQNCnnPolicy": "sb3_transfer.policies",
    "TransferQRDQNMultiInputPolicy": "sb3_transfer.policies",
    "TransferActorCriticPolicy": "sb3_transfer.policies",
    "TransferActorCriticCnnPolicy": "sb3_transfer.policies",
    "TransferMultiInputActorCriticPolicy": "sb3_transfer.policies",
    "TransferMaskableActorCriticPolicy": "sb3_transfer.policies",
    "TransferMaskableActorCriticCnnPolicy": "sb3_transfer.policies",
    "TransferMaskableMultiInputActorCriticPolicy": "sb3_transfer.policies",
    "TransferSACPolicy": "sb3_transfer.policies",
    "TransferSACCnnPolicy": "sb3_transfer.policies",
    "TransferSACMultiInputPolicy": "sb3_transfer.policies",
    "TransferTQCPolicy": "sb3_transfer.policies",
    "TransferTQCCnnPolicy": "sb3_transfer.policies",
    "TransferTQCMultiInputPolicy": "sb3_transfer.policies",
    "TransferTD3Policy": "sb3_transfer.policies",
    "TransferTD3CnnPolicy": "sb3_transfer.policies",
    "TransferTD3MultiInputPolicy": "sb3_transfer.policies",
    "SourceNetwork": "sb3_transfer.sources",
    "read_source": "sb3_transfer.sources",
    "TransferReport": "sb3_transfer.transplant",
    "TransferRow": "sb3_transfer.transplant",
    "transplant": "sb3_transfer.transplant",
    "VecNormalizeStats": "sb3_transfer.vecnormalize",
    "apply_vecnormalize": "sb3_transfer.vecnormalize",
    "read_vecnormalize": "sb3_transfer.vecnormalize",
    "wrap_vecnormalize": "sb3_transfer.vecnormalize",
}

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
    "TransferA2C",
    "TransferActorCriticCnnPolicy",
    "TransferActorCriticPolicy",
    "TransferConfigError",
    "TransferDDPG",
    "TransferDQN",
    "TransferDQNCnnPolicy",
    "TransferDQNMultiInputPolicy",
    "TransferDQNPolicy",
    "TransferError",
    "TransferMaskableActorCriticCnnPolicy",
    "TransferMaskableActorCriticPolicy",
    "TransferMaskableMultiInputActorCriticPolicy",
    "TransferMaskablePPO",
    "TransferMultiInputActorCriticPolicy",
    "TransferPPO",
    "TransferQRDQN",
    "TransferQRDQNCnnPolicy",
    "TransferQRDQNMultiInputPolicy",
    "TransferQRDQNPolicy",
    "TransferReport",
    "TransferRow",
    "TransferSAC",
    "TransferSACCnnPolicy",
    "TransferSACMultiInputPolicy",
    "TransferSACPolicy",
    "TransferTD3",
    "TransferTD3CnnPolicy",
    "TransferTD3MultiInputPolicy",
    "TransferTD3Policy",
    "TransferTQC",
    "TransferTQCCnnPolicy",
    "TransferTQCMultiInputPolicy",
    "TransferTQCPolicy",
    "UnsafeSourceError",
    "UnsupportedSourceError",
    "VecNormalizeStats",
    "__version__",
    "apply_vecnormalize",
    "load_and_adapt",
    "read_source",
    "read_vecnormalize",
    "transplant",
    "wrap_vecnormalize",
]

if _TYPE_CHECKING:
    from sb3_transfer.adapt import load_and_adapt
    from sb3_transfer.adapters import InputAdapter, ModuleExtractor
    from sb3_transfer.algorithms import (
        TransferA2C,
        TransferDDPG,
        TransferDQN,
        TransferMaskablePPO,
        TransferPPO,
        TransferQRDQN,
        TransferSAC,
        TransferTD3,
        TransferTQC,
    )
    from sb3_transfer.policies import (
        TransferActorCriticPolicy,
        TransferActorCriticCnnPolicy,
        TransferMultiInputActorCriticPolicy,
        TransferMaskableActorCriticPolicy,
        TransferMaskableActorCriticCnnPolicy,
        TransferMaskableMultiInputActorCriticPolicy,
        TransferDQNCnnPolicy,
        TransferDQNMultiInputPolicy,
        TransferDQNPolicy,
        TransferQRDQNCnnPolicy,
        TransferQRDQNMultiInputPolicy,
        TransferQRDQNPolicy,
        TransferSACPolicy,
        TransferSACCnnPolicy,
        TransferSACMultiInputPolicy,
        TransferTQCPolicy,
        TransferTQCCnnPolicy,
        TransferTQCMultiInputPolicy,
        TransferTD3Policy,
        TransferTD3CnnPolicy,
        TransferTD3MultiInputPolicy,
    )
    from sb3_transfer.sources import SourceNetwork, read_source
    from sb3_transfer.transplant import TransferReport, TransferRow, transplant
    from sb3_transfer.vecnormalize import VecNormalizeStats, apply_vecnormalize, read_vecnormalize, wrap_vecnormalize


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        value = getattr(_import_module(_LAZY[name]), name)
        globals()[name] = value  # imported once
        return value
    raise AttributeError(f"module 'sb3_transfer' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
