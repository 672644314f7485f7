import io
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sb3_transfer.bench.report import WIDTH, terminal_summary, write_report
from sb3_transfer.bench.runner import (
    LOCK_FILE,
    check_hyperparams,
    cell_runs,
    suite_runs,
    Run,
    lock_folder,
    run_config,
    run_hyperparams,
    run_path,
    run_suite,
    run_warm_start,
    source_path,
)
from sb3_transfer.bench.stats import aggregate_poi, iqm, probability_of_improvement, stratified_bootstrap_ci
from sb3_transfer.bench.suites import METHODS, PAIRS, SUITES, Method, Suite
from sb3_transfer.cli import main
from sb3_transfer.errors import OutputInUseError, TransferConfigError


def test_iqm_on_fixed_numbers():
    assert iqm([5, 1, 3, 2, 4]) == 3  # floor(5/4) = 1 cut from each end: mean of 2, 3, 4
    assert iqm([1, 2, 3, 4, 5, 6, 7, 100]) == 4.5  # 2 cut from each end: mean of 3..6
    assert iqm([1, 2, 3]) == 2  # nothing cut
    with pytest.raises(ValueError):
        iqm([])


def test_probability_of_improvement_on_fixed_numbers():
    assert probability_of_improvement(np.array([1, 2]), np.array([0, 2])) == pytest.approx(2.5 / 4)
    assert probability_of_improvement(np.array([3, 3]), np.array([1, 2])) == 1.0
    assert aggregate_poi([np.array([1, 2]), np.array([3, 3])], [np.array([0, 2]), np.array([1, 2])]) == pytest.approx(0.8125)


def test_stratified_bootstrap_resamples_within_strata():
    strata = [np.array([0.0, 0.0, 0.0]), np.array([10.0, 10.0, 10.0])]
    # Resampling within each stratum keeps one 0-run and one 10-run per stratum: the mean never moves.
    assert stratified_bootstrap_ci(strata, lambda s: float(np.concatenate(s).mean()), n_bootstrap=200) == (5.0, 5.0)
    low, high = stratified_bootstrap_ci([np.array([1.0, 2.0, 3.0, 4.0])], lambda s: float(s[0].mean()), n_bootstrap=500)
    assert 1 <= low < 2.5 < high <= 4
    assert stratified_bootstrap_ci([np.array([1.0, 2.0, 3.0])], lambda s: float(s[0].mean())) == stratified_bootstrap_ci(
        [np.array([1.0, 2.0, 3.0])], lambda s: float(s[0].mean())
    )


