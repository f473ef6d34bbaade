"""How fast can Faust hand input records to an agent? (Why the worker reads its inputs itself.)

Same events on the three input topics of the embedded broker (or --broker), consumed and only
counted by:

  (1) a confluent-kafka Consumer, `consume(10000)` (what `streams.agents` uses for the inputs)
  (2) a Faust agent (the worker's app settings, raw serializers) batching with
      `stream.take(5000, within=0.05)`
  (3) a Faust agent iterating `stream.events()`, one at a time

Figures: events/s from the first record to the last (group join excluded) and CPU us per event
over the same window (all threads of the consuming process; steadier than events/s on a shared
machine). `take()` batches only what the agent sees: Faust's consumer still dispatches every
record through its channels one at a time, so (2) costs about what (3) costs.

    python bench/faust_intake.py [--events 200000] [--runs 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from live import PARTITIONS, events, load  # noqa: E402

from connectors.broker import EmbeddedBroker  # noqa: E402
from micromarketing.processes import child  # noqa: E402
from streams.contract import INPUT_TOPICS  # noqa: E402

FAUST_CHILD = """
import json, os, sys, time
from pathlib import Path
mode, prefix, bootstrap, n, result, app_id, datadir = sys.argv[1:8]
n = int(n)
sys.argv = [sys.argv[0], "worker", "-l", "warn"]
from streams.app import Settings, create_app

app = create_app(Settings(rules_path=Path(os.devnull), bootstrap=bootstrap, app_id=app_id,
                          data_dir=Path(datadir)))
src = app.topic(*[prefix + t for t in ("clickstream", "purchases", "identities")],
                key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
st = {"count": 0}

def seen(k):
    if "t0" not in st:
        st.update(t0=time.monotonic(), c0=time.process_time(), first=k)
    st["count"] += k
    if st["count"] >= n:
        m = n - st["first"]
        wall, cpu = time.monotonic() - st["t0"], time.process_time() - st["c0"]
        Path(result).write_text(json.dumps({"eps": m / wall, "cpu_us": cpu / m * 1e6}))
        os._exit(0)

@app.agent(src)
async def count(stream):
    if mode == "take":
        async for batch in stream.take(5000, within=0.05):
            seen(len(batch))
    else:
        async for _ in stream.events():
            seen(1)

app.main()
"""


def confluent(bootstrap: str, prefix: str, n: int) -> dict[str, float]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"intake-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(prefix + t, p, 0) for t in INPUT_TOPICS for p in range(PARTITIONS)])
    seen = first = 0
    t0 = c0 = 0.0
    try:
        while seen < n:
            msgs = c.consume(10000, timeout=1.0)
            k = sum(1 for m in msgs if m.error() is None)
            if k and not seen:
                t0, c0, first = time.monotonic(), time.process_time(), k
            seen += k
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
    finally:
        c.close()
    m = n - first
    return {"eps": m / wall, "cpu_us": cpu / m * 1e6}


def faust(mode: str, bootstrap: str, prefix: str, n: int, tmp: Path) -> dict[str, float]:
    app_id = f"intake-{mode}-{uuid.uuid4().hex[:6]}"
    script = tmp / "faust_child.py"
    script.write_text(FAUST_CHILD)
    result = tmp / f"{app_id}.json"
    cmd = [sys.executable, str(script), mode, prefix, bootstrap, str(n), str(result), app_id,
           str(tmp / app_id)]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with child(cmd, tmp / f"{app_id}.log", env) as proc:
        end = time.monotonic() + 900
        while not result.exists():
            if proc.poll() is not None and not result.exists():
                raise SystemExit(f"Faust child failed, see {tmp / (app_id + '.log')}")
            if time.monotonic() > end:
                raise SystemExit("Faust child did not finish in 900 s")
            time.sleep(0.2)
    data: dict[str, float] = json.loads(result.read_text())
    return data


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--broker", default=None)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    print(f"generating {a.events} synthetic events...", flush=True)
    evs = events(a.events, seed=5)
    stages: list[tuple[str, str]] = [
        ("1", "confluent consume(10000)"),
        ("2", "Faust agent, take(5000)"),
        ("3", "Faust agent, events()"),
    ]
    with contextlib.ExitStack() as stack:
        bootstrap = (
            a.broker or stack.enter_context(EmbeddedBroker(log_file=tmp / "tansu.log")).bootstrap
        )
        for run in range(a.runs):
            base: dict[str, Any] | None = None
            for key, label in stages:
                prefix = f"intake{key}{uuid.uuid4().hex[:4]}."
                load(bootstrap, prefix, evs)
                if key == "1":
                    r = confluent(bootstrap, prefix, a.events)
                else:
                    r = faust("take" if key == "2" else "events", bootstrap, prefix, a.events, tmp)
                base = base or r
                print(
                    f"run {run} ({key}) {label:26s} {r['eps']:>9,.0f} events/s "
                    f"{r['cpu_us']:7.1f} us CPU/event   "
                    f"x{r['eps'] / base['eps']:.3f} of (1)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
