"""
Run SB3's and sb3-contrib's own tests of each algorithm sb3-transfer covers twice, once as they are and once with
sb3-transfer's policies registered as the algorithm's ``MlpPolicy`` / ``CnnPolicy`` / ``MultiInputPolicy`` (the pytest
plugin ``transfer_aliases.py`` beside this file), and compare the outcomes test by test::

    python tests/sb3_suite/run.py --tests /path/to/sdists            # unpacked sdists (or their .tar.gz) in that folder
    python tests/sb3_suite/run.py --download                         # fetch the sdists into the cache folder first
    python tests/sb3_suite/run.py --algorithms PPO,A2C               # some of the algorithms only

The algorithms: those of the plugin's table (``transfer_aliases.ALGORITHMS``: DQN, PPO, A2C, SAC, TD3, DDPG of SB3;
QRDQN, MaskablePPO, TQC of sb3-contrib) whose Transfer algorithm sb3-transfer has (``TransferPPO``...); by default all
of them, each run on its own, with only its own aliases swapped (``--transfer-aliases PPO``), so that a difference is
the algorithm's.

The tests are those of the installed versions (``importlib.metadata.version``): the ``tests/`` folders of the source
distributions ``stable_baselines3-<version>`` and ``sb3_contrib-<version>``, looked up in ``--tests DIR`` (default: the
cache folder ``~/.cache/sb3-transfer/sdists``, or ``$SB3_SUITE_SDISTS``). Nothing is downloaded unless ``--download``
is given, and then only with ``pip download --no-deps --no-binary :all: <package>==<version>`` into that folder.

Which tests: those about the algorithm, in its own package's tests, by two rules, both printed with ``--list``:

1. a test whose id names it as a word, case-insensitively (``test_cnn[True-DQN]``, ``test_dqn_epsilon_greedy``,
   ``test_ppo_warnings``; not ``test_cnn[MaskablePPO]`` or ``test_cnn[RecurrentPPO]`` for PPO, nor ``QRDQN`` for
   DQN): the tests parametrised over the algorithms, keeping only the algorithm's own parameter sets;
2. a test with no such id whose body uses the algorithm's class (``DQN(...)``, ``MaskablePPO.load``): SB3's
   ``test_eval_success_logging``, ``test_checkpoint_additional_info``, ... and sb3-contrib's
   ``test_dqn_target_update_interval`` and ``test_invalid_actions.py``'s tests, which rule 1 would miss.

A test file that cannot be imported here (SB3's ``tests/test_utils.py`` imports ``ale_py``) is left out and named.
Each run is a pytest subprocess started in a fresh work folder (not in the sdist, whose own copy of the package would
shadow the installed one) with ``--junitxml``; tests whose outcomes differ are run again ``--retries`` times in both
ways, to tell a flaky test from a real difference. The exit status is 0 iff sb3-transfer's policies pass every test
that SB3's own pass in every run of it (WORSE: ours passed it fewer times), 1 if not, 2 if the tests cannot be found
or run. A test that SB3's own policies also failed in some run is reported as flaky with both pass counts and does not
count: its outcome depends on something else (SB3's ``test_fps_logger`` asserts at least 100 steps per second against a
1 ms sleep, which a loaded machine misses with either policy).

Nor does a difference of :data:`EXPECTED_DIFFERENCES`: a test that fails with ours only because SB3 compares a policy
class's *name* (``test_ppo_warnings``: SB3 recommends the CPU only for a policy class named ``ActorCriticPolicy``). Each
entry names the failure it excuses (a regex of the traceback), so that the same test failing otherwise is still WORSE;
these are reported as "expected", with the reason.

``--quick`` runs, for each algorithm, only the files of :data:`QUICK_FILES` (building, training, saving and loading
each policy kind, a few seconds a test), so that all the algorithms fit in CI's slot; the README has the timings.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
PLUGIN = "transfer_aliases"
DEFAULT_CACHE = Path(os.environ.get("SB3_SUITE_SDISTS", Path.home() / ".cache" / "sb3-transfer" / "sdists"))


def plugin() -> ModuleType:
    """The plugin beside this file (its table of algorithms), loaded by path: this module is also loaded by path, by
    ``tests/test_sb3_suite.py``, without this folder on ``sys.path``."""
    if PLUGIN not in sys.modules:  # registered before it runs: its dataclasses look their module up
        spec = importlib.util.spec_from_file_location(PLUGIN, HERE / f"{PLUGIN}.py")
        sys.modules[PLUGIN] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[PLUGIN]


@dataclass(frozen=True)
class Package:
    """SB3 or sb3-contrib: where its tests come from."""

    module: str  # stable_baselines3 or sb3_contrib: also the name of its sdist's folder, without the version

    @property
    def name(self) -> str:
        """The distribution, as pip names it."""
        return self.module.replace("_", "-")

    @property
    def version(self) -> str:
        return importlib.metadata.version(self.name)


@dataclass(frozen=True)
class Algorithm:
    """An algorithm whose tests are run, and the package whose tests they are."""

    name: str  # the class name the tests use
    package: Package
    quick_files: tuple[str, ...]  # the files of --quick


# --quick: the files that build, train, save and load each policy kind in a few seconds a test, and (SB3's)
# test_custom_policy.py, whose net_arch variants take a second. Not the files of learning runs (SB3's test_identity.py,
# test_dict_env.py, test_her.py, test_callbacks.py, test_spaces.py, test_predict.py but for DQN's quick CUDA / CPU checks).
# One torch thread, 2 shared cores, 2.9.2: 6 minutes for the five algorithms of today against 11 for all their tests
# (README: the readings); SAC, TD3, DDPG, TQC will add about 5 more (measured with SB3's own policies).
QUICK = ("test_run.py", "test_save_load.py", "test_cnn.py", "test_train_eval_mode.py", "test_deterministic.py")
SB3_QUICK = (*QUICK, "test_custom_policy.py")
QUICK_FILES: dict[str, tuple[str, ...]] = {
    "DQN": (*SB3_QUICK, "test_predict.py"),
    "PPO": SB3_QUICK,
    "A2C": SB3_QUICK,
    "SAC": SB3_QUICK,
    "TD3": SB3_QUICK,
    "DDPG": SB3_QUICK,
    "QRDQN": QUICK,
    "MaskablePPO": (*QUICK, "test_invalid_actions.py"),  # all of its tests: the masking ones are in test_invalid_actions.py
    "TQC": QUICK,
}


@dataclass(frozen=True)
class ExpectedDifference:
    """A test that fails with ours only because SB3 compares a policy class's name: reported, not counted."""

    algorithm: str
    test: str  # the test id (an fnmatch pattern)
    failure: str  # a regex that every failure of the test with ours must match (searched in its message and traceback)
    reason: str


