"""
Run SB3's and sb3-contrib's own DQN / QR-DQN tests twice, once as they are and once with sb3-transfer's policies
registered as ``DQN``'s and ``QRDQN``'s ``MlpPolicy`` / ``CnnPolicy`` / ``MultiInputPolicy`` (the pytest plugin
``transfer_aliases.py`` beside this file), and compare the outcomes test by test::

    python tests/sb3_suite/run.py --tests /path/to/sdists            # unpacked sdists (or their .tar.gz) in that folder
    python tests/sb3_suite/run.py --download                         # fetch the sdists into the cache folder first

The tests are those of the installed versions (``importlib.metadata.version``): the ``tests/`` folders of the source
distributions ``stable_baselines3-<version>`` and ``sb3_contrib-<version>``, looked up in ``--tests DIR`` (default: the
cache folder ``~/.cache/sb3-transfer/sdists``, or ``$SB3_SUITE_SDISTS``). Nothing is downloaded unless ``--download``
is given, and then only with ``pip download --no-deps --no-binary :all: <package>==<version>`` into that folder.

Which tests: those about the algorithm, by two rules, both printed with ``--list``:

1. a test whose id names it, case-insensitively, as ``pytest -k DQN`` would select it (``test_cnn[True-DQN]``,
   ``test_dqn_epsilon_greedy``; for sb3-contrib ``QRDQN``): the tests parametrised over the algorithms, keeping
   only the algorithm's own parameter sets;
2. a test with no such id whose body uses the algorithm's class (``DQN(...)``, ``DQN.load``): SB3's
   ``test_eval_success_logging``, ``test_checkpoint_additional_info``, ``test_performance_her``, ... and
   sb3-contrib's ``test_dqn_target_update_interval``, which rule 1 would miss.

A test file that cannot be imported here (SB3's ``tests/test_utils.py`` imports ``ale_py``) is left out and named.
Each run is a pytest subprocess started in a fresh work folder (not in the sdist, whose own copy of the package would
shadow the installed one) with ``--junitxml``; tests whose outcomes differ are run again ``--retries`` times in both
ways, to tell a flaky test from a real difference. The exit status is 0 iff sb3-transfer's policies pass every test
that SB3's own pass in every run of it (WORSE: ours passed it fewer times), 1 if not, 2 if the tests cannot be found
or run. A test that SB3's own policies also failed in some run is reported as flaky with both pass counts and does not
count: its outcome depends on something else (SB3's ``test_fps_logger`` asserts at least 100 steps per second against a
1 ms sleep, which a loaded machine misses with either policy).

``--quick`` runs only the files that build, train, save and load each policy kind in a few seconds a test (63 of the
106 tests at 2.9.2, a quarter of the time: about 5 minutes instead of 20 on 2 shared cores).
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
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

HERE = Path(__file__).resolve().parent
PLUGIN = "transfer_aliases"
DEFAULT_CACHE = Path(os.environ.get("SB3_SUITE_SDISTS", Path.home() / ".cache" / "sb3-transfer" / "sdists"))


@dataclass(frozen=True)
class Suite:
    """One package's test suite and the algorithm whose tests are run."""

    name: str  # the distribution, as pip names it
    folder: str  # the sdist's folder name without the version
    algorithm: str  # the class name the tests use
    quick_files: tuple[str, ...]  # the files of --quick

    @property
    def version(self) -> str:
        return importlib.metadata.version(self.name)


# --quick: the files that build, train, save and load each policy kind in a few seconds a test (SB3's slow ones are
# test_her.py, test_dict_env.py, test_callbacks.py and test_spaces.py: learning runs of 10 to 70 s).
QUICK = ("test_run.py", "test_save_load.py", "test_cnn.py", "test_train_eval_mode.py", "test_deterministic.py")
SUITES = {
    "sb3": Suite("stable-baselines3", "stable_baselines3", "DQN", (*QUICK, "test_custom_policy.py", "test_predict.py")),
    "contrib": Suite("sb3-contrib", "sb3_contrib", "QRDQN", QUICK),
}


class SuiteError(Exception):
    """The tests cannot be found or run (exit status 2)."""


# --- finding the tests ------------------------------------------------------------------------------------------------


