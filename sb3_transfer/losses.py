"""Training-time transfer terms: distillation toward the source and anchoring to the transplanted weights.

- Distillation (kickstarting, Schmitt et al. 2018; QDagger, Agarwal et al. 2022): on the states the student trains on,
  ``KL(softmax(Q_teacher / tau) || softmax(Q_student / tau))`` over the actions the teacher knows, weighted by a
  coefficient that decays (:func:`distill_weight`).
- Anchoring (L2-SP, Li et al. 2018): ``sum ||theta - theta_0||^2`` over the transplanted parameters, pulling them
  toward their pretrained values instead of toward zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch as th
import torch.nn.functional as F

#: Decay rules of the distillation weight.
DECAYS = ("constant", "linear", "return")


def distill_loss(student_q: th.Tensor, teacher_q: th.Tensor, temperature: float = 1.0) -> th.Tensor:
    """
    ``KL(softmax(teacher_q / tau) || softmax(student_q / tau))``, averaged over the batch: zero when the student's
    values equal the teacher's (or differ by a constant per state), and its gradient moves the student's action
    distribution toward the teacher's.

    :param student_q: The student's action values, ``(batch, actions)``.
    :param teacher_q: The teacher's, same shape (no gradient flows into them).
    :param temperature: ``tau``: small values match the teacher's greedy action, large ones its whole ordering.
    """
    student = F.log_softmax(student_q / temperature, dim=1)
    teacher = F.log_softmax(teacher_q.detach() / temperature, dim=1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean")


def anchor_loss(params: Sequence[th.Tensor], anchors: Sequence[th.Tensor]) -> th.Tensor:
    """
    ``sum ||theta - theta_0||^2`` over the given parameters: zero at the anchors, its gradient ``2 (theta - theta_0)``
    pulls each parameter back toward its anchor.

    :param params: The parameters being trained.
    :param anchors: Their anchors (the transplanted values), same shapes.
    """
    total = th.zeros((), device=params[0].device if params else "cpu")
    for param, anchor in zip(params, anchors, strict=True):
        total = total + (param - anchor.detach()).pow(2).sum()
    return total


def distill_weight(
    coef: float,
    decay: str,
    progress: float = 0.0,
    fraction: float = 1.0,
    student_return: float | None = None,
    teacher_return: float | None = None,
) -> float:
    """
    The distillation weight ``lambda_t`` at a point of training.

    - ``"constant"``: ``coef``.
    - ``"linear"``: ``coef * max(1 - progress / fraction, 0)``: from ``coef`` to 0 over the first ``fraction`` of
      training.
    - ``"return"`` (QDagger's ``lambda_0 * max(1 - G_student / G_teacher, 0)``, for returns of any sign):
      ``coef * clip((G_teacher - G_student) / |G_teacher|, 0, 1)``: the student's shortfall relative to the teacher's
      return; 0 once the student does as well. ``coef`` while either return is unknown.

    :param coef: ``lambda_0``.
    :param decay: One of :data:`DECAYS`.
    :param progress: Fraction of training done (0 to 1).
    :param fraction: For ``"linear"``: the fraction of training over which the weight falls to 0.
    :param student_return: For ``"return"``: the student's recent mean episode return.
    :param teacher_return: For ``"return"``: the teacher's.
    """
    if decay == "constant":
        return coef
    if decay == "linear":
        return coef * max(1.0 - progress / fraction, 0.0)
    if decay == "return":
        if student_return is None or teacher_return is None:
            return coef
        shortfall = (teacher_return - student_return) / max(abs(teacher_return), 1e-8)
        return coef * min(max(shortfall, 0.0), 1.0)
    raise ValueError(f"decay={decay!r}: choose one of {', '.join(DECAYS)}.")