EXPECTED_DIFFERENCES: tuple[ExpectedDifference, ...] = (
    ExpectedDifference(
        "PPO",
        "tests/test_run.py::test_ppo_warnings",
        r'pytest\.warns\(UserWarning, match=r"You are trying to run PPO on the GPU"\):\s*\nE\s+Failed: DID NOT WARN',
        "SB3's OnPolicyAlgorithm._maybe_recommend_cpu recommends the CPU only when policy_class.__name__ == "
        '"ActorCriticPolicy"; ours is TransferActorCriticPolicy (the test pretends to be on the GPU)',
    ),
)


class SuiteError(Exception):
    """The tests cannot be found or run (exit status 2)."""


def algorithms(names: list[str] | None = None) -> list[Algorithm]:
    """The named algorithms (case-insensitive), or all those whose Transfer algorithm sb3-transfer has."""
    try:
        entries = plugin().covered(names)
    except ValueError as e:
        raise SuiteError(str(e)) from e
    return [Algorithm(c.algorithm, Package(c.package), QUICK_FILES.get(c.algorithm, QUICK)) for c in entries]


# --- finding the tests ------------------------------------------------------------------------------------------------


def find_sdist(package: Package, folder: Path, download: bool) -> Path:
    """The unpacked sdist of the installed version in ``folder`` (unpacking its .tar.gz, downloading it if asked)."""
    version = package.version
    stem = f"{package.module}-{version}"
    unpacked = folder / stem
    if (unpacked / "tests").is_dir():
        return unpacked
    archives = [folder / f"{stem}.tar.gz", folder / f"{package.name}-{version}.tar.gz"]
    archive = next((a for a in archives if a.is_file()), None)
    if archive is None and download:
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(folder)]
        cmd.append(f"{package.name}=={version}")
        print("+ " + " ".join(cmd), flush=True)
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise SuiteError(
                f"pip download of {package.name}=={version} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        archive = next((a for a in archives if a.is_file()), None)
    if archive is None:
        raise SuiteError(
            f"No tests of {package.name} {version} (the installed version) in {folder}: expected the unpacked sdist "
            f"{unpacked}/tests or {archives[0].name}. Give the folder that holds them with --tests DIR, or fetch them with "
            f"--download (pip download --no-deps --no-binary :all: {package.name}=={version} -d {folder})."
        )
    with tarfile.open(archive) as tar:
        extract = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        members = [m for m in tar.getmembers() if m.name == stem or m.name.startswith(stem + "/")]
        tar.extractall(folder, members=members, **extract)  # the "data" filter: no links out, no absolute paths
    if not (unpacked / "tests").is_dir():
        raise SuiteError(f"{archive} holds no {stem}/tests folder.")
    return unpacked


def names_used_by_tests(path: Path) -> dict[str, set[str]]:
    """
    ``{test function name: names it uses}`` for the test functions (and methods) of a file: the names and attribute
    names in its body (``DQN(...)``, ``sb3.DQN(...)``), not those it only imports.
    """
    functions = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            body = list(ast.walk(ast.Module(body=node.body, type_ignores=[])))
            names = {n.id for n in body if isinstance(n, ast.Name)}
            functions[node.name] = names | {n.attr for n in body if isinstance(n, ast.Attribute)}
    return functions


def names_algorithm(text: str, algorithm: str) -> bool:
    """
    Whether ``text`` (a test's name or its parameters) names the algorithm as a word, case-insensitively: not preceded
    or followed by a letter or digit, so ``_`` ``-`` ``[`` ``]`` bound it (``test_ppo_warnings``, ``[True-PPO]``) and
    ``MaskablePPO``, ``RecurrentPPO``, ``QRDQN`` name neither PPO nor DQN.
    """
    return re.search(rf"(?<![a-z0-9]){re.escape(algorithm.lower())}(?![a-z0-9])", text.lower()) is not None


def named_ids(function_ids: list[str], algorithm: str) -> list[str]:
    """
    The ids of one test function that name the algorithm: those whose parameters name it when some do
    (``test_a2c_ppo_train_with_batch_norm[PPO-...]`` for PPO, not its ``[A2C-...]``), else all of them when the
    function's name names it (``test_ppo[...]``), else none.
    """
    by_params = [i for i in function_ids if "[" in i and names_algorithm(i[i.index("[") :], algorithm)]
    if by_params:
        return by_params
    name = function_ids[0].partition("::")[2].split("[")[0] if function_ids else ""
    return list(function_ids) if names_algorithm(name, algorithm) else []


@dataclass
class Selection:
    """The selected test ids, the rule that selected each, and the files left out."""

    ids: list[str] = field(default_factory=list)
    rule: dict[str, str] = field(default_factory=dict)
    skipped_files: dict[str, str] = field(default_factory=dict)
    collected: int = 0


def collect(sdist: Path, files: list[Path], workdir: Path, marks: str = "") -> tuple[list[str], dict[str, str]]:
    """All test ids of the files (those of the marker expression ``marks``, when given), and the files whose collection
    failed (relative to the sdist) with the reason."""
    if not files:
        return [], {}
    cmd = [*pytest_cmd(sdist), "--collect-only", "-q", "--continue-on-collection-errors", *(["-m", marks] if marks else [])]
    cmd += map(str, files)
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=pytest_env())
    ids = [line.strip() for line in result.stdout.splitlines() if "::" in line and not line.startswith(("ERROR", " "))]
    errors = {}
    for path in re.findall(r"^ERROR (\S+)", result.stdout, flags=re.MULTILINE):
        # the first "E   ..." line after the file's "ERROR collecting" header: ModuleNotFoundError: No module named ...
        found = re.search(r"^E +(.+)$", result.stdout.split(f"ERROR collecting {path}", 1)[-1], flags=re.MULTILINE)
        name = (workdir / path).resolve().relative_to(sdist.resolve()).as_posix()  # reported relative to the cwd
        errors[name] = found.group(1) if found else "collection error"
    if not ids and result.returncode not in (0, 1, 5):
        raise SuiteError(
            f"pytest --collect-only failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return ids, errors


def algorithm_files(algorithm: Algorithm, sdist: Path, quick: bool) -> list[Path]:
    """The test files that may hold the algorithm's tests: those that mention its name (of its quick files)."""
    tests = sdist / "tests"
    names = algorithm.quick_files if quick else sorted(p.name for p in tests.glob("test_*.py"))
    return [tests / n for n in names if (tests / n).is_file() and algorithm.name in (tests / n).read_text(encoding="utf-8")]


def select(algorithm: Algorithm, files: list[Path], ids: list[str], errors: dict[str, str]) -> Selection:
    """The algorithm's tests among the ids collected from its package's files (the module's docstring: the rules)."""
    own = {f"tests/{p.name}" for p in files}
    ids = [i for i in ids if i.partition("::")[0] in own]
    selection = Selection(skipped_files={p: r for p, r in errors.items() if p in own}, collected=len(ids))
    by_function: dict[tuple[str, str], list[str]] = {}
    for test_id in ids:
        path, _, name = test_id.partition("::")
        by_function.setdefault((path, name.split("[")[0].split("::")[-1]), []).append(test_id)
    uses = {(f"tests/{p.name}", fn): loads for p in files for fn, loads in names_used_by_tests(p).items()}
    for (path, function), function_ids in by_function.items():
        named = named_ids(function_ids, algorithm.name)
        if named:
            selection.ids += named
            selection.rule.update(dict.fromkeys(named, "id"))
        elif algorithm.name in uses.get((path, function), set()):
            selection.ids += function_ids
            selection.rule.update(dict.fromkeys(function_ids, "body"))
    return selection


# --- running ----------------------------------------------------------------------------------------------------------


def pytest_cmd(sdist: Path) -> list[str]:
    # The sdist's own pytest configuration (filter warnings, markers), its folder as rootdir (so that ids read
    # tests/test_x.py::...); -p no:cacheprovider writes nothing into it.
    config = next((sdist / n for n in ("pytest.ini", "pyproject.toml", "setup.cfg") if (sdist / n).is_file()), None)
    cmd = [sys.executable, "-m", "pytest", "--rootdir", str(sdist), "-p", "no:cacheprovider"]
    return cmd + (["-c", str(config)] if config else [])


def pytest_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTEST_ADDOPTS", None)
    env.setdefault("CUDA_VISIBLE_DEVICES", "")  # the tests' "auto" device is the CPU for both runs
    # One torch thread for both runs: on 2 shared cores torch's two threads wait on each other whenever other work
    # takes a core, and a test then takes 10 times as long in one run as in the other (PPO's test_cnn: 2 s, 25 s).
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@dataclass
class Outcome:
    """A test's outcome in one run: passed, failed, error, skipped or missing (not reported), its one-line message,
    and the whole report (message and traceback), which :data:`EXPECTED_DIFFERENCES` are matched against."""

    status: str
    message: str = ""
    text: str = ""


def failure_message(message: str, text: str) -> str:
    """pytest's one-line message, and the first exception raised in the traceback where that is another one (a
    ``pytest.warns`` block reports "DID NOT WARN" for the error raised inside it)."""
    message = message.strip().splitlines()[0] if message.strip() else ""
    raised = re.search(r"^E +(\w*(?:Error|Exception)\b.*)$", text, flags=re.MULTILINE)
    if raised and raised.group(1).strip() not in message:
        message = f"{message} <- {raised.group(1).strip()}" if message else raised.group(1).strip()
    return message


def read_junit(path: Path) -> dict[str, Outcome]:
    """``{test id: Outcome}`` from pytest's junit XML."""
    outcomes: dict[str, Outcome] = {}
    if not path.is_file():
        return outcomes
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "")
        # classname "tests.test_cnn" (or "tests.test_x.TestClass"), name "test_cnn[True-DQN]"
        parts = module.split(".")
        test_id = "/".join(parts[:2]) + ".py::" + "::".join([*parts[2:], case.get("name", "")])
        outcome = Outcome("passed")
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                if outcome.status == "passed" or kind in ("failed", "error"):
                    message, text = child.get("message") or "", child.text or ""
                    outcome = Outcome(kind, failure_message(message, text), f"{message}\n{text}")
        previous = outcomes.get(test_id)
        if previous is None or previous.status in ("passed", "skipped"):
            outcomes[test_id] = outcome
    return outcomes


