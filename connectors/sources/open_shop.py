"""The live demo's shop: shoppers keep arriving (a steady event rate) and answer delivered offers.

`synthetic.ShopSimulator` has a fixed set of shoppers who all lapse in the end, so its event rate
falls by half every few simulated weeks (fine for a file, not for a demo that runs for hours).
Here shoppers arrive at a steady rate and each visit is the last with probability `LAPSE`
(a geometric lifetime). The first shoppers' visit gaps are drawn length-biased, as in a shop
that has been open for ever, so the expected event rate is the same from the first minute on.

The loop is closed by `deliver()`: a delivered (non-holdout) trigger of campaign C persuades the
shopper with probability `uplift[C]` (0 for a campaign not named) to come back and buy within
the trigger's attribution window. Shoppers who would have bought anyway do so either way, so
the expected lift in conversion rate is `uplift[C] * (1 - the held-out shoppers' conversion rate)`.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors.sources.synthetic import DAY, DEFAULT_START, Persona, ShopSimulator

#: Probability that a visit is the shopper's last (a mean of 17 visits, as ShopSimulator's mix).
LAPSE = 1 / 17
GAP_DAYS = (1.0, 12.0)  # a shopper's mean days between visits, uniform over new shoppers
#: The engine's default settings.attribution_window, for triggers that do not carry theirs.
DEFAULT_WINDOW = 7 * DAY

_ARRIVAL = -1  # heap entry that is the next new shopper, not a visit


def iso_seconds(value: Any) -> float | None:
    """Epoch seconds of an ISO-8601 time (None if it is not one)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class OpenShop:
    """A synthetic bike shop with a steady population of about `shoppers` active shoppers."""

    def __init__(
        self,
        shoppers: int = 250,
        seed: int = 7,
        start: float = DEFAULT_START,
        uplift: Mapping[str, float] | None = None,
    ) -> None:
        self.sim = ShopSimulator(0, seed=seed, start=start)
        self.rng = self.sim.rng
        self.offer_rng = random.Random(seed * 7919 + 1)  # treatment draws never shift the shop
        self.uplift = dict(uplift or {})
        lo, hi = GAP_DAYS
        #: new shoppers per simulated second, so that arrivals balance lapses at `shoppers`
        # (a shopper stays for 1/LAPSE - 1 gaps on average)
        self.arrival_rate = shoppers / ((1 / LAPSE - 1) * (lo + hi) / 2) / DAY
        self.people: list[Persona] = []
        self._by_id: dict[str, Persona] = {}
        #: (time, seq, persona index or _ARRIVAL, the visit ends in an order)
        self._visits: list[tuple[float, int, int, bool]] = []
        self._pending: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = 0
        self.stats: Counter[str] = Counter()
        for _ in range(shoppers):
            # length-biased gap (density ~ gap): the mix of a shop open for ever
            gap = (lo * lo + self.rng.random() * (hi * hi - lo * lo)) ** 0.5
            p = self._new_persona(gap)
            self._push(start + self.rng.expovariate(1 / gap) * DAY, p.idx)
        self._push(start + self.rng.expovariate(self.arrival_rate), _ARRIVAL)
        self.clock = start

    def _new_persona(self, gap_days: float) -> Persona:
        p = self.sim._persona(len(self.people))
        p.visit_gap_days = gap_days
        self.people.append(p)
        self._by_id[p.anonymous_id] = p
        self._by_id[p.user_id] = p
        return p

    def _push(self, t: float, idx: int, buy: bool = False) -> None:
        self._seq += 1
        heapq.heappush(self._visits, (t, self._seq, idx, buy))

    @property
    def active(self) -> int:
        """Shoppers with a visit ahead."""
        return sum(1 for _, _, idx, _ in self._visits if idx != _ARRIVAL)

    def persona_of(self, consumer_id: str) -> Persona | None:
        """The shopper behind an anonymous or user id."""
        return self._by_id.get(consumer_id)

    def until(self, t: float) -> list[dict[str, Any]]:
        """The events with a time up to `t`, in time order (call with increasing `t`)."""
        rng = self.rng
        visits = self._visits
        while visits and visits[0][0] <= t:
            at, _, idx, buy = heapq.heappop(visits)
            if idx == _ARRIVAL:
                lo, hi = GAP_DAYS
                p = self._new_persona(rng.uniform(lo, hi))
                self._push(at, p.idx)
                self._push(at + rng.expovariate(self.arrival_rate), _ARRIVAL)
                self.stats["arrived"] += 1
                continue
            p = self.people[idx]
            for et, ev in self.sim.session(p, at, buy=buy):
                self._seq += 1
                heapq.heappush(self._pending, (et, self._seq, ev))
            if buy:
                continue  # an extra visit: the shopper's own rhythm goes on as before
            if rng.random() < LAPSE:
                self.stats["lapsed"] += 1
            else:
                gap = rng.expovariate(1 / p.visit_gap_days) * DAY
                self._push(at + max(gap, 3600.0), idx)
        out: list[dict[str, Any]] = []
        pending = self._pending
        while pending and pending[0][0] <= t:
            out.append(heapq.heappop(pending)[2])
        self.clock = max(self.clock, t)
        return out

    def deliver(self, trigger: Mapping[str, Any]) -> bool:
        """A trigger as the engine wrote it reaches the shopper (unless held out): persuaded
        with the campaign's uplift, they come back and buy within the attribution window
        (never before the shop's clock). True when a purchase was planned."""
        if trigger.get("holdout"):
            return False
        p = self._by_id.get(str(trigger.get("consumer_id")))
        fired = iso_seconds(trigger.get("fired_at"))
        u = self.uplift.get(str(trigger.get("campaign")), 0.0)
        if p is None or fired is None or u <= 0.0:
            return False
        self.stats["delivered"] += 1
        if self.offer_rng.random() >= u:
            return False
        until = iso_seconds(trigger.get("attribution_until")) or fired + DEFAULT_WINDOW
        lo = max(fired, self.clock) + 60.0
        # the whole visit (minutes) must end inside the window: start in its first 80%
        hi = lo + 0.8 * (until - lo)
        if hi <= lo:
            self.stats["missed"] += 1  # the offer arrived after its window closed
            return False
        self._push(self.offer_rng.uniform(lo, hi), p.idx, buy=True)
        self.stats["persuaded"] += 1
        return True