def test_micro_suite_runs_resumes_and_reports(tmp_path, capsys):
    suite = SUITES["micro"]
    messages = []
    run_suite(suite, tmp_path, workers=2, log=messages.append)
    runs = [Run(p, m, s) for p in suite.pairs for m in suite.methods for s in suite.seeds]
    assert all(run_path(tmp_path, r).exists() for r in runs)
    with np.load(run_path(tmp_path, runs[0])) as data:
        assert data["timesteps"][0] == 0  # evaluated before learning
    # Resume: finished runs are skipped; a lost one runs again (here with a progress bar, in place of a line per run).
    run_path(tmp_path, runs[-1]).unlink()
    mtime = run_path(tmp_path, runs[0]).stat().st_mtime
    messages.clear()
    capsys.readouterr()
    run_suite(suite, tmp_path, workers=1, log=messages.append, progress=True)
    assert len(messages) == 1 and f"{len(runs) - 1} already done, 1 to go" in messages[0]
    bar = capsys.readouterr().err
    assert "suite micro: 100%" in bar and "1/1 [" in bar and runs[-1].key in bar
    assert run_path(tmp_path, runs[-1]).exists() and run_path(tmp_path, runs[0]).stat().st_mtime == mtime
    # The timings are kept across the resumed run: every run has one, the one made again its new one.
    assert set(json.loads((tmp_path / "seconds.json").read_text())) >= {r.key for r in runs}
    summary = write_report(suite, tmp_path, "test", 1.0)
    for name in ("summary.json", "report.md", "plots/cartpole-longpole.png"):
        assert (tmp_path / name).exists(), name
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert set(saved["pairs"]) == {p.name for p in suite.pairs} and saved["provenance"]["command"] == "test"
    scratch = summary["pairs"]["cartpole-longpole"]["methods"]["scratch"]
    assert scratch["time_to_threshold_ratio"] == 1.0 and scratch["jumpstart"]["iqm"] == pytest.approx(
        np.mean(summary["runs"]["cartpole-longpole"]["scratch"]["first"])
        - np.mean(summary["runs"]["cartpole-longpole"]["scratch"]["first"])
    )
    report = (tmp_path / "report.md").read_text()
    assert "## Aggregate over pairs" in report and "| cartpole-longpole | finetune |" in report.split("## Targets")[1]
    # The hold each pair's runs used: micro's 100 timesteps at 128 draws, a quarter at rl-zoo3's CartPole sampling.
    assert saved["pairs"]["cartpole-longpole"]["warm_start"] == {"finetune": 25}
    assert "Warm start (`PolicyWarmStart`) on this pair: `finetune` 25 timesteps." in report
    # The method that never trains says what its row is: evaluation noise.
    assert saved["untrained"] == ["zeroshot"] and "`zeroshot` never trains: its policy is the same" in report
    # Methods that start from its policy are shown the floor its evaluation noise reached.
    methods = saved["pairs"]["cartpole-longpole"]["methods"]
    floor = methods["zeroshot"]["forgetting"]["lowest"]
    rows = {
        line.split(" | ")[1]: line for line in report.split("## Targets")[1].splitlines() if "| cartpole-longpole |" in line
    }
    assert f"; untrained {floor:.1f})" in rows["finetune"] and "; untrained" not in rows["zeroshot"]
    # The report says how to read it; the command prints verdicts that fit 100 columns and points to the report.
    assert "How to read the tables:" in report and "**Censored**" in report and "`?1.00`" in report
    assert main(["bench", "--suite", "micro", "--out", str(tmp_path), "--no-progress-bar"]) == 0
    printed = capsys.readouterr().out
    assert "Verdicts against scratch, IQM over 2 seeds:" in printed and "## Targets" not in printed
    assert f"Tables, CIs and how to read them: {tmp_path / 'report.md'}" in printed
    assert max(len(line) for line in printed.split("Verdicts", 1)[1].splitlines()[:-2]) <= 100
    assert "cartpole-longpole: CartPole-v1 -> CartPoleLongPole-v1; scratch" in printed


RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@pytest.mark.parametrize("suite", ["quick", "standard"])
def test_terminal_summary_fits_100_columns_and_says_why(suite):
    summary = json.loads((RESULTS / suite / "summary.json").read_text())
    lines = terminal_summary(summary, "report.md")
    assert max(len(line) for line in lines) <= WIDTH
    text = " ".join(" ".join(lines).split())  # as read, across the wrapped lines
    for name, pair in summary["pairs"].items():
        assert f"{name}: {pair['source']} -> {pair['target']}; scratch" in text
    # One verdict per pair and transfer method, each starting a line (a long one goes on over indented lines).
    methods = [line.split()[0] for line in lines if line.startswith("  ") and line[2] != " "]
    assert methods == [m for m in summary["methods"] if m != "scratch"] * len(summary["pairs"])
    # Each check a method misses says why, in words.
    if suite == "standard":
        assert "reaches the threshold in 0.39x scratch's steps (not within 1/3); forgets (dip 28)" in text  # long pole
        assert "(a bound: scratch misses it 4/5)" in text  # weak motor: <= ratio, unknown against 1/3
        assert "no clear jumpstart (-12, CI reaches 0)" in text and "slower to the threshold (>=1.30x; misses it 5/5)" in text
        assert "time to the threshold unknown (it misses it 5/5, scratch 5/5)" in text  # ?
        assert "ends worse (90 vs 369)" in text and "zeroshot never trains" in text
    assert "censored" in text and "report.md" in lines[-1]


def test_terminal_summary_counts_the_runs_of_every_source_agent():
    summary = json.loads((RESULTS / "quick" / "summary.json").read_text())
    summary["seeds"], summary["source_seeds"] = [0, 1, 2], [0, 1, 2]
    for pair in summary["pairs"].values():
        pair["methods"]["scratch"]["time_to_threshold"]["censored"] = 8
    text = " ".join(" ".join(terminal_summary(summary)).split())
    assert "IQM over 9 runs per cell (3 target seeds x 3 source agents):" in text
    assert "in 8/9 runs, ends at" in text


