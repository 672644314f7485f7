"""
A pytest plugin that makes SB3's ``DQN`` and sb3-contrib's ``QRDQN`` build sb3-transfer's policies for their policy
names, so that SB3's and sb3-contrib's own tests run against them::

    PYTHONPATH=tests/sb3_suite python -m pytest -p transfer_aliases <SB3's tests>

``DQN("MlpPolicy", ...)`` then builds a :class:`~sb3_transfer.TransferDQNPolicy`, ``"CnnPolicy"`` a
``TransferDQNCnnPolicy``, ``"MultiInputPolicy"`` a ``TransferDQNMultiInputPolicy`` (and the same for ``QRDQN``): the
aliases of :class:`~sb3_transfer.TransferDQN` and :class:`~sb3_transfer.TransferQRDQN`. SB3's and sb3-contrib's tests
name policies by these strings only (none imports ``stable_baselines3.dqn.MlpPolicy`` or
``sb3_contrib.qrdqn.MlpPolicy``), so the algorithms' ``policy_aliases`` are all there is to swap; the module attributes
are swapped as well, for any test that would import them. The swap is made for the whole session when the plugin is
configured and undone when pytest unconfigures it. The library itself never does this: it is a test harness's patch.
"""

from __future__ import annotations

from typing import Any

import pytest

#: What was there before the swap: (object, attribute or key, old value, is a dict key).
_saved: list[tuple[Any, str, Any, bool]] = []


def _targets() -> list[tuple[Any, Any, dict[str, type]]]:
    import sb3_contrib.qrdqn
    import stable_baselines3.dqn
    from sb3_contrib import QRDQN
    from stable_baselines3 import DQN

    from sb3_transfer import TransferDQN, TransferQRDQN

    return [
        (DQN, stable_baselines3.dqn, dict(TransferDQN.policy_aliases)),
        (QRDQN, sb3_contrib.qrdqn, dict(TransferQRDQN.policy_aliases)),
    ]


def swap_aliases() -> dict[str, dict[str, str]]:
    """
    Register sb3-transfer's policies as ``DQN``'s and ``QRDQN``'s ``MlpPolicy`` / ``CnnPolicy`` / ``MultiInputPolicy``.

    :return: ``{algorithm: {alias: policy class name}}``, what was swapped.
    """
    swapped: dict[str, dict[str, str]] = {}
    for algo, module, aliases in _targets():
        # The algorithm's own dict (a class attribute of DQN / QRDQN, not inherited from BaseAlgorithm): replace its
        # entries in place, so that subclasses that share it (none in SB3) see the same.
        assert "policy_aliases" in vars(algo), f"{algo.__name__}.policy_aliases is inherited: this plugin needs updating"
        for name, policy in aliases.items():
            _saved.append((algo.policy_aliases, name, algo.policy_aliases[name], True))
            algo.policy_aliases[name] = policy
            if hasattr(module, name):
                _saved.append((module, name, getattr(module, name), False))
                setattr(module, name, policy)
        swapped[algo.__name__] = {name: policy.__name__ for name, policy in aliases.items()}
    return swapped


def restore_aliases() -> None:
    """Undo :func:`swap_aliases`."""
    while _saved:
        target, name, old, is_key = _saved.pop()
        if is_key:
            target[name] = old
        else:
            setattr(target, name, old)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_swapped_key] = swap_aliases()


def pytest_unconfigure(config: pytest.Config) -> None:
    restore_aliases()


def pytest_report_header(config: pytest.Config) -> list[str]:
    swapped = config.stash.get(_swapped_key, {})
    return [f"transfer_aliases: {algo}.policy_aliases = {aliases}" for algo, aliases in swapped.items()]


_swapped_key = pytest.StashKey[dict[str, dict[str, str]]]()
