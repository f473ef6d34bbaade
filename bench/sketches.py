"""Population quantile sketches for RFM: ours against the well-kept libraries.

    python bench/sketches.py [--n 200000]

RFM needs, per order event: take the consumer's old value out, put the new one in, and score a
value against the population. KLL (Apache DataSketches) and DDSketch cannot take a value out,
so with them a consumer who orders five times is counted five times; our log-bucket histogram
takes signed updates (exact at its bucket resolution) and erasure can remove a consumer. The
baseline is the KLL sketch doing only the inserts it can do.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datasketches import kll_doubles_sketch
from ddsketch import DDSketch

from streams.engine.population import money_bucket
from streams.engine.sketches import Histogram


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200_000, help="order events")
    a = ap.parse_args()
    rng = random.Random(1)
    consumers = [0.0] * (a.n // 5)
    updates = []
    for _ in range(a.n):
        i = rng.randrange(len(consumers))
        old = consumers[i]
        consumers[i] = old + rng.lognormvariate(4, 1)
        updates.append((old, consumers[i]))

    kll = kll_doubles_sketch(200)
    t = time.perf_counter()
    for _, new in updates:
        kll.update(new)
        kll.get_rank(new)
    kll_t = time.perf_counter() - t

    dd = DDSketch(0.01)
    t = time.perf_counter()
    for _, new in updates:
        dd.add(new)
        dd.get_quantile_value(0.8)
    dd_t = time.perf_counter() - t

    hist = Histogram()
    t = time.perf_counter()
    for old, new in updates:
        if old:
            hist.add(money_bucket(old), -1)
        hist.add(money_bucket(new))
        hist.score(money_bucket(new))
    ours_t = time.perf_counter() - t

    # accuracy of the 80th percentile of the *current* population
    truth = sorted(v for v in consumers if v)
    p80 = truth[int(0.8 * len(truth))]
    kll_p80 = kll.get_quantile(0.8)
    dd_p80 = dd.get_quantile_value(0.8) or 0.0
    ours_p80 = 1.02 ** (hist.cuts()[3] + 0.5)
    n = a.n
    print(f"{n} order events over {len(truth)} consumers; true p80 of revenue {p80:,.0f}")
    for name, secs, est in (
        ("kll (insert only)", kll_t, kll_p80),
        ("ddsketch (insert only)", dd_t, dd_p80),
        ("ours (remove+insert)", ours_t, ours_p80),
    ):
        print(f"{name:24s} {n / secs:>10,.0f} updates+queries/s  ({kll_t / secs:.2f}x kll)  "
              f"p80 {est:>8,.0f}  error {abs(est - p80) / p80:6.1%}")


if __name__ == "__main__":
    main()