def test_bench_command_errors(capsys):
    assert main(["bench", "--suite", "huge"]) == 2
    assert "choose one of quick, standard, ppo, sac, micro" in capsys.readouterr().err


def test_new_pair_is_a_few_lines():
    pair = replace(PAIRS["cartpole-longpole"], name="cartpole-weak-2", target_env="CartPoleWeakMotor-v1")
    assert pair.source_env == "CartPole-v1" and pair.threshold == 475


def _tiny_suite():
    micro = SUITES["micro"]
    return replace(micro, name="tiny", pairs=micro.pairs[:1], methods=micro.methods[:2], seeds=(0,))


def test_ray_dispatch_matches_the_local_pool(tmp_path):
    suite = _tiny_suite()
    run_suite(suite, tmp_path / "pool", workers=1, log=lambda _: None)
    messages = []
    runs = run_suite(suite, tmp_path / "ray", ray_address="local", log=messages.append)
    assert "Ray" in messages[0] and len(messages) == 1 + 1 + len(runs)  # header, the source, every run
    for run in runs:
        with np.load(run_path(tmp_path / "pool", run)) as pool, np.load(run_path(tmp_path / "ray", run)) as ray:
            # Reproducible from seed and config, wherever it ran.
            np.testing.assert_array_equal(pool["timesteps"], ray["timesteps"])
            np.testing.assert_array_equal(pool["results"], ray["results"])
    # Each job's own time, measured where it ran, whichever way it was dispatched.
    for where in ("pool", "ray"):
        seconds = json.loads((tmp_path / where / "seconds.json").read_text())
        assert set(seconds) == {r.key for r in runs} | {f"sources/{source_path(tmp_path, suite.pairs[0]).name}"}
        assert all(value > 0 for value in seconds.values())
    # Resume on Ray too: only the lost run is dispatched.
    run_path(tmp_path / "ray", runs[0]).unlink()
    messages.clear()
    run_suite(suite, tmp_path / "ray", ray_address="local", log=messages.append)
    assert f"{len(runs) - 1} already done, 1 to go" in messages[0]
    assert run_path(tmp_path / "ray", runs[0]).exists()


def test_ray_address_without_ray_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(TransferConfigError, match=r"--ray-address auto: Ray is not installed"):
        run_suite(_tiny_suite(), tmp_path, ray_address="auto")


@pytest.mark.parametrize(
    "censored, scratch_censored, bound",
    [
        ([0, 0, 0, 0, 0], [0, 0, 0, 0, 1], ""),  # 5 runs: the IQM cuts one from each end, the censored one with it
        ([0, 0, 0, 0, 0], [0, 0, 0, 1, 1], "<="),  # scratch's IQM holds a censored time: its true time is longer
        ([1, 1, 0, 0, 0], [0, 0, 0, 0, 0], ">="),
        ([1, 1, 1, 0, 0], [1, 1, 1, 1, 1], "?"),
        ([0, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1, 1], ""),  # 8 runs: two cut from each end
    ],
)
def test_time_ratio_bound_with_censored_runs(censored, scratch_censored, bound):
    from sb3_transfer.bench.report import ratio_bound

    assert ratio_bound(censored, scratch_censored) == bound


@pytest.mark.parametrize(
    "ratio, bound, verdict",
    [
        (0.2, "", "yes (0.20)"),
        (0.2, "<=", "yes (<=0.20)"),
        (0.5, "", "**no** (0.50)"),
        (0.5, ">=", "**no** (>=0.50)"),
        (0.5, "<=", "unknown (<=0.50: scratch's time is censored)"),
        (0.8, "?", "unknown (0.80: neither reaches the threshold in most seeds)"),
    ],
)
def test_time_check_says_what_a_bound_can_tell(ratio, bound, verdict):
    from sb3_transfer.bench.report import _time_check

    assert _time_check(ratio, bound) == verdict


