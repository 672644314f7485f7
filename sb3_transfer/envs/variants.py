"""Target-task variants of classic tasks: same observation and action spaces, other dynamics."""

from __future__ import annotations

from typing import Any

from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


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
