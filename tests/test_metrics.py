import math

import numpy as np
import pytest

from sb3_transfer.errors import TransferConfigError
from sb3_transfer.metrics import Estimate, InvalidCurveError, load_curve, transfer_metrics

T = [0, 10, 20, 30]


def test_hand_computed_measures():
    m = transfer_metrics((T, [5, 6, 8, 10]), (T, [0, 2, 4, 10]), threshold=8, last_k=2)
    assert m.jumpstart.value == 5
    assert m.transfer["asymptote"].value == 9 and m.baseline["asymptote"].value == 7
    assert m.asymptotic_gain.value == 2
    assert m.transfer["auc"].value == pytest.approx(215 / 30)
    assert m.baseline["auc"].value == pytest.approx(110 / 30)
    assert m.transfer_ratio.value == pytest.approx(105 / 110)
    assert m.transfer["time_to_threshold"].value == 20 and m.baseline["time_to_threshold"].value == 30
    assert m.time_to_threshold_ratio.value == pytest.approx(2 / 3) and m.time_to_threshold_ratio.bound == ""
    assert math.isnan(m.jumpstart.low)  # one seed: no interval
    assert m.span == (0, 30)


def test_threshold_never_reached_is_censored_not_zero_or_infinite():
    m = transfer_metrics((T, [5, 6, 8, 10]), (T, [0, 2, 4, 6]), threshold=8)
    base = m.baseline["time_to_threshold"]
    assert base.value == 30 and base.censored == 1 and base.bound == ">="
    ratio = m.time_to_threshold_ratio
    assert ratio.value == pytest.approx(20 / 30) and ratio.bound == "<="
    assert "censored" in str(ratio) and str(ratio).startswith("<=")
    both = transfer_metrics((T, [5, 6, 7, 7]), (T, [0, 2, 4, 6]), threshold=8).time_to_threshold_ratio
    assert both.value == 1 and both.bound == "?"


def test_negative_rewards_with_score_range():
    t = [0, 1, 2]
    m = transfer_metrics((t, [-500, -300, -100]), (t, [-500, -500, -200]), threshold=-100, score_range=(-500, 0))
    assert m.transfer["auc"].value == pytest.approx(0.4) and m.baseline["auc"].value == pytest.approx(0.15)
    assert m.transfer_ratio.value == pytest.approx(0.25 / 0.15)
    assert m.jumpstart.value == 0
    assert m.transfer["time_to_threshold"].value == 2 and m.baseline["time_to_threshold"].censored == 1
    assert m.threshold == -100  # reported in the curves' own units


def test_unequal_evaluation_grids_compare_on_common_span():
    m = transfer_metrics(([0, 5, 10], [0, 5, 10]), ([0, 10, 20], [0, 10, 20]))
    assert m.span == (0, 10)
    assert m.transfer["auc"].value == pytest.approx(5) and m.baseline["auc"].value == pytest.approx(5)
    assert m.transfer_ratio.value == pytest.approx(0)
    with pytest.raises(InvalidCurveError, match="share no timesteps"):
        transfer_metrics(([0, 5], [0, 1]), ([10, 20], [0, 1]))


def test_several_seeds_give_mean_and_bootstrap_interval():
    transfer = [(T, [1, 2, 3, 4]), (T, [3, 4, 5, 6])]
    baseline = [(T, [0, 0, 0, 0]), (T, [0, 1, 1, 1])]
    m = transfer_metrics(transfer, baseline)
    js = m.jumpstart
    assert js.value == 2 and js.n == 2
    assert 1 <= js.low <= js.value <= js.high <= 3
    first = m.transfer["first"]
    assert 1 <= first.low <= first.high <= 3
    again = transfer_metrics(transfer, baseline)
    assert again.jumpstart == js  # the bootstrap is seeded


def test_dip_and_recovery():
    t = [0, 1, 2, 3, 4]
    m = transfer_metrics((t, [10, 4, 6, 12, 11]))
    assert m.transfer["dip"].value == 6 and m.transfer["recovery"].value == 3
    never = transfer_metrics((t[:3], [10, 4, 6])).transfer["recovery"]
    assert never.value == 2 and never.censored == 1
    assert transfer_metrics((t, [1, 2, 3, 4, 5])).transfer["dip"].value == 0
    assert not transfer_metrics((t, [1, 2, 3, 4, 5])).comparison  # no baseline, no comparison


def test_reads_npz_monitor_and_dict(tmp_path):
    np.savez(tmp_path / "evaluations.npz", timesteps=[0, 10], results=[[1.0, 3.0], [5.0, 7.0]], ep_lengths=[[1, 1], [1, 1]])
    for source in (tmp_path / "evaluations.npz", tmp_path, str(tmp_path / "evaluations.npz")):
        t, v = load_curve(source)
        assert list(t) == [0, 10] and list(v) == [2, 6]
    (tmp_path / "0.monitor.csv").write_text('#{"t_start": 0, "env_id": "CartPole-v1"}\nr,l,t\n10.0,10,0.1\n30.0,30,0.2\n')
    t, v = load_curve(tmp_path / "0.monitor.csv")
    assert list(t) == [10, 40] and list(v) == [10, 30]
    t, v = load_curve({"timesteps": [5, 0], "results": [[2.0], [1.0]]})
    assert list(t) == [0, 5] and list(v) == [1, 2]  # sorted by timestep


@pytest.mark.parametrize(
    "source, match",
    [
        ("missing.npz", "does not exist"),
        (42, "Cannot read a learning curve from a int"),
        (([0, 1], [1.0]), "as many values as timesteps"),
        ({"timesteps": [0]}, "needs 'timesteps' and 'results'"),
        (([0, 1], [1.0, np.nan]), "non-finite"),
    ],
)
def test_bad_curves_are_named(tmp_path, source, match):
    if source == "missing.npz":
        source = tmp_path / source
    with pytest.raises(InvalidCurveError, match=match):
        load_curve(source)


def test_bad_files_are_named(tmp_path):
    np.savez(tmp_path / "other.npz", a=[1])
    with pytest.raises(InvalidCurveError, match=r"not an SB3 evaluations\.npz"):
        load_curve(tmp_path / "other.npz")
    (tmp_path / "x.monitor.csv").write_text("r,l,t\n1,1,1\n")
    with pytest.raises(InvalidCurveError, match="not an SB3 Monitor log"):
        load_curve(tmp_path / "x.monitor.csv")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InvalidCurveError, match=r"expected an evaluations\.npz"):
        load_curve(tmp_path / "notes.txt")


def test_bad_arguments_are_named():
    with pytest.raises(TransferConfigError, match="score_range"):
        transfer_metrics((T, [1, 2, 3, 4]), score_range=(1, 0))
    with pytest.raises(TransferConfigError, match="last_k"):
        transfer_metrics((T, [1, 2, 3, 4]), last_k=0)


def test_readable_and_serialisable():
    m = transfer_metrics([(T, [5, 6, 8, 10]), (T, [4, 6, 9, 10])], (T, [0, 2, 4, 10]), threshold=8)
    text = str(m)
    for word in ("jumpstart", "transfer_ratio", "time_to_threshold", "asymptote", "threshold: 8"):
        assert word in text
    data = m.to_dict()
    assert data["comparison"]["jumpstart"]["value"] == pytest.approx(4.5)
    assert data["baseline"]["first"]["low"] is None  # nan -> None for JSON
    assert isinstance(Estimate(1.0, 0.5, 1.5, 3).__str__(), str)