def test_forgetting_check_on_fixed_curves():
    from sb3_transfer.bench.report import _forgetting

    steady = {"curve": [[100.0, 120.0, 150.0], [100.0, 110.0, 160.0], [100.0, 130.0, 140.0]]}
    result = _forgetting(steady, n_bootstrap=100)
    assert result["held"] and result["first"]["low"] == 100.0 and result["lowest"] == 120.0
    dipping = {"curve": [[100.0, 20.0, 150.0], [90.0, 30.0, 160.0], [110.0, 10.0, 140.0]]}
    result = _forgetting(dipping, n_bootstrap=100)
    assert not result["held"] and result["lowest"] == 20.0 and 90.0 <= result["first"]["low"] <= 100.0


def test_a_failed_run_stops_the_suite_and_keeps_finished_work(tmp_path):
    micro = SUITES["micro"]
    # A policy argument the policy does not take: found only when the worker builds the model.
    broken = Method("broken", None, hyperparams={"policy_kwargs": {"not_an_argument": 1}})
    suite = replace(micro, name="broken", pairs=micro.pairs[:1], methods=(micro.methods[0], broken), seeds=(0,))
    with pytest.raises(TypeError, match="not_an_argument"):
        run_suite(suite, tmp_path, workers=2, log=lambda _: None)
    # The scratch run was running beside the failing one: it finished and was written.
    assert run_path(tmp_path, Run(suite.pairs[0], micro.methods[0], 0)).exists()
    assert not run_path(tmp_path, Run(suite.pairs[0], broken, 0)).exists()


def test_a_task_that_cannot_be_made_fails_before_training(tmp_path):
    micro = SUITES["micro"]
    suite = replace(micro, pairs=(replace(micro.pairs[0], target_env="NoSuchTask-v0"),))
    with pytest.raises(TransferConfigError, match=r"suite micro: task NoSuchTask-v0 cannot be made here"):
        run_suite(suite, tmp_path, log=lambda _: None)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "sources").exists()


def test_a_method_warm_start_holds_learning_as_a_zero_learning_rate_would(tmp_path):
    micro = SUITES["micro"]
    pair = micro.pairs[0]  # 600 target steps
    early = dict(learning_starts=0)  # rl-zoo3's 1000 is longer than the run
    held = Method("held", "all", hyperparams=early, warm_start=1_000)  # the pretrained weights never move
    zero = Method("zero", "all", hyperparams=early, lr_scale={"*": 0.0})
    learns = Method("learns", "all", hyperparams=early)
    untrained = METHODS["zeroshot"]
    methods = (micro.methods[0], held, zero, learns, untrained)
    suite = replace(micro, name="hold", pairs=(pair,), methods=methods, seeds=(0,))
    run_suite(suite, tmp_path, workers=2, log=lambda _: None)
    curves, timesteps = {}, {}
    for method in suite.methods[1:]:
        with np.load(run_path(tmp_path, Run(pair, method, 0))) as data:
            curves[method.name] = data["results"].mean(axis=1)
            timesteps[method.name] = data["timesteps"]
    np.testing.assert_array_equal(curves["held"], curves["zero"])
    assert not np.array_equal(curves["held"], curves["learns"])
    # A method that does not train evaluates the unchanged policy at the same timesteps, on the same episodes, as every
    # run of its seed, without training.
    np.testing.assert_array_equal(timesteps["zeroshot"], timesteps["zero"])
    np.testing.assert_array_equal(curves["zeroshot"], curves["zero"])


def test_a_run_holds_its_methods_warm_start_scaled_to_its_sampling():
    finetune = METHODS["finetune"]
    assert run_warm_start(Run(PAIRS["acrobot-heavy"], finetune, 0)) == finetune.warm_start  # 128 draws per timestep
    assert run_warm_start(Run(PAIRS["cartpole-longpole"], finetune, 0)) == finetune.warm_start // 4  # 32
    assert run_warm_start(Run(PAIRS["cartpole-longpole"], METHODS["scratch"], 0)) == 0
    as_given = replace(finetune, scale_warm_start=False)
    assert run_warm_start(Run(PAIRS["cartpole-longpole"], as_given, 0)) == finetune.warm_start
    # What the run holds is what its saved settings record, so a change of the scaling is a change of settings.
    assert run_config(Run(PAIRS["cartpole-longpole"], finetune, 3))["method"]["warm_start"] == finetune.warm_start // 4