def run_pytest(sdist: Path, ids: list[str], ours: str | None, workdir: Path, tag: str) -> tuple[dict[str, Outcome], float]:
    """Run the tests in a subprocess (with the plugin swapping the algorithm ``ours``' aliases when given); their
    outcomes and the time it took."""
    workdir.mkdir(parents=True, exist_ok=True)
    junit = workdir / f"{tag}.xml"
    log = workdir / f"{tag}.log"
    plugin_args = ["-p", PLUGIN, f"--transfer-aliases={ours}"] if ours else []
    cmd = [*pytest_cmd(sdist), *plugin_args, "-q", "-rfE", "--durations=15", f"--junitxml={junit}"]
    cmd += [f"--basetemp={workdir / (tag + '-tmp')}", *(str(sdist / i) for i in ids)]  # ids are relative to the sdist
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=pytest_env())
    elapsed = time.perf_counter() - start
    outcomes = read_junit(junit)
    if result.returncode not in (0, 1) or not outcomes:
        raise SuiteError(f"pytest exited with {result.returncode} and reported no test outcomes; see {log}")
    missing = {i: Outcome("missing", "no outcome reported") for i in ids if i not in outcomes}
    return {**outcomes, **missing}, elapsed


@dataclass
class Comparison:
    """The outcomes of each test in each run, both ways, and the differences that :data:`EXPECTED_DIFFERENCES`
    explain (``{test id: reason}``, filled by :func:`explain`)."""

    sb3: dict[str, list[Outcome]] = field(default_factory=dict)
    ours: dict[str, list[Outcome]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)

    def passes(self, side: dict[str, list[Outcome]], test_id: str) -> int:
        return sum(o.status == "passed" for o in side.get(test_id, []))

    def differing(self) -> list[str]:
        return [i for i in self.sb3 if [o.status for o in self.sb3[i]] != [o.status for o in self.ours.get(i, [])]]

    def worse(self) -> list[str]:
        """Tests that SB3's policies passed every time and sb3-transfer's policies not."""
        return [i for i in self.sb3 if self.passes(self.ours, i) < self.passes(self.sb3, i) == len(self.sb3[i])]

    def regressions(self) -> list[str]:
        """The worse tests that no expected difference explains: these fail the run."""
        return [i for i in self.worse() if i not in self.expected]

    def flaky(self) -> list[str]:
        """Tests whose outcome differs, that SB3's own policies passed in some runs and failed in others."""
        return [i for i in self.differing() if 0 < self.passes(self.sb3, i) < len(self.sb3[i])]


