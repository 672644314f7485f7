import copy

import numpy as np
import pytest
import torch as th
from conftest import MLP_KWARGS, make_model
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from stable_baselines3.common.logger import configure

from sb3_transfer import TransferConfigError, TransferDQN, TransferQRDQN, load_and_adapt
from sb3_transfer.losses import anchor_loss, distill_loss, distill_weight

FAST = dict(learning_starts=0, train_freq=1, batch_size=16, buffer_size=500, device="cpu")


def test_distill_loss_is_zero_when_the_student_is_the_teacher_and_its_gradient_moves_toward_it():
    teacher = th.tensor([[1.0, 3.0, 0.0], [2.0, -1.0, 0.5]])
    assert distill_loss(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-7)
    assert distill_loss(teacher + 5.0, teacher).item() == pytest.approx(0.0, abs=1e-6)  # a constant per state: same policy
    student = th.zeros_like(teacher, requires_grad=True)
    before = distill_loss(student, teacher)
    before.backward()
    with th.no_grad():
        moved = student - 0.5 * student.grad
    assert distill_loss(moved, teacher) < before
    # The student's preferred action becomes the teacher's.
    assert th.equal(moved.argmax(dim=1), teacher.argmax(dim=1))


@pytest.mark.parametrize(
    "decay, kwargs, expected",
    [
        ("constant", dict(progress=0.9), 3.0),
        ("linear", dict(progress=0.0, fraction=0.5), 3.0),
        ("linear", dict(progress=0.25, fraction=0.5), 1.5),
        ("linear", dict(progress=0.6, fraction=0.5), 0.0),
        ("return", dict(student_return=50.0, teacher_return=100.0), 1.5),  # QDagger: 3 * (1 - 50 / 100)
        ("return", dict(student_return=120.0, teacher_return=100.0), 0.0),  # the student does better
        ("return", dict(student_return=-300.0, teacher_return=-200.0), 1.5),  # negative returns: the shortfall, 100 / 200
        ("return", dict(student_return=-900.0, teacher_return=-200.0), 3.0),  # capped at lambda_0
        ("return", dict(student_return=None, teacher_return=-200.0), 3.0),  # not known yet
    ],
)
def test_the_distillation_weight_on_fixed_numbers(decay, kwargs, expected):
    assert distill_weight(3.0, decay, **kwargs) == pytest.approx(expected)


def test_anchor_loss_vanishes_at_the_anchors_and_pulls_toward_them():
    anchors = [th.ones(3), th.zeros(2, 2)]
    params = [a.clone().requires_grad_(True) for a in anchors]
    assert anchor_loss(params, anchors).item() == 0.0
    with th.no_grad():
        params[0] += 2.0
    loss = anchor_loss(params, anchors)
    assert loss.item() == pytest.approx(12.0)
    loss.backward()
    assert th.equal(params[0].grad, th.full((3,), 4.0))  # 2 (theta - theta_0): back toward the anchor


def online(model):
    return model.policy.q_net if hasattr(model.policy, "q_net") else model.policy.quantile_net


def weights(model):
    return {k: v.clone() for k, v in online(model).state_dict().items()}


def distance(model, reference):
    return sum((v - reference[k]).pow(2).sum().item() for k, v in online(model).state_dict().items())


@pytest.mark.parametrize("algo", [DQN, QRDQN])
def test_without_terms_no_teacher_and_training_is_sb3s(algo, cartpole_zip, tmp_path):
    source = make_model(algo, "CartPole-v1", seed=1, **MLP_KWARGS)
    source.save(tmp_path / "source.zip")
    model = load_and_adapt(tmp_path / "source.zip", "CartPole-v1", transfer="all", seed=3, verbose=0, **FAST)
    assert model.teacher is None
    ours = model.learn(80)
    # SB3's own train() on the same model and data: the same weights.
    twin = load_and_adapt(tmp_path / "source.zip", "CartPole-v1", transfer="all", seed=3, verbose=0, **FAST)
    twin.train = lambda gradient_steps, batch_size=100: algo.train(twin, gradient_steps, batch_size)
    twin.learn(80)
    assert all(th.equal(v, weights(twin)[k]) for k, v in weights(ours).items())