@pytest.mark.parametrize(
    "method, message",
    [
        (Method("bad-hold", "all", warm_start=-5), "method bad-hold: PolicyWarmStart steps=-5"),
        (Method("bad-unfreeze", "all", unfreeze_fraction=1.5), "method bad-unfreeze: unfreeze_fraction=1.5"),
    ],
)
def test_bad_method_settings_fail_before_training(tmp_path, method, message):
    micro = SUITES["micro"]
    suite = replace(micro, methods=(micro.methods[0], method))
    with pytest.raises(TransferConfigError, match=f"suite micro, {message}"):
        run_suite(suite, tmp_path, log=lambda _: None)
    assert not (tmp_path / "sources").exists()


def test_a_finished_run_made_with_other_settings_is_not_reused(tmp_path):
    suite = _tiny_suite()
    run_suite(suite, tmp_path, workers=1, log=lambda _: None)
    run = Run(suite.pairs[0], suite.methods[1], 0)
    assert json.loads(run_path(tmp_path, run).with_name("config.json").read_text())["method"]["transfer"] == "all"
    changed = replace(suite.methods[1], warm_start=suite.methods[1].warm_start + 7)  # same name, other settings
    with pytest.raises(TransferConfigError, match=r"finetune/seed0 \(method.warm_start\).*Move them away"):
        run_suite(replace(suite, methods=(suite.methods[0], changed)), tmp_path, workers=1, log=lambda _: None)
    # The description is not a setting: the finished runs are reused.
    run_suite(replace(suite, methods=(suite.methods[0], replace(suite.methods[1], description="new words"))), tmp_path)


@pytest.mark.parametrize("saved, reused", [(None, True), (False, False)])
def test_a_setting_added_since_a_run_was_made_counts_at_its_default(tmp_path, saved, reused):
    suite = _tiny_suite()
    run_suite(suite, tmp_path, workers=1, log=lambda _: None)
    path = run_path(tmp_path, Run(suite.pairs[0], suite.methods[1], 0)).with_name("config.json")
    config = json.loads(path.read_text())
    assert config["method"]["train"] is True
    del config["method"]["train"]  # as a run made before Method.train existed saved it
    if saved is not None:
        config["method"]["train"] = saved
    path.write_text(json.dumps(config))
    messages = []
    if reused:
        run_suite(suite, tmp_path, workers=1, log=messages.append)
        assert "2 already done, 0 to go" in messages[0]
    else:
        with pytest.raises(TransferConfigError, match=r"finetune/seed0 \(method.train\)"):
            run_suite(suite, tmp_path, workers=1, log=lambda _: None)


def test_saved_settings_hold_the_resolved_hyperparameters_and_the_source(tmp_path):
    suite = _tiny_suite()
    run_suite(suite, tmp_path, workers=1, log=lambda _: None)
    run = Run(suite.pairs[0], suite.methods[1], 0)
    saved = run_path(tmp_path, run).with_name("config.json")
    config = json.loads(saved.read_text())
    assert config["hyperparams"]["batch_size"] == 64  # rl-zoo3's CartPole setting, resolved
    assert config["source"] == source_path(tmp_path, run.pair).name and (tmp_path / "sources" / config["source"]).exists()
    # Another rl-zoo3 tuning the task differently: the finished run is not taken for one of this suite.
    saved.write_text(json.dumps({**config, "hyperparams": {**config["hyperparams"], "batch_size": 32}}))
    with pytest.raises(TransferConfigError, match=r"finetune/seed0 \(hyperparams\)"):
        run_suite(suite, tmp_path, workers=1, log=lambda _: None)
    # Saved before the runner recorded them (with other optimizer settings), or with no settings at all: not reused.
    del config["hyperparams"], config["source"]
    saved.write_text(json.dumps(config))
    with pytest.raises(TransferConfigError, match=r"finetune/seed0 \(hyperparams not recorded, source not recorded\)"):
        run_suite(suite, tmp_path, workers=1, log=lambda _: None)
    saved.unlink()
    with pytest.raises(TransferConfigError, match=r"finetune/seed0 \(no config.json\)"):
        run_suite(suite, tmp_path, workers=1, log=lambda _: None)