def explain(comparison: Comparison, algorithm: str, table: tuple[ExpectedDifference, ...] = EXPECTED_DIFFERENCES) -> None:
    """Fill ``comparison.expected`` with the worse tests that an entry of ``table`` explains: the entry's algorithm
    and test id, and every run in which ours did not pass failed as the entry says."""
    for test_id in comparison.worse():
        for entry in table:
            if entry.algorithm == algorithm and fnmatch.fnmatchcase(test_id, entry.test):
                failures = [o for o in comparison.ours[test_id] if o.status != "passed"]
                if all(re.search(entry.failure, o.text) for o in failures):
                    comparison.expected[test_id] = entry.reason
                    break


def compare(sdist: Path, algorithm: str, ids: list[str], workdir: Path, retries: int) -> Comparison:
    comparison = Comparison()
    for ours, side in ((None, comparison.sb3), (algorithm, comparison.ours)):
        tag = "ours" if ours else "sb3"
        print(f"  running {len(ids)} tests with {'sb3-transfer' if ours else 'SB3'}'s policies ...", flush=True)
        outcomes, comparison.seconds[tag] = run_pytest(sdist, ids, ours, workdir, tag)
        for test_id in ids:
            side[test_id] = [outcomes[test_id]]
        print(f"    {_counts(side)} in {comparison.seconds[tag]:.0f} s", flush=True)
    comparison.seconds["retries"] = 0.0
    for attempt in range(1, retries + 1):
        again = comparison.differing()
        if not again:
            break
        print(f"  {len(again)} tests differ: running them again ({attempt}/{retries}) both ways ...", flush=True)
        for ours, side in ((None, comparison.sb3), (algorithm, comparison.ours)):
            outcomes, seconds = run_pytest(sdist, again, ours, workdir, f"{'ours' if ours else 'sb3'}-retry{attempt}")
            comparison.seconds["retries"] += seconds
            for test_id in again:
                side[test_id].append(outcomes[test_id])
    explain(comparison, algorithm)
    return comparison


