"""
A pytest plugin that makes SB3's and sb3-contrib's algorithms build sb3-transfer's policies for their policy names, so
that SB3's and sb3-contrib's own tests run against them::

    PYTHONPATH=tests/sb3_suite python -m pytest -p transfer_aliases <SB3's tests>
    PYTHONPATH=tests/sb3_suite python -m pytest -p transfer_aliases --transfer-aliases PPO,A2C <SB3's tests>

``PPO("MlpPolicy", ...)`` then builds a :class:`~sb3_transfer.TransferActorCriticPolicy`, ``DQN("CnnPolicy", ...)`` a
``TransferDQNCnnPolicy``, and so on: each covered algorithm's ``policy_aliases`` become those of its Transfer algorithm
(:data:`ALGORITHMS`: ``DQN`` takes :class:`~sb3_transfer.TransferDQN`'s, ``MaskablePPO`` takes
:class:`~sb3_transfer.TransferMaskablePPO`'s...). An algorithm whose Transfer algorithm sb3-transfer does not have (yet)
is left as it is. ``--transfer-aliases`` names the algorithms to swap (default: every one that can be).

SB3's and sb3-contrib's tests name policies by these strings only (none imports ``stable_baselines3.ppo.MlpPolicy``),
so the algorithms' ``policy_aliases`` are all there is to swap; the attributes of the algorithm's package
(``stable_baselines3.ppo.MlpPolicy``) are swapped as well, for any test that would import them. The swap is made for
the whole session when the plugin is configured and undone when pytest unconfigures it. The library itself never does
this: it is a test harness's patch.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Covered:
    """An algorithm whose policy aliases the plugin swaps, named by strings: nothing is imported until the swap."""

    algorithm: str  # the class name, as the tests use it
    package: str  # the module that exports the class: stable_baselines3 or sb3_contrib
    policies: str  # the module whose MlpPolicy / CnnPolicy / MultiInputPolicy attributes are swapped too
    transfer: str  # the sb3_transfer algorithm whose policy_aliases are registered

    def transfer_algorithm(self) -> type | None:
        """sb3-transfer's algorithm, or None when this version of sb3-transfer does not have it."""
        import sb3_transfer

        return getattr(sb3_transfer, self.transfer, None)


#: Every algorithm the plugin knows, SB3's first. SAC, TD3, DDPG and TQC count once sb3-transfer has their Transfer
#: algorithm; until then :func:`available` leaves them out.
ALGORITHMS: tuple[Covered, ...] = (
    Covered("DQN", "stable_baselines3", "stable_baselines3.dqn", "TransferDQN"),
    Covered("PPO", "stable_baselines3", "stable_baselines3.ppo", "TransferPPO"),
    Covered("A2C", "stable_baselines3", "stable_baselines3.a2c", "TransferA2C"),
    Covered("SAC", "stable_baselines3", "stable_baselines3.sac", "TransferSAC"),
    Covered("TD3", "stable_baselines3", "stable_baselines3.td3", "TransferTD3"),
    # DDPG's package re-exports TD3's policies: swapping its attributes leaves stable_baselines3.td3's alone.
    Covered("DDPG", "stable_baselines3", "stable_baselines3.ddpg", "TransferDDPG"),
    Covered("QRDQN", "sb3_contrib", "sb3_contrib.qrdqn", "TransferQRDQN"),
    Covered("MaskablePPO", "sb3_contrib", "sb3_contrib.ppo_mask", "TransferMaskablePPO"),
    Covered("TQC", "sb3_contrib", "sb3_contrib.tqc", "TransferTQC"),
)


def available() -> list[Covered]:
    """The algorithms of :data:`ALGORITHMS` whose Transfer algorithm this version of sb3-transfer has."""
    return [c for c in ALGORITHMS if c.transfer_algorithm() is not None]