def _rate(start):
    def schedule(progress):
        return start * progress

    return schedule


def test_a_function_among_the_settings_is_written_by_its_name_and_code():
    def config(learning_rate):
        method = Method("scheduled", None, hyperparams={"learning_rate": learning_rate})
        return run_config(Run(PAIRS["cartpole-longpole"], method, 0))

    first = config(_rate(1e-3))
    assert "_rate.<locals>.schedule#" in first["method"]["hyperparams"]["learning_rate"]
    assert first == config(_rate(1e-3))  # no address: the same each time it is computed
    assert first != config(_rate(1e-4))  # what the closure captured counts
    assert first != config(lambda progress: 1e-3 * progress)


def test_hyperparameters_that_build_no_model_name_the_run(tmp_path):
    micro = SUITES["micro"]
    for method in micro.methods[:2]:  # scratch holds nothing, finetune's hold reads the sampling settings
        typo = replace(method, hyperparams={"batchsize": 32})
        with pytest.raises(
            TransferConfigError, match=rf"run cartpole-longpole/{method.name}/seed0: its hyperparameters .*batch"
        ):
            methods = (typo,) if method.transfer is None else (micro.methods[0], typo)
            run_suite(replace(micro, methods=methods), tmp_path, log=lambda _: None)
    assert not (tmp_path / "sources").exists()


def test_unreadable_saved_settings_are_named(tmp_path):
    suite = _tiny_suite()
    run_suite(suite, tmp_path, workers=1, log=lambda _: None)
    run_path(tmp_path, Run(suite.pairs[0], suite.methods[0], 0)).with_name("config.json").write_text("{")
    with pytest.raises(TransferConfigError, match=r"scratch/seed0 \(unreadable config.json\)"):
        run_suite(suite, tmp_path, workers=1, log=lambda _: None)


def test_every_model_of_a_suite_gets_the_suites_optimizer_settings(monkeypatch):
    from sb3_transfer import adapt
    from sb3_transfer.bench import runner

    pair = SUITES["micro"].pairs[0]
    scratch = run_hyperparams(Run(pair, METHODS["scratch"], 0))
    assert scratch["policy_kwargs"]["optimizer_kwargs"] == runner.OPTIMIZER_KWARGS
    assert scratch["policy_kwargs"]["net_arch"] == [256, 256]  # rl-zoo3's, kept
    # A pair's or method's own policy_kwargs add to rl-zoo3's, key by key; their optimizer settings win.
    own = replace(pair, hyperparams={"policy_kwargs": {"optimizer_kwargs": {"fused": False, "eps": 1e-6}}})
    kwargs = run_hyperparams(Run(own, METHODS["scratch"], 0))["policy_kwargs"]
    assert kwargs == {"net_arch": [256, 256], "optimizer_kwargs": {"fused": False, "eps": 1e-6}}
    method = Method("own", None, hyperparams={"policy_kwargs": {"optimizer_kwargs": {"eps": 1e-6}}})
    kwargs = run_hyperparams(Run(pair, method, 0))["policy_kwargs"]
    assert kwargs == {"net_arch": [256, 256], "optimizer_kwargs": {**runner.OPTIMIZER_KWARGS, "eps": 1e-6}}
    other = Method("rmsprop", None, hyperparams={"policy_kwargs": {"optimizer_class": torch.optim.RMSprop}})
    assert "optimizer_kwargs" not in run_hyperparams(Run(pair, other, 0))["policy_kwargs"]  # fused is Adam's
    built, real = [], adapt.load_and_adapt
    monkeypatch.setattr(adapt, "load_and_adapt", lambda *args, **kwargs: built.append(real(*args, **kwargs)) or built[-1])
    runner.execute(Run(pair, METHODS["finetune"], 0), runner.train_source(pair))
    assert built[0].policy.optimizer.defaults["fused"] is True  # the source's architecture, the suite's optimizer