# --- reporting --------------------------------------------------------------------------------------------------------


def _counts(side: dict[str, list[Outcome]]) -> str:
    firsts = [outcomes[0].status for outcomes in side.values()]
    kinds = ("passed", "failed", "error", "skipped", "missing")
    return ", ".join(f"{firsts.count(k)} {k}" for k in kinds if firsts.count(k) or k == "passed")


def report(algorithm: Algorithm, selection: Selection, comparison: Comparison) -> str:
    lines = []
    n = len(selection.ids)
    by_rule = {r: sum(selection.rule[i] == r for i in selection.ids) for r in ("id", "body")}
    lines.append(
        f"{algorithm.package.name} {algorithm.package.version}, {algorithm.name}: {n} tests selected of "
        f"{selection.collected} collected ({by_rule['id']} by id, {by_rule['body']} by body)"
    )
    for path, reason in selection.skipped_files.items():
        lines.append(f"  left out: {path} (cannot be imported here: {reason})")
    width = 28
    lines.append(f"  {'':{width}} {'passed':>7} {'failed':>7} {'error':>6} {'skipped':>8} {'time':>7}")
    for label, side, tag in (("SB3's policies", comparison.sb3, "sb3"), ("sb3-transfer's policies", comparison.ours, "ours")):
        firsts = [o[0].status for o in side.values()]
        lines.append(
            f"  {label:{width}} {firsts.count('passed'):>7} {firsts.count('failed'):>7} "
            f"{firsts.count('error') + firsts.count('missing'):>6} {firsts.count('skipped'):>8} "
            f"{comparison.seconds[tag]:>6.0f}s"
        )
    differing = comparison.differing()
    regressions, flaky = set(comparison.regressions()), set(comparison.flaky())
    if not differing:
        lines.append("  every test has the same outcome both ways")
    for test_id in differing:
        sb3, ours = comparison.sb3[test_id], comparison.ours[test_id]
        if test_id in comparison.expected:
            mark = "expected"
        else:
            mark = "WORSE" if test_id in regressions else "flaky" if test_id in flaky else "differs"
        lines.append(
            f"  {mark}: {test_id}: SB3's {comparison.passes(comparison.sb3, test_id)}/{len(sb3)} passed "
            f"({', '.join(o.status for o in sb3)}), ours {comparison.passes(comparison.ours, test_id)}/{len(ours)} "
            f"({', '.join(o.status for o in ours)})"
        )
        if test_id in comparison.expected:
            lines.append(f"      why: {comparison.expected[test_id]}")
        for label, outcomes in (("SB3's", sb3), ("ours", ours)):
            for message in dict.fromkeys(o.message for o in outcomes if o.message and o.status != "skipped"):
                lines.append(f"      {label}: {message[:300]}")
    for entry in EXPECTED_DIFFERENCES:
        seen = [i for i in selection.ids if entry.algorithm == algorithm.name and fnmatch.fnmatchcase(i, entry.test)]
        if seen and not any(i in comparison.expected for i in seen):
            lines.append(f"  expected difference not seen: {entry.test} (the table's entry may be stale)")
    return "\n".join(lines)