def covered(names: Iterable[str] | None = None) -> list[Covered]:
    """
    The entries of the named algorithms (case-insensitive), in :data:`ALGORITHMS`' order, or all those available.

    :raise ValueError: for a name that is not covered, or whose Transfer algorithm sb3-transfer does not have.
    """
    if names is None:
        return available()
    wanted = {n.strip().lower() for n in names if n.strip()}
    known = {c.algorithm.lower(): c for c in ALGORITHMS}
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ValueError(f"not covered: {', '.join(unknown)} (covered: {', '.join(c.algorithm for c in ALGORITHMS)})")
    missing = sorted(known[n].transfer for n in wanted if known[n].transfer_algorithm() is None)
    if missing:
        raise ValueError(f"sb3_transfer has no {', '.join(missing)}")
    return [c for c in ALGORITHMS if c.algorithm.lower() in wanted]


_MISSING = object()
#: What was there before the swap, newest last: (object, attribute, old value or _MISSING when it had none of its own).
_saved: list[tuple[Any, str, Any]] = []


def _set(target: Any, name: str, value: Any) -> None:
    _saved.append((target, name, vars(target).get(name, _MISSING)))
    setattr(target, name, value)


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def swap_one(algo: type, module: Any, aliases: dict[str, type]) -> None:
    """
    Give ``algo`` a ``policy_aliases`` dict of its own, with ``aliases`` over its entries, and set the same names on
    ``module``. A new dict rather than an edit of the old one: DDPG has no ``policy_aliases`` of its own and reads
    TD3's, so editing TD3's dict would swap DDPG's policies too. Subclasses that read ``algo``'s dict are pinned to
    the old one first (DDPG when only TD3 is swapped, sb3-transfer's own Transfer algorithms), so that the swap
    reaches exactly the algorithms named.
    """
    old = algo.policy_aliases
    for sub in _subclasses(algo):
        if "policy_aliases" not in vars(sub) and sub.policy_aliases is old:
            _set(sub, "policy_aliases", old)
    _set(algo, "policy_aliases", {**old, **aliases})
    for name, policy in aliases.items():
        if hasattr(module, name):
            _set(module, name, policy)


def swap_aliases(names: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """
    Register sb3-transfer's policies as the named algorithms' ``MlpPolicy`` / ``CnnPolicy`` / ``MultiInputPolicy``.

    :param names: the algorithms (see :func:`covered`); default: every one whose Transfer algorithm exists.
    :return: ``{algorithm: {alias: policy class name}}``, what was swapped.
    """
    swapped: dict[str, dict[str, str]] = {}
    for entry in covered(names):
        algo = getattr(importlib.import_module(entry.package), entry.algorithm)
        aliases = dict(entry.transfer_algorithm().policy_aliases)
        swap_one(algo, importlib.import_module(entry.policies), aliases)
        swapped[entry.algorithm] = {name: policy.__name__ for name, policy in aliases.items()}
    return swapped


def restore_aliases() -> None:
    """Undo :func:`swap_aliases` (and :func:`swap_one`)."""
    while _saved:
        target, name, old = _saved.pop()
        if old is _MISSING:
            delattr(target, name)
        else:
            setattr(target, name, old)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--transfer-aliases",
        metavar="ALGOS",
        help="comma-separated algorithms whose policy aliases to swap (default: every one sb3-transfer covers)",
    )


def pytest_configure(config: pytest.Config) -> None:
    names = config.getoption("transfer_aliases")
    try:
        config.stash[_swapped_key] = swap_aliases(names.split(",") if names else None)
    except ValueError as e:
        restore_aliases()
        raise pytest.UsageError(f"--transfer-aliases: {e}") from e


def pytest_unconfigure(config: pytest.Config) -> None:
    restore_aliases()


def pytest_report_header(config: pytest.Config) -> list[str]:
    swapped = config.stash.get(_swapped_key, {})
    return [f"transfer_aliases: {algo}.policy_aliases = {aliases}" for algo, aliases in swapped.items()]


_swapped_key = pytest.StashKey[dict[str, dict[str, str]]]()
