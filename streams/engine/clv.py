"""The fitted customer models the features read: BG/NBD (or modified BG/NBD) and Gamma-Gamma."""

from __future__ import annotations

from streams.engine.bgnbd import (
    CDNOW,
    expected_purchases,
    expected_purchases_modified,
    p_alive,
    p_alive_modified,
)
from streams.engine.gammagamma import CDNOW_SPEND, expected_spend

YEAR_WEEKS = 365 / 7
DISCOUNT_STEPS = 12  # clv_365d with a discount rate: monthly steps, as lifetimes does


class CustomerModels:
    """Parameters in weeks (`bgnbd`: r, alpha, a, b; `spend`: p, q, v), the BG/NBD variant and
    the yearly discount rate of clv_365d (0: undiscounted). The defaults are the published
    CDNOW fits."""

    __slots__ = ("bgnbd", "discount_rate", "modified", "spend")

    def __init__(
        self,
        bgnbd: tuple[float, float, float, float] = CDNOW,
        spend: tuple[float, float, float] = CDNOW_SPEND,
        modified: bool = False,
        discount_rate: float = 0.0,
    ) -> None:
        self.bgnbd = bgnbd
        self.spend = spend
        self.modified = modified
        self.discount_rate = discount_rate

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CustomerModels) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return f"CustomerModels{self.key()!r}"

    def key(self) -> tuple[object, ...]:
        return (self.bgnbd, self.spend, self.modified, self.discount_rate)

    def p_alive(self, x: int, t_x: float, T: float) -> float:
        if self.modified:
            return p_alive_modified(x, t_x, T, self.bgnbd)
        return p_alive(x, t_x, T, self.bgnbd)

    def expected_orders(self, t: float, x: int, t_x: float, T: float) -> float:
        """Expected order days in the next `t` weeks."""
        if self.modified:
            return expected_purchases_modified(t, x, t_x, T, self.bgnbd)
        return expected_purchases(t, x, t_x, T, self.bgnbd)

    def expected_spend(self, x: int, mean: float) -> float:
        return expected_spend(x, mean, self.spend)

    def clv(self, x: int, t_x: float, T: float, mean: float) -> float:
        """Expected revenue over the next 365 days: expected orders x expected spend, each month
        discounted at `discount_rate` a year when it is set."""
        spend = self.expected_spend(x, mean)
        rate = self.discount_rate
        if rate <= 0.0:
            return self.expected_orders(YEAR_WEEKS, x, t_x, T) * spend
        total = 0.0
        before = 0.0
        for i in range(1, DISCOUNT_STEPS + 1):
            upto = self.expected_orders(YEAR_WEEKS * i / DISCOUNT_STEPS, x, t_x, T)
            total += (upto - before) / (1.0 + rate) ** (i / DISCOUNT_STEPS)
            before = upto
        return total * spend