SUMMARY_HEADER = (
    f"  {'algorithm':<12} {'tests':>5} {'SB3 passed':>10} {'ours passed':>10} {'expected':>9} {'WORSE':>6} {'flaky':>6} "
    f"{'time':>8}"
)


def summary_line(algorithm: Algorithm, comparison: Comparison, elapsed: float) -> str:
    """One line of the closing table: tests, passed both ways, expected / worse / flaky differences, time."""
    firsts = {tag: [o[0].status for o in side.values()] for tag, side in (("sb3", comparison.sb3), ("ours", comparison.ours))}
    return (
        f"  {algorithm.name:<12} {len(comparison.sb3):>5} {firsts['sb3'].count('passed'):>10} "
        f"{firsts['ours'].count('passed'):>10} {len(comparison.expected):>9} {len(comparison.regressions()):>6} "
        f"{len(comparison.flaky()):>6} {elapsed / 60:>7.1f}m"
    )


# --- the command ------------------------------------------------------------------------------------------------------


def run_package(
    package: Package, algos: list[Algorithm], args: argparse.Namespace, workroot: Path, summary: list[str]
) -> bool:
    """Select, run and report the package's algorithms' tests; whether ours pass all SB3's own pass (or ``--list``)."""
    sdist = find_sdist(package, args.tests, args.download)
    print(f"{package.name} {package.version}: tests from {sdist / 'tests'}", flush=True)
    files = {a.name: algorithm_files(a, sdist, args.quick) for a in algos}
    union = sorted({f for fs in files.values() for f in fs})
    workroot.mkdir(parents=True, exist_ok=True)
    # Once for the package: collecting SB3's tests takes half a minute. --quick leaves out what SB3 marks expensive
    # (test_save_load_large_model, TD3's by its body: a 2 GB policy saved and loaded, 80 s).
    ids, errors = collect(sdist, union, workroot, "not expensive" if args.quick else "")
    ok = True
    for algorithm in algos:
        selection = select(algorithm, files[algorithm.name], ids, errors)
        if args.only:
            selection.ids = [i for i in selection.ids if any(t.lower() in i.lower() for t in args.only)]
            if not selection.ids:
                print(f"  no {algorithm.name} test matches --only {' '.join(args.only)}")
                continue
        if args.list:
            print(f"{algorithm.name}: {len(selection.ids)} tests")
            for test_id in selection.ids:
                print(f"  {test_id}  [{selection.rule[test_id]}]")
            for path, reason in selection.skipped_files.items():
                print(f"  left out: {path}: {reason}")
            continue
        if not selection.ids:
            raise SuiteError(f"No {algorithm.name} tests found in {sdist / 'tests'}.")
        print(f"{algorithm.name}: {len(selection.ids)} tests", flush=True)
        start = time.perf_counter()
        comparison = compare(sdist, algorithm.name, selection.ids, workroot / algorithm.name, args.retries)
        print(report(algorithm, selection, comparison), flush=True)
        summary.append(summary_line(algorithm, comparison, time.perf_counter() - start))
        ok = ok and not comparison.regressions()
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tests", type=Path, default=DEFAULT_CACHE, help=f"folder of the unpacked sdists (default {DEFAULT_CACHE})"
    )
    parser.add_argument("--download", action="store_true", help="pip download the sdists into --tests when missing")
    parser.add_argument(
        "--algorithms",
        metavar="A,B",
        help="comma-separated algorithms (default: every one whose Transfer algorithm sb3-transfer has)",
    )
    parser.add_argument("--quick", action="store_true", help="only each algorithm's QUICK_FILES (where they exist)")
    parser.add_argument("--retries", type=int, default=2, help="run differing tests again this many times (default 2)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="only the selected tests whose id contains TEXT (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="print the selected tests and exit")
    parser.add_argument("--workdir", type=Path, help="keep the runs' logs and junit XML here (default: a temporary folder)")
    args = parser.parse_args(argv)

    workroot = args.workdir or Path(tempfile.mkdtemp(prefix="sb3-suite-"))
    ok, summary, start = True, [], time.perf_counter()
    try:
        algos = algorithms(args.algorithms.split(",") if args.algorithms else None)
        print("algorithms: " + ", ".join(a.name for a in algos), flush=True)
        for package in dict.fromkeys(a.package for a in algos):
            mine = [a for a in algos if a.package == package]
            ok = run_package(package, mine, args, workroot / package.module, summary) and ok
    except SuiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if args.workdir is None:
            shutil.rmtree(workroot, ignore_errors=True)
        else:
            print(f"logs and junit XML in {workroot}")
    if args.list:
        return 0
    print("\n" + SUMMARY_HEADER + "\n" + "\n".join(summary))
    print(f"  total {(time.perf_counter() - start) / 60:.1f} minutes")
    print("OK: sb3-transfer's policies pass every test SB3's own pass" if ok else "FAIL: see WORSE above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