def find_sdist(suite: Suite, folder: Path, download: bool) -> Path:
    """The unpacked sdist of the installed version in ``folder`` (unpacking its .tar.gz, downloading it if asked)."""
    version = suite.version
    stem = f"{suite.folder}-{version}"
    unpacked = folder / stem
    if (unpacked / "tests").is_dir():
        return unpacked
    archives = [folder / f"{stem}.tar.gz", folder / f"{suite.name}-{version}.tar.gz"]
    archive = next((a for a in archives if a.is_file()), None)
    if archive is None and download:
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(folder)]
        cmd.append(f"{suite.name}=={version}")
        print("+ " + " ".join(cmd), flush=True)
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise SuiteError(
                f"pip download of {suite.name}=={version} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        archive = next((a for a in archives if a.is_file()), None)
    if archive is None:
        raise SuiteError(
            f"No tests of {suite.name} {version} (the installed version) in {folder}: expected the unpacked sdist "
            f"{unpacked}/tests or {archives[0].name}. Give the folder that holds them with --tests DIR, or fetch them with "
            f"--download (pip download --no-deps --no-binary :all: {suite.name}=={version} -d {folder})."
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


@dataclass
class Selection:
    """The selected test ids, the rule that selected each, and the files left out."""

    ids: list[str] = field(default_factory=list)
    rule: dict[str, str] = field(default_factory=dict)
    skipped_files: dict[str, str] = field(default_factory=dict)
    collected: int = 0


def collect(sdist: Path, files: list[Path], workdir: Path) -> tuple[list[str], dict[str, str]]:
    """All test ids of the files, and the files whose collection failed (relative to the sdist) with the reason."""
    cmd = [*pytest_cmd(sdist), "--collect-only", "-q", "--continue-on-collection-errors", *map(str, files)]
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


def select(suite: Suite, sdist: Path, workdir: Path, quick: bool) -> Selection:
    """The tests of the suite's algorithm (see the module's docstring for the two rules)."""
    tests = sdist / "tests"
    names = suite.quick_files if quick else sorted(p.name for p in tests.glob("test_*.py"))
    files = [tests / n for n in names if (tests / n).is_file() and suite.algorithm in (tests / n).read_text(encoding="utf-8")]
    ids, errors = collect(sdist, files, workdir)
    selection = Selection(skipped_files=errors, collected=len(ids))
    keyword = suite.algorithm.lower()
    by_function: dict[tuple[str, str], list[str]] = {}
    for test_id in ids:
        path, _, name = test_id.partition("::")
        by_function.setdefault((path, name.split("[")[0].split("::")[-1]), []).append(test_id)
    uses = {(f"tests/{p.name}", fn): loads for p in files for fn, loads in names_used_by_tests(p).items()}
    for (path, function), function_ids in by_function.items():
        named = [i for i in function_ids if keyword in i.partition("::")[2].lower()]
        if named:
            selection.ids += named
            selection.rule.update(dict.fromkeys(named, "id"))
        elif suite.algorithm in uses.get((path, function), set()):
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
    return env


@dataclass
class Outcome:
    """A test's outcome in one run: passed, failed, error, skipped or missing (not reported), and the message."""

    status: str
    message: str = ""


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
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                if status == "passed" or kind in ("failed", "error"):
                    status, message = kind, failure_message(child.get("message") or "", child.text or "")
        previous = outcomes.get(test_id)
        if previous is None or previous.status in ("passed", "skipped"):
            outcomes[test_id] = Outcome(status, message)
    return outcomes


def run_pytest(sdist: Path, ids: list[str], ours: bool, workdir: Path, tag: str) -> tuple[dict[str, Outcome], float]:
    """Run the tests in a subprocess (with the plugin when ``ours``); their outcomes and the time it took."""
    workdir.mkdir(parents=True, exist_ok=True)
    junit = workdir / f"{tag}.xml"
    log = workdir / f"{tag}.log"
    cmd = [*pytest_cmd(sdist), *(["-p", PLUGIN] if ours else []), "-q", "-rfE", "--durations=15", f"--junitxml={junit}"]
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
    """The outcomes of each test in each run, both ways."""

    sb3: dict[str, list[Outcome]] = field(default_factory=dict)
    ours: dict[str, list[Outcome]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def passes(self, side: dict[str, list[Outcome]], test_id: str) -> int:
        return sum(o.status == "passed" for o in side.get(test_id, []))

    def differing(self) -> list[str]:
        return [i for i in self.sb3 if [o.status for o in self.sb3[i]] != [o.status for o in self.ours.get(i, [])]]

    def regressions(self) -> list[str]:
        """Tests that SB3's policies passed every time and sb3-transfer's policies not."""
        return [i for i in self.sb3 if self.passes(self.ours, i) < self.passes(self.sb3, i) == len(self.sb3[i])]

    def flaky(self) -> list[str]:
        """Tests whose outcome differs, that SB3's own policies passed in some runs and failed in others."""
        return [i for i in self.differing() if 0 < self.passes(self.sb3, i) < len(self.sb3[i])]


def compare(sdist: Path, ids: list[str], workdir: Path, retries: int) -> Comparison:
    comparison = Comparison()
    for ours, side in ((False, comparison.sb3), (True, comparison.ours)):
        tag = "ours" if ours else "sb3"
        print(f"  running {len(ids)} tests with {'sb3-transfer' if ours else 'SB3'}'s policies ...", flush=True)
        outcomes, comparison.seconds[tag] = run_pytest(sdist, ids, ours, workdir, tag)
        for test_id in ids:
            side[test_id] = [outcomes[test_id]]
        print(f"    {_counts(side)} in {comparison.seconds[tag]:.0f} s", flush=True)
    for attempt in range(1, retries + 1):
        again = comparison.differing()
        if not again:
            break
        print(f"  {len(again)} tests differ: running them again ({attempt}/{retries}) both ways ...", flush=True)
        for ours, side in ((False, comparison.sb3), (True, comparison.ours)):
            outcomes, _ = run_pytest(sdist, again, ours, workdir, f"{'ours' if ours else 'sb3'}-retry{attempt}")
            for test_id in again:
                side[test_id].append(outcomes[test_id])
    return comparison


# --- reporting --------------------------------------------------------------------------------------------------------


def _counts(side: dict[str, list[Outcome]]) -> str:
    firsts = [outcomes[0].status for outcomes in side.values()]
    kinds = ("passed", "failed", "error", "skipped", "missing")
    return ", ".join(f"{firsts.count(k)} {k}" for k in kinds if firsts.count(k) or k == "passed")


def report(suite: Suite, selection: Selection, comparison: Comparison) -> str:
    lines = []
    n = len(selection.ids)
    by_rule = {r: sum(selection.rule[i] == r for i in selection.ids) for r in ("id", "body")}
    lines.append(
        f"{suite.name} {suite.version}, {suite.algorithm}: {n} tests selected of {selection.collected} collected "
        f"({by_rule['id']} by id, {by_rule['body']} by body)"
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
        mark = "WORSE" if test_id in regressions else "flaky" if test_id in flaky else "differs"
        lines.append(
            f"  {mark}: {test_id}: SB3's {comparison.passes(comparison.sb3, test_id)}/{len(sb3)} passed "
            f"({', '.join(o.status for o in sb3)}), ours {comparison.passes(comparison.ours, test_id)}/{len(ours)} "
            f"({', '.join(o.status for o in ours)})"
        )
        for label, outcomes in (("SB3's", sb3), ("ours", ours)):
            for message in dict.fromkeys(o.message for o in outcomes if o.message and o.status != "skipped"):
                lines.append(f"      {label}: {message[:300]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tests", type=Path, default=DEFAULT_CACHE, help=f"folder of the unpacked sdists (default {DEFAULT_CACHE})"
    )
    parser.add_argument("--download", action="store_true", help="pip download the sdists into --tests when missing")
    parser.add_argument("--suite", choices=[*SUITES, "all"], default="all", help="SB3's DQN tests, sb3-contrib's QR-DQN ones")
    parser.add_argument(
        "--quick", action="store_true", help="only " + ", ".join(SUITES["sb3"].quick_files) + " (where they exist)"
    )
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
    status = 0
    try:
        for key in SUITES if args.suite == "all" else [args.suite]:
            suite = SUITES[key]
            sdist = find_sdist(suite, args.tests, args.download)
            workdir = workroot / key
            workdir.mkdir(parents=True, exist_ok=True)
            print(f"{suite.name} {suite.version}: tests from {sdist / 'tests'}", flush=True)
            selection = select(suite, sdist, workdir, args.quick)
            if args.only:
                selection.ids = [i for i in selection.ids if any(t.lower() in i.lower() for t in args.only)]
                if not selection.ids:
                    print(f"  no {suite.algorithm} test matches --only {' '.join(args.only)}")
                    continue
            if args.list:
                for test_id in selection.ids:
                    print(f"  {test_id}  [{selection.rule[test_id]}]")
                for path, reason in selection.skipped_files.items():
                    print(f"  left out: {path}: {reason}")
            if args.list:
                continue
            if not selection.ids:
                raise SuiteError(f"No {suite.algorithm} tests found in {sdist / 'tests'}.")
            comparison = compare(sdist, selection.ids, workdir, args.retries)
            print(report(suite, selection, comparison), flush=True)
            if comparison.regressions():
                status = 1
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
    print("OK: sb3-transfer's policies pass every test SB3's own pass" if status == 0 else "FAIL: see WORSE above")
    return status


if __name__ == "__main__":
    sys.exit(main())