@pytest.mark.parametrize("algo", [DQN, QRDQN])
def test_anchoring_keeps_the_weights_near_the_transplanted_ones(algo, tmp_path):
    make_model(algo, "CartPole-v1", seed=1, **MLP_KWARGS).save(tmp_path / "source.zip")
    finals = {}
    for coef in (0.0, 100.0):
        model = load_and_adapt(
            tmp_path / "source.zip", "CartPole-v1", transfer="all", seed=0, verbose=0, anchor_coef=coef,
            learning_rate=0.01, **FAST,
        )  # fmt: skip
        start = weights(model)
        model.learn(200)
        finals[coef] = distance(model, start)
    assert finals[100.0] < finals[0.0] / 10


@pytest.mark.parametrize("algo", [TransferDQN, TransferQRDQN])
def test_distillation_logs_its_terms_and_keeps_the_teachers_actions(algo, cartpole_zip, tmp_path):
    model = load_and_adapt(
        cartpole_zip, "Acrobot-v1", algo, action_map={0: 0, 2: 1}, seed=0, verbose=0,
        distill_coef=1.0, distill_decay="constant", anchor_coef=0.01, **FAST,
    )  # fmt: skip
    assert model.distill_actions == [0, 2]  # action 1 is new: not distilled
    model.set_logger(configure(str(tmp_path), ["csv"]))
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    model.learn(100)
    model.logger.dump(model.num_timesteps)  # what the last training phase recorded
    log = np.genfromtxt(tmp_path / "progress.csv", delimiter=",", names=True)
    assert {"transferlambda", "transferdistill_loss", "transferanchor_loss"} <= set(log.dtype.names)
    assert np.all(log["transferlambda"][~np.isnan(log["transferlambda"])] == 1.0)
    assert all(th.equal(v, teacher[k]) for k, v in model.teacher.state_dict().items())  # the teacher stays frozen


def test_distillation_pulls_the_student_toward_the_teacher(cartpole_zip):
    disagreement = {}
    for coef in (0.0, 10.0):
        model = load_and_adapt(
            cartpole_zip, "CartPoleWeakMotor-v1", transfer="all", seed=0, verbose=0, distill_coef=coef,
            distill_decay="constant", learning_rate=0.01, policy_kwargs=dict(lr_scale={"*": 1.0}), **FAST,
        )  # fmt: skip
        teacher = model.teacher if coef else copy.deepcopy(model.policy.q_net)
        model.learn(400)
        states = th.as_tensor(model.replay_buffer.observations[: model.replay_buffer.pos, 0])
        with th.no_grad():
            disagreement[coef] = distill_loss(model.policy.q_net(states), teacher(states)).item()
    assert disagreement[10.0] < disagreement[0.0] / 2


def test_a_model_with_a_teacher_saves_and_loads_it(cartpole_zip, tmp_path):
    model = load_and_adapt(cartpole_zip, "CartPole-v1", transfer="all", verbose=0, distill_coef=1.0, **FAST)
    model.learn(50)
    model.save(tmp_path / "distilled.zip")
    loaded = TransferDQN.load(tmp_path / "distilled.zip", device="cpu")
    assert all(th.equal(v, model.teacher.state_dict()[k]) for k, v in loaded.teacher.state_dict().items())
    assert loaded.distill_actions == [0, 1] and loaded.distill_coef == 1.0
    loaded.set_env(model.get_env())
    loaded.learn(20, reset_num_timesteps=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(distill_coef=1.0), "needs the pretrained head"),
        (dict(distill_coef=-1.0), "distill_coef=-1.0: give a number >= 0"),
        (dict(distill_coef=1.0, distill_decay="cosine"), "distill_decay='cosine'"),
        (dict(distill_coef=1.0, distill_temperature=0.0), "distill_temperature"),
    ],
)
def test_bad_transfer_terms_are_named(cartpole_zip, kwargs, match):
    with pytest.raises(TransferConfigError, match=match):
        load_and_adapt(cartpole_zip, "Acrobot-v1", transfer="trunk", verbose=0, **kwargs, **FAST)


def test_terms_need_a_source():
    with pytest.raises(TransferConfigError, match="need a pretrained source"):
        TransferDQN("MlpPolicy", "CartPole-v1", anchor_coef=1.0, verbose=0, **FAST)