def test_a_pairs_source_seed_trains_and_caches_another_source_agent(tmp_path):
    from sb3_transfer.bench.runner import train_source

    pair = SUITES["micro"].pairs[0]
    other = replace(pair, source_seed=1)
    assert source_path(tmp_path, pair).name.endswith(f"-{pair.source_steps}-{source_path(tmp_path, pair).stem[-8:]}.zip")
    assert source_path(tmp_path, other) == source_path(tmp_path, pair).with_name(
        source_path(tmp_path, pair).stem + "-seed1.zip"
    )

    def weights(source: bytes) -> bytes:  # the zip's other members hold the time it was saved
        with zipfile.ZipFile(io.BytesIO(source)) as archive:
            return archive.read("policy.pth")

    assert weights(train_source(pair)) == weights(train_source(pair)) != weights(train_source(other))


def test_a_second_run_on_a_folder_in_use_stops_at_once(tmp_path, capsys):
    messages = []
    with lock_folder(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        in_use = rf"{re.escape(str(tmp_path))} is in use by another benchmark run \(pid {os.getpid()}\)"
        with pytest.raises(OutputInUseError, match=in_use):
            run_suite(_tiny_suite(), tmp_path, log=messages.append)
        assert messages == [] and not (tmp_path / "runs").exists()  # before any check, let alone training
        assert main(["bench", "--suite", "micro", "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert re.search(in_use, err) and err.count("\n") == 1
    assert not (tmp_path / LOCK_FILE).exists()
    # A lock file left by a killed run (the operating system released its lock) does not block.
    (tmp_path / LOCK_FILE).write_text("999999\n")
    with lock_folder(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"


def _alive(pid):
    """Whether a process runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


_POOL_THEN_WAIT = """
import multiprocessing, time
from sb3_transfer.bench.runner import _Pool
pool = _Pool(2)
for key in "ab":
    pool.submit(key, time.sleep, 300)
while len(multiprocessing.active_children()) < 2:
    time.sleep(0.05)
print(*(p.pid for p in multiprocessing.active_children()), flush=True)
time.sleep(300)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_the_main_process_is_killed():
    main_process = subprocess.Popen([sys.executable, "-c", _POOL_THEN_WAIT], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in main_process.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    finally:
        main_process.kill()  # SIGKILL: no cleanup of its own runs
        main_process.wait()
        main_process.stdout.close()
    deadline = time.monotonic() + 30  # a bound on waiting; the workers check every 0.5 s
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # nothing left behind on a shared machine, even when this fails
        os.kill(pid, signal.SIGKILL)
    assert left == []


def test_ctrl_c_ends_the_running_jobs_and_keeps_the_finished_ones(tmp_path):
    micro = SUITES["micro"]
    # The scratch run would train for minutes; the zeroshot run waits for the source, which comes first.
    pair = replace(micro.pairs[0], target_steps=50_000)
    suite = replace(micro, name="long", pairs=(pair,), methods=(METHODS["scratch"], METHODS["zeroshot"]), seeds=(0,))
    before = {p.pid for p in multiprocessing.active_children()}

    def log(message):
        if "source 1/1" in message:
            raise KeyboardInterrupt  # as Ctrl-C would, in the main process, while the scratch run trains

    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, tmp_path, workers=2, log=log)
    assert {p.pid for p in multiprocessing.active_children()} <= before  # the pool's workers are gone
    assert source_path(tmp_path, pair).exists() and not (tmp_path / "runs").exists()
    assert not (tmp_path / LOCK_FILE).exists()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_on_the_bench_command_says_how_to_resume_and_the_same_command_resumes(tmp_path):
    command = [sys.executable, "-m", "sb3_transfer.cli", "bench", "--suite", "micro", "--out", str(tmp_path), "--workers", "2"]
    # A shell without job control starts background commands with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: CI run as `bash .ci/run &` would see the command finish instead. Ctrl-C as at a terminal.
    bench = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in bench.stdout:
            if "[1/" in line:  # a run is saved, others are running
                break
        workers = [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _parent(pid) == bench.pid and _alive(int(pid))]
        bench.send_signal(signal.SIGINT)  # to the main process alone: its workers must end by its word
        _, err = bench.communicate(timeout=120)
    finally:
        bench.kill()
    assert bench.returncode == 130
    assert err.count("\n") == 1 and "interrupted; the finished runs are kept in" in err and "again to resume" in err
    assert workers and not any(_alive(pid) for pid in workers)
    resumed = subprocess.run(command, capture_output=True, text=True, check=True)
    done = int(re.search(r"(\d+) already done", resumed.stdout).group(1))
    assert done >= 1


def _parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def test_a_suite_over_source_agents_has_a_run_per_source_agent_and_seed(tmp_path):
    micro = SUITES["micro"]
    suite = replace(micro, name="sources", pairs=micro.pairs[:1], methods=micro.methods[:2], source_seeds=(0, 1))
    scratch, finetune = (cell_runs(suite, suite.pairs[0], m) for m in suite.methods)
    assert [r.key.rsplit("/", 1)[1] for r in finetune] == ["seed0", "seed1", "src1-seed0", "src1-seed1"]
    assert [r.pair.source_seed for r in finetune] == [0, 0, 1, 1]
    assert [r.seed for r in scratch] == [0, 1, 2, 3] and {r.pair.source_seed for r in scratch} == {0}
    run_suite(suite, tmp_path, workers=2, log=lambda _: None)
    assert all(run_path(tmp_path, r).exists() for r in suite_runs(suite))
    # Each source agent is trained once, under its own name; a run's settings name the source it started from.
    assert sorted(p.name.endswith("-seed1.zip") for p in (tmp_path / "sources").iterdir()) == [False, True]
    saved = json.loads(run_path(tmp_path, finetune[2]).with_name("config.json").read_text())
    assert saved["source"].endswith("-seed1.zip") and saved["pair"]["source_seed"] == 1
    summary = write_report(suite, tmp_path, "test", 1.0)
    assert len(summary["runs"]["cartpole-longpole"]["finetune"]["final"]) == 4 and summary["source_seeds"] == [0, 1]


def test_a_methods_offline_steps_train_at_the_end_of_the_warm_start(tmp_path):
    micro = SUITES["micro"]
    pair = micro.pairs[0]
    early = dict(learning_starts=0)
    held = Method("held", "all", hyperparams=early, warm_start=10_000)  # held for the whole run: the weights never move
    offline = replace(held, name="offline", offline_steps=50)  # ... unless the hold ends: it never does here
    released = replace(held, name="released", warm_start=200)
    then_offline = replace(released, name="then-offline", offline_steps=50)
    methods = (micro.methods[0], held, offline, released, then_offline)
    suite = replace(micro, name="offline", pairs=(pair,), methods=methods, seeds=(0,))
    run_suite(suite, tmp_path, workers=2, log=lambda _: None)
    curves = {m.name: np.load(run_path(tmp_path, Run(pair, m, 0)))["results"].mean(axis=1) for m in suite.methods[1:]}
    np.testing.assert_array_equal(curves["held"], curves["offline"])
    assert not np.array_equal(curves["released"], curves["then-offline"])


def test_a_ppo_pair_runs_without_replay_settings_or_warm_start(tmp_path):
    """On-policy pairs (the `ppo` suite): no replay sampling to check, no buffer for a warm start to fill."""
    pair = replace(PAIRS["ppo-cartpole-longpole"], source_steps=512, target_steps=512, eval_freq=256, n_eval_episodes=1)
    pair = replace(pair, threshold=1000.0)  # never reached: a time ratio to report
    finetune = METHODS["finetune"]  # a method with a warm start: on PPO it holds none
    assert check_hyperparams(Run(pair, finetune, 0)) == {} and run_warm_start(Run(pair, finetune, 0)) == 0
    suite = Suite("ppo-tiny", (pair,), tuple(METHODS[m] for m in ("scratch", "zeroshot", "finetune-lr0.1")), (0,))
    run_suite(suite, tmp_path, workers=1)
    for method in suite.methods:
        with np.load(run_path(tmp_path, Run(pair, method, 0))) as data:
            assert list(data["timesteps"]) == [0, 256, 512]
    summary = write_report(suite, tmp_path, "test", 1.0)
    assert set(summary["pairs"]["ppo-cartpole-longpole"]["methods"]) == {"scratch", "zeroshot", "finetune-lr0.1"}
