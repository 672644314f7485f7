"""Target-task variants of classic tasks: same observation and action spaces, other dynamics."""

from __future__ import annotations

from typing import Any

from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv


class CartPoleVariant(CartPoleEnv):
    """
    CartPole with other physical parameters.

    CartPole computes ``total_mass`` and ``polemass_length`` once in ``__init__``; setting ``length`` or a mass
    afterwards would leave them stale, so they are recomputed here.

    :param length: Half the pole's length (CartPole's own ``length``; default 0.5, a pole 1.0 long).
    :param force_mag: Force of a push (default 10.0).
    :param masspole: Pole mass (default 0.1).
    :param masscart: Cart mass (default 1.0).
    :param kwargs: CartPole's own arguments (``render_mode``, ``sutton_barto_reward``).
    """

    def __init__(
        self, length: float = 0.5, force_mag: float = 10.0, masspole: float = 0.1, masscart: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.length, self.force_mag, self.masspole, self.masscart = length, force_mag, masspole, masscart
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length


class AcrobotVariant(AcrobotEnv):
    """
    Acrobot with another second link. Acrobot's physical constants are class attributes; these are set per
    instance. In Acrobot's dynamics a link's length acts through the position of its centre of mass, so a longer link
    moves ``link_com_pos_2`` too.

    :param link_mass_2: Mass of the second link (default 1.0).
    :param link_length_2: Length of the second link (default 1.0; drawn, and its centre of mass sits at half of it).
    :param kwargs: Acrobot's own arguments (``render_mode``).
    """

    def __init__(self, link_mass_2: float = 1.0, link_length_2: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.LINK_MASS_2 = link_mass_2
        self.LINK_LENGTH_2 = link_length_2
        self.LINK_COM_POS_2 = link_length_2 / 2


class PendulumVariant(PendulumEnv):
    """
    Pendulum with another mass and length. Pendulum sets ``m`` and ``l`` in ``__init__`` and reads them at every step
    (only its gravity ``g`` is an argument); nothing is derived from them, and its spaces do not depend on them.

    In Pendulum's dynamics, ``thdot' = 3 g / (2 l) sin(th) + 3 / (m l^2) u``: a torque turns a heavier or longer
    pendulum less, a longer one also falls more slowly, and the mass alone does not change how it falls. With
    ``m=1.5, l=1.2`` (``PendulumHeavy-v1``) the largest torque (2.0) gives 46% of the source's angular acceleration,
    and holds the pendulum still up to 13 degrees from the top instead of 24: more swings are needed to bring it up,
    and a policy timed on the source's swings misses. It stays solvable in Pendulum's 200 steps: a hand-written
    energy-pumping swing-up brings it up from hanging at rest in 124 steps (68 in the source).

    :param m: Mass of the pendulum (default 1.0).
    :param l: Length of the pendulum (default 1.0).
    :param kwargs: Pendulum's own arguments (``render_mode``, ``g``).
    """

    def __init__(self, m: float = 1.0, l: float = 1.0, **kwargs: Any) -> None:  # noqa: E741  (Pendulum's own name)
        super().__init__(**kwargs)
        self.m, self.l = m, l


class MountainCarContinuousVariant(Continuous_MountainCarEnv):
    """
    Continuous MountainCar with another engine. The hill's pull (``0.0025 cos(3 x)``) is a constant inside the step,
    while the engine's ``power`` (default 0.0015) is an attribute read at every step: a weaker engine makes the hill
    steeper for the car.

    With ``power=0.0010`` (``MountainCarContinuousSteep-v0``) an open-loop policy tuned on the source (full reverse
    for 12 steps, the fewest that reach the goal from 20 starts, then full forward) reaches it from none; a policy that
    pushes in the direction of its velocity still reaches it, in 113 to 123 steps instead of 105 to 109 (20 seeds),
    well within the 999 of an episode. At 0.0008 and below, that policy needs a second swing on some starts.

    :param power: Force of the engine at full action (default 0.0015).
    :param kwargs: Continuous MountainCar's own arguments (``render_mode``, ``goal_velocity``).
    """

    def __init__(self, power: float = 0.0015, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.power = power
