"""The engine of one partition: Engine.process(event) and Engine.advance(time) -> Outputs.

Deterministic and free of I/O: the replay command and the Faust workers are two shells around
it. Consumers live in a `Store` (str -> bytes) behind a write-back cache (`consumers.py`, the
base class); `flush()` writes each dirty key once. Work that concerns a key of another
partition (identity merges, events of an id that was merged away, erasure of aliases) leaves as
a `Forward` for the shell to route.

Time moves trigger timers and segments alike: both wait in one due-time index (timers.py),
kept in the store in due order, and fire in due order when the watermark passes them.
"""

from __future__ import annotations

import hashlib
import reprlib
from typing import Any, Final

import orjson

from streams.engine import attribution
from streams.engine.attribution import WINDOWS
from streams.engine.consumers import META_KEY, Consumers, EngineConfig, entries
from streams.engine.events import (
    IDENTITY_CONFLICT,
    INTERNAL_ERROR,
    INVALID_JSON,
    INVALID_VALUE,
    TIME_OUT_OF_RANGE,
    TOO_DEEP,
    Event,
    EventError,
    iso,
    parse_event,
)
from streams.engine.features import apply_context, apply_track, merge_states
from streams.engine.outputs import (
    EventForward,
    Forget,
    ForgetAlias,
    Forward,
    MergeIn,
    MergeOut,
    Outputs,
)
from streams.engine.registry import TRACK_CHANGES
from streams.engine.rules import RuleSet, Trigger
from streams.engine.segments import KIND_BITS, SegmentPlan, evaluate, mask_of, ordered
from streams.engine.state import MAX_SEEN_IDS, ConsumerState
from streams.engine.store import Store
from streams.engine.timeplan import INF
from streams.engine.timers import (
    ENTRY_VALUE,
    INDEX_END,
    INDEX_PREFIX,
    MOVED_PREFIX,
    RECHECK,
    TTL,
    Entry,
    entry_key,
)
from streams.engine.triggers import (
    arm,
    choose_offer,
    holdout_reason,
    record_fired,
    suppression_reason,
    trigger_record,
)
from streams.engine.undo import Undo
from streams.engine.view import View

ORDER_EVENTS = frozenset({"Order Completed", "Order Refunded", "Order Cancelled"})
# the kinds of change (registry.KINDS) each track event causes, as masks
TRACK_MASKS: dict[str, int] = {name: mask_of(kinds) for name, kinds in TRACK_CHANGES.items()}
_EVENTS: Final = KIND_BITS["events"]
_CONSENT: Final = KIND_BITS["consent"]
_LOCATION: Final = KIND_BITS["location"]
_PROFILE: Final = mask_of(("traits", "consent", "location"))
_TIME = 0  # no feature changed: only segments reading time, the population or in_segment()
MAX_DEAD_LETTER_RAW = 16_384  # characters of the input kept in a dead letter
CLOSE_PAGE = 10_000
#: ids merged into one consumer at most (Segment's identity graph: 100 merges per profile); a
#: merge beyond is refused (identity_conflict)
MAX_MERGES = 100
#: alias links a forward follows at most: merges never chain (an id that merged away, or holds
#: a user id, never merges again), so this only cuts a cycle a race or an older release made
MAX_HOPS = 8


# copying a fresh hash object costs less than making one (parsing the keyword arguments)
_SEEN_HASH = hashlib.blake2b(digest_size=8)


def _seen_key(message_id: str) -> str:
    h = _SEEN_HASH.copy()
    h.update(message_id.encode())
    return h.hexdigest()


class Engine(Consumers):
    """The micromarketing engine for the consumers of one partition."""

    def __init__(
        self,
        rules: RuleSet,
        store: Store,
        partition: int = 0,
        config: EngineConfig | None = None,
    ) -> None:
        super().__init__(store, partition, config)
        #: an order event's consumer is out of the population (between remove and add)
        self._population_out = False
        #: the population's cut caches before the order event being applied (see _restore)
        self._population_mark: list[tuple[list[int], int]] | None = None
        self._undo = Undo(ConsumerState("", 0.0), 0, False)  # saved into before each event
        self.set_rules(rules)
        # no index: a store of the previous release, or restored without its index
        if self._meta_dirty and (
            store.scan("c/", "c0", 1) or store.scan(INDEX_PREFIX, INDEX_END, 1)
        ):
            self._rebuild_index()

    def _rebuild_index(self) -> None:
        """A store with no index that matches its states: drop the index entries it holds,
        decode every consumer once, index its timers (and schedule the re-checks of the rules'
        time-driven segments), write the index."""
        store = self.store
        plan = self._plan
        view: View | None = None
        # every timer and re-check due by `fired` has fired: a stored re-check due by then is
        # one that fired and changed nothing (its move was kept in an `r/` key, not here)
        fired = max(self.watermark, self.fired_until)
        rows = list(store.items())
        for key, _ in rows:
            if key.startswith(INDEX_PREFIX) or key.startswith(MOVED_PREFIX):
                store.delete(key)
        self._has_moved.clear()
        for key, value in rows:
            if not key.startswith("c/"):
                continue
            try:
                state = ConsumerState.from_bytes(value)
            except Exception:  # (a record no release wrote): counted, never fatal; an event of
                # that consumer becomes an internal_error dead letter, as it always did
                self._stats["unreadable_states"] += 1
                continue
            if not state.recheck or state.recheck <= fired:
                due = INF
                if plan.timed:
                    if view is None:
                        view = View(state, fired, self.population, self._models, set())
                    else:
                        view.reset(state, fired, set())
                    due = plan.next_recheck(view)
                recheck = due if due < INF else 0.0
                if recheck != state.recheck:
                    state.recheck = recheck
                    store.put(MOVED_PREFIX + state.id, repr(recheck).encode())
            for due, name in entries(state):
                self.timers.push(due, state.id, name)
                if self._keeps_index:
                    store.put(entry_key(due, state.id, name), ENTRY_VALUE)
        store.put(META_KEY, self._meta())
        self._meta_dirty = False

    # rules
    def set_rules(self, rules: RuleSet) -> None:
        """Swap the rules (hot reload). Timers of triggers no longer defined are dropped as they
        come due; memberships of segments no longer defined are exited on the next evaluation."""
        self.rules = rules
        self._plan = SegmentPlan.of(rules)
        on: dict[str, list[Trigger]] = {}
        unless: dict[str, list[Trigger]] = {}
        for trig in rules.triggers:
            for name in trig.on:
                on.setdefault(name, []).append(trig)
            for name in trig.unless:
                unless.setdefault(name, []).append(trig)
        self._on, self._unless = on, unless
        self._by_name = {t.name: t for t in rules.triggers}
        s = rules.settings
        self._lateness = s.allowed_lateness
        self._skew = s.max_clock_skew
        self._window = s.dedupe_window
        self._half_life = s.affinity_half_life
        self._models = s.models
        self._ttl = s.profile_ttl
        self._view: View | None = None  # made by the next evaluation, with these settings

    # input
    def process(
        self, raw: bytes | str | dict[str, Any], source: str = "", offset: str | None = None
    ) -> Outputs:
        """Apply one input event. Bad input becomes a dead letter; this never raises on it."""
        out = Outputs()
        try:
            obj = raw if isinstance(raw, dict) else orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._dead_letter(out, raw, INVALID_JSON, f"invalid JSON: {exc}", source, offset)
            return out
        try:
            ev = parse_event(obj)
        except EventError as exc:
            self._dead_letter(out, raw, exc.code, exc.message, source, offset)
            return out
        return self.apply_event(ev, obj, out, source, offset)

    def apply_event(
        self, ev: Event, obj: dict[str, Any], out: Outputs, source: str = "",
        offset: str | None = None,
    ) -> Outputs:
        """Apply one parsed input event (`obj` its JSON object) with `out` so far: `process`
        without the parsing, for a shell that reads the event's time first. Returns `out`
        (when the event failed: without its outputs, its consumer's state as before it)."""
        # a Counter increment per event costs more than an int attribute's
        if self._events or "events" in self._stats:
            self._events += 1
        else:
            self._stats["events"] = 1  # the first: the key takes its place in the Counter now
        try:
            self._route(ev, obj, out)
        except EventError as exc:  # refused by _apply before it changed anything
            self._dead_letter(out, obj, exc.code, exc.message, source, offset)
        except Exception as err:  # the last line of defence: one event never stops a partition
            # (another name than the clause above's: mypyc gives one name one type)
            self._dead_letter(out, obj, INTERNAL_ERROR, f"{type(err).__name__}: {err}",
                              source, offset)
        return out

    def _dead_letter(
        self, out: Outputs, raw: Any, reason: str, message: str, source: str,
        offset: str | None,
    ) -> None:
        if isinstance(raw, bytes):
            text = raw[: MAX_DEAD_LETTER_RAW * 4].decode("utf-8", "replace")
        elif isinstance(raw, str):
            text = raw
        else:
            try:
                text = orjson.dumps(raw, default=repr).decode()
            except orjson.JSONEncodeError:  # nested too deep to encode
                text = reprlib.repr(raw)
        if len(text) > MAX_DEAD_LETTER_RAW:
            text = text[:MAX_DEAD_LETTER_RAW]
        self._stats["dead_letters"] += 1
        self._stats["dead_letter:" + reason] += 1
        out.dead_letters.append(
            {
                "source": source,
                "offset": offset,
                "raw": text,
                "reason": reason,
                "message": message if len(message) <= 1000 else message[:1000],
                "at": self._iso(self.watermark) if self.watermark else None,
            }
        )

    def _route(
        self, ev: Event, obj: dict[str, Any], out: Outputs, cid: str | None = None, hops: int = 0
    ) -> None:
        cid = cid or ev.consumer_id
        state = self._get(cid)
        if state is None:
            target = self._alias(cid)
            if target is not None:
                if hops >= MAX_HOPS:  # a cycle of alias links: cut it here
                    self._set_alias(cid, None)
                    self._stats["identity_cycles_cut"] += 1
                    raise EventError(
                        f"the ids merged into {cid!r} form a cycle (over {MAX_HOPS} alias links)",
                        IDENTITY_CONFLICT,
                    )
                self._stats["forwarded"] += 1
                try:  # (it crosses Kafka when another worker owns the target)
                    orjson.dumps(obj)
                except orjson.JSONEncodeError as exc:  # parse_event bounds only what is read
                    raise EventError(f"the event cannot be forwarded: {exc}", TOO_DEEP) from None
                out.forwards.append(EventForward(target, obj, None, hops + 1))
                return
        self._apply(ev, cid, state, out)

    def _apply(self, ev: Event, cid: str, state: ConsumerState | None, out: Outputs) -> None:
        seen = _seen_key(ev.message_id)
        if state is not None and seen in state.seen:
            self._stats["duplicates"] += 1
            return
        etype = ev.type
        if etype == "identify" or etype == "alias":
            _check_merge(ev, cid, state)
        t = ev.timestamp
        watermark = t - self._lateness
        if watermark > self.watermark:
            if watermark - self.watermark > self._skew and self.watermark > 0.0:
                self._stats["beyond_clock_skew"] += 1
                raise EventError(
                    f"timestamp {iso(t)} is more than max_clock_skew ahead of the clock "
                    f"({iso(self.watermark)})",
                    TIME_OUT_OF_RANGE,
                )
            self.watermark = watermark
            heap = self.timers.heap
            if heap and heap[0].due <= watermark and self._fire_due(watermark, out):
                state = self._get(cid)  # firing may have evicted it from the cache
        track = etype == "track"
        name = (ev.name or "") if track else etype
        # (each looked up once per event: `name` is a key of these, not a constant)
        mask = TRACK_MASKS.get(name, 0) if track else 0
        on = self._on.get(name)
        unless = self._unless.get(name)
        if state is None:
            state = self._create(cid, t)
            undo: Undo | None = None
        else:  # what the event can change, saved (see undo.py)
            edits = mask
            if ev.traits or etype == "identify":
                edits |= _PROFILE
            undo = self._undo
            undo.save(state, edits, on is not None or unless is not None)
        changes, profiles, forwards, conversions = (
            len(out.segment_changes), len(out.profiles), len(out.forwards), len(out.conversions)
        )
        try:
            self._update(ev, cid, state, name, seen, out, mask, on, unless)
        except Exception:
            self._restore(cid, undo, state, seen)
            del out.segment_changes[changes:]  # (the event's own outputs come last)
            del out.profiles[profiles:]
            del out.forwards[forwards:]
            del out.conversions[conversions:]
            raise
        if self._population_mark is not None:
            self._population_mark = None
        self._applied += 1

    def _update(
        self, ev: Event, cid: str, state: ConsumerState, name: str, seen: str, out: Outputs,
        mask: int, on: list[Trigger] | None, unless: list[Trigger] | None,
    ) -> None:
        """The changes of an accepted event to its consumer's state (`name`: the track event's
        name, else its type; `seen`: its dedupe key; `mask`: the changes TRACK_MASKS gives its
        name; `on`, `unless`: the triggers it arms and disarms)."""
        t = ev.timestamp
        etype = ev.type
        self._dirty.add(cid)
        seen_ids = state.seen
        seen_ids[seen] = int(t)
        if len(seen_ids) % 64 == 0:
            self._prune_seen(state, t)
        state.events += 1
        if t > state.last_seen:
            state.last_seen = t
        if ev.user_id is not None and not state.user:
            state.user = True
        if state.ttl_due == 0.0 and self._ttl > 0.0:
            self._arm_ttl(state)
        track = etype == "track"
        new = state.events <= 1  # (a new consumer is evaluated in full, whatever changed)
        changed = _EVENTS
        if track:
            if name in ORDER_EVENTS:
                if state.windows and name == "Order Completed":
                    self._convert(state, ev, out)
                self._population_mark = self.population.cut_caches()
                self.population.remove(state)
                self._population_out = True
                apply_track(state, ev, self._half_life)
                self.population.add(state)
                self._population_out = False
            else:
                apply_track(state, ev, self._half_life)
            changed |= mask
        if ev.traits or etype == "identify":
            changed |= _PROFILE
        country, city, lat, lon = state.country, state.city, state.lat, state.lon
        email_changed, consent_changed = apply_context(state, ev)
        if consent_changed:
            changed |= _CONSENT
        if country != state.country or city != state.city or lat != state.lat or lon != state.lon:
            changed |= _LOCATION
        if email_changed or consent_changed:
            self._profile(out, state, t)
        if unless is not None:
            for trig in unless:
                state.timers.pop(trig.name, None)
        if on is not None:
            for trig in on:
                before = state.timers.get(trig.name)
                if before is None:
                    self.timers.push(arm(state, trig, ev).due, cid, trig.name)
                    continue
                # the heap entry of a re-armed timer stays and is pushed on when it pops (at
                # most one entry per timer instead of one per arming); only an earlier due
                # needs one
                timer = arm(state, trig, ev)
                if timer.due < before.due:
                    self.timers.push(timer.due, cid, trig.name)
        self._segments(state, t, out, None if new else changed)
        if etype == "identify" or etype == "alias":
            source = ev.merge_source
            if source is not None:
                out.forwards.append(MergeOut(source, cid))

    def _restore(self, cid: str, undo: Undo | None, state: ConsumerState, seen: str) -> None:
        """Undo what a failed `_update` did to the consumer's state: exactly as before the
        event (`undo`; None: it was new), with its contribution to the population. Index
        entries the event pushed stay: an entry without its timer or re-check in the state is
        skipped."""
        caches = self._population_mark
        if caches is not None:  # an order event: the counts, then the cut caches, as before
            self._population_mark = None
            population = self.population
            if self._population_out:
                self._population_out = False
            else:
                population.remove(state)
            if undo is not None:
                population.add(undo.restore(seen))
            population.restore_cut_caches(caches)
        elif undo is not None:
            undo.restore(seen)
        if undo is None:
            self._cache[cid] = None

    def _convert(self, state: ConsumerState, ev: Event, out: Outputs) -> None:
        """Attribute a new Order Completed to the consumer's open windows (attribution.py)."""
        records = attribution.convert(state, ev)
        if records:
            out.conversions.extend(records)
            self._stats["conversions"] += len(records)

    def _prune_seen(self, state: ConsumerState, t: float) -> None:
        horizon = t - self._window
        seen = {k: v for k, v in state.seen.items() if v >= horizon}
        if len(seen) > MAX_SEEN_IDS:
            seen = dict(sorted(seen.items(), key=lambda kv: kv[1])[-MAX_SEEN_IDS:])
        state.seen = seen

    def _profile(self, out: Outputs, state: ConsumerState, t: float) -> None:
        out.profiles.append(
            {"consumer_id": state.id, "email": state.email, "consented": state.consented,
             "at": self._iso(t)}
        )

    def _segments(
        self, state: ConsumerState, now: float, out: Outputs, changed: int | None = None,
        horizon: float = -INF,
    ) -> View:
        """Evaluate the segments of `state` at `now`; return the view they read, which stays
        valid until the next evaluation of this engine (there is one view, re-initialized).
        `horizon`: the population stands still until then (see timeplan.Cadence)."""
        view = self._view
        if view is None:
            view = self._view = View(state, now, self.population, self._models, set(state.segments))
        else:
            view.reset(state, now, set(state.segments))
        plan = self._plan
        if state.plan != plan.signature:  # new consumer, or rules reloaded since
            state.plan = plan.signature
            changed = None
            self._dirty.add(state.id)
        entered, exited = evaluate(plan, view, changed)
        if plan.timed:
            self._schedule(state, plan.next_recheck(view, horizon))
        if entered or exited:
            self._dirty.add(state.id)
            state.segments = ordered(self._plan, view.members)
            since = dict(state.entered)  # (a new dict: undo.py keeps the old one by reference)
            for seg in exited:
                since.pop(seg, None)
            for seg in entered:
                since[seg] = now
            state.entered = since
            at = self._iso(now)
            version = self.rules.version
            for seg in exited:
                out.segment_changes.append(_change(state.id, seg, "exited", at, version))
                self._stats["exited:" + seg] += 1
            for seg in entered:
                out.segment_changes.append(_change(state.id, seg, "entered", at, version))
                self._stats["entered:" + seg] += 1
        return view

    def _schedule(self, state: ConsumerState, due: float) -> None:
        """Make `due` the consumer's next segment re-check (inf: none)."""
        current = state.recheck
        if due == current or (due == INF and current == 0.0):
            return
        self._moved.add(state.id)
        if due == INF:
            state.recheck = 0.0
            return
        state.recheck = due
        if current == 0.0 or due < current:
            self.timers.push(due, state.id, RECHECK)
        # (later: the entry at `current` pushes itself on when it pops)

    # time
    def advance(self, now: float) -> Outputs:
        """Move the watermark to `now` if later, and fire every timer and segment re-check due at
        or before it, in due order (the stream clock of the runtime, replay and live alike)."""
        out = Outputs()
        self.fire_into(now, out, True)
        return out

    def fire(self, now: float) -> Outputs:
        """Fire every timer and re-check due at or before the wall clock `now`, leaving the
        watermark (event time) where it is (the live worker's tick)."""
        out = Outputs()
        self._fire_due(now, out)
        return out

    def fire_into(self, now: float, out: Outputs, move: bool) -> None:
        """`advance(now)` (`move`) or `fire(now)`, adding the outputs to `out`."""
        if move and now > self.watermark:
            self.watermark = now
        self._fire_due(now, out)

    def next_due(self) -> float | None:
        """The earliest due time of a pending timer or re-check (None: nothing pending)."""
        return self.timers.next_due()

    def due(self) -> float:
        """next_due(), inf when nothing is pending (a float: no object per call)."""
        heap = self.timers.heap
        return heap[0].due if heap else INF

    def close(self, at: float) -> Outputs:
        """The end of a replay: advance to `at`, then re-evaluate at `at` every consumer's
        segments that time can move (a scan of the consumers: only here)."""
        out = self.advance(at)
        if not self._plan.timed:
            return out  # nothing time can move
        self.flush()
        start = "c/"
        while True:
            rows = self.store.scan(start, "c0", CLOSE_PAGE)
            for key, _ in rows:
                state = self._get(key[2:])
                if state is not None:
                    self._segments(state, at, out, _TIME)
                    self._dirty.add(state.id)
            if len(rows) < CLOSE_PAGE:
                return out
            start = rows[-1][0] + "\0"

    def _fire_due(self, upto: float, out: Outputs) -> bool:
        timers = self.timers
        first = timers.next_due()
        if first is None or first > upto:
            return False
        if upto > self.fired_until:
            self.fired_until = upto
        timers.read_until(upto)
        heap = timers.heap
        # Nothing in this loop changes the population but an erasure (profile_ttl), so without
        # one it stands still until `upto`: a re-check only it could change is due after that.
        horizon = upto if self._ttl <= 0.0 else -INF
        last: Entry | None = None
        while heap and heap[0].due <= upto:  # (not a generator: this loop is hot)
            entry = timers.pop()
            if last is not None and entry.same(last):
                continue  # identical entries count once
            last = entry
            self._fire_entry(entry.due, entry.consumer_id, entry.name, out, horizon)
        return True

    def _fire_entry(self, due: float, cid: str, name: str, out: Outputs, horizon: float) -> None:
        """The index entry (due, cid, name) is due: fire, re-check or move it on."""
        state = self._get(cid)
        if state is None:
            return
        if name == RECHECK:
            self._recheck(state, due, out, horizon)
            return
        if name == TTL:
            self._expire(state, due, out)
            return
        if name == WINDOWS:
            self._close_windows(state, due)
            return
        timer = state.timers.get(name)
        if timer is None:
            return  # disarmed, fired or dropped since
        if timer.due != due:
            if timer.due > due:  # re-armed since: its entry moves on to the new due
                self.timers.push(timer.due, cid, name)
            return
        del state.timers[name]
        self._dirty.add(cid)
        trig = self._by_name.get(name)
        if trig is not None:
            self._fire(state, trig, timer, due, out, horizon)

    def _recheck(self, state: ConsumerState, due: float, out: Outputs, horizon: float) -> None:
        """Re-evaluate, at `due`, the segments of a consumer that time may have changed (not an
        event: no counter, no last_seen)."""
        current = state.recheck
        if current != due:
            if current > due:  # moved later since: its entry moves on
                self.timers.push(current, state.id, RECHECK)
            return
        state.recheck = 0.0
        self._moved.add(state.id)  # (a membership it changes marks the state dirty)
        self._stats["rechecks"] += 1
        self._segments(state, due, out, _TIME, horizon)

    def _close_windows(self, state: ConsumerState, due: float) -> None:
        """The WINDOWS entry at `due`: drop the windows closed by then, look again at the next."""
        if attribution.close(state, due):
            self._dirty.add(state.id)
        following = attribution.close_due(state)
        if following:
            self.timers.push(following, state.id, WINDOWS)

    def _arm_ttl(self, state: ConsumerState) -> None:
        """Give the consumer its profile_ttl entry (one per consumer, moved on lazily)."""
        state.ttl_due = state.last_seen + self._ttl
        self._dirty.add(state.id)
        self.timers.push(state.ttl_due, state.id, TTL)

    def _expire(self, state: ConsumerState, due: float, out: Outputs) -> None:
        """The profile_ttl entry at `due`: erase the consumer if no event came for profile_ttl,
        else move the entry on to last_seen + profile_ttl (events never touch it)."""
        current = state.ttl_due
        if current != due:
            if current > due:  # moved later since: its entry moves on
                self.timers.push(current, state.id, TTL)
            return
        if self._ttl <= 0.0:  # profile_ttl turned off since
            state.ttl_due = 0.0
            self._dirty.add(state.id)
            return
        if state.last_seen + self._ttl > due:
            self._arm_ttl(state)
            return
        self._erase(state, due, out)
        self._stats["expired"] += 1

    def _fire(self, state: ConsumerState, trig: Trigger, timer: Any, due: float,
              out: Outputs, horizon: float) -> None:
        # nothing but time (and the population) moved since the last evaluation
        view = self._segments(state, due, out, _TIME, horizon)
        if trig.when is not None and not bool(trig.when.fn.ev(view)):
            self._stats["not_eligible:" + trig.name] += 1
            return
        offer = choose_offer(trig, view)
        if offer is None and trig.offers:
            self._stats["no_offer:" + trig.name] += 1
            return
        at = self._iso(due)
        reason = suppression_reason(state, trig, due, self.rules.suppression)
        if reason is not None:
            rec = trigger_record(trig, state.id, timer, offer, state.segments, False, at,
                                 self.rules.version)
            out.suppressed.append(
                {"trigger_id": rec["trigger_id"], "campaign": trig.name, "kind": trig.kind,
                 "consumer_id": state.id, "due_at": at, "reason": reason,
                 "rules_version": self.rules.version}
            )
            self._stats["suppressed:" + reason] += 1
            return
        reason = holdout_reason(trig.name, state.id, self.rules.suppression)
        holdout = reason is not None
        record_fired(state, trig, due)
        until = due + attribution.window_of(self.rules.settings.attribution_window,
                                            trig.attribution_window)
        rec = trigger_record(trig, state.id, timer, offer, list(state.segments), holdout, at,
                             self.rules.version, reason, self._iso(until))
        out.triggers.append(rec)
        if attribution.open_window(state, rec, due, until):
            self.timers.push(attribution.close_due(state), state.id, WINDOWS)
        self._stats[("holdout:" if holdout else "triggers:") + trig.name] += 1

    # messages from other partitions
    def receive(self, fwd: Forward) -> Outputs:
        """Handle a forward addressed to a key of this partition."""
        if isinstance(fwd, EventForward):
            where = fwd.where
            if where is not None:  # an input record read on another partition: process it here
                return self.process(fwd.event, where[0], where[1])
            out = Outputs()
            obj = fwd.event
            try:
                ev = parse_event(obj)
                self._route(ev, obj, out, fwd.key, fwd.hops)
            except EventError as exc:  # too far ahead of this partition's clock, say
                self._dead_letter(out, obj, exc.code, exc.message, "forwards", None)
            except Exception as err:  # as in apply_event: its consumer is left as it was
                self._dead_letter(out, obj, INTERNAL_ERROR, f"{type(err).__name__}: {err}",
                                  "forwards", None)
            return out
        out = Outputs()
        if isinstance(fwd, MergeOut):
            self._merge_out(fwd.key, fwd.into, out)
        elif isinstance(fwd, MergeIn):
            self._merge_in(fwd.key, fwd.source, fwd.state, out, fwd.hops)
        elif isinstance(fwd, Forget):
            out.extend(self.forget(fwd.key))
        elif isinstance(fwd, ForgetAlias):
            if self._alias(fwd.key) is not None:
                self._set_alias(fwd.key, None)
                self.erasures += 1
        else:
            self._dead_letter(out, repr(fwd), INVALID_VALUE, "unknown forward", "forwards", None)
        return out

    def _merge_out(self, source: str, target: str, out: Outputs) -> None:
        """Give up `source` to `target`, unless a profile never merges that way: an id merged
        before stays with its first user, and a user id (or an id holding one) never merges
        into another (Segment's limit of one user id per profile). The event that asked was
        applied to the target all the same (Segment drops the anonymous id from it)."""
        if source == target or self._alias(source) is not None:
            if self._alias(source) != target:
                self._stats["merges_refused"] += 1
            return
        state = self._get(source)
        if state is not None and state.user:
            self._stats["merges_refused"] += 1
            return
        self._set_alias(source, target)
        self._stats["merged"] += 1
        if state is None:
            return
        self.population.remove(state)
        at = self._iso(max(self.watermark, state.last_seen))
        for seg in state.segments:
            out.segment_changes.append(_change(source, seg, "exited", at, self.rules.version))
            self._stats["exited:" + seg] += 1
        self._drop(source)
        out.forwards.append(MergeIn(target, source, state))

    def _merge_in(
        self, target: str, source: str, other: ConsumerState, out: Outputs, hops: int = 0
    ) -> None:
        state = self._get(target)
        if state is None:
            target_alias = self._alias(target)
            if target_alias is not None:  # the target itself merged on meanwhile: pass it on
                if hops < MAX_HOPS:
                    out.forwards.append(MergeIn(target_alias, source, other, hops + 1))
                    return
                # a cycle of alias links: cut it here, this id keeps the profile
                self._set_alias(target, None)
                self._stats["identity_cycles_cut"] += 1
            state = self._create(target, other.first_seen)
        mark = _seen_key("merge:" + source)
        if mark in state.seen:
            return
        self.population.remove(state)
        had_email, had_consent = state.email, state.consented
        merge_states(state, other, self._half_life)
        attribution.merge_windows(state, other)
        if state.ttl_due == 0.0 and self._ttl > 0.0:  # a new target: the merged last_seen
            self._arm_ttl(state)
        state.seen[mark] = int(state.last_seen)
        self.population.add(state)
        self._dirty.add(target)
        for name, timer in state.timers.items():
            self.timers.push(timer.due, target, name)
        if state.windows:
            self.timers.push(attribution.close_due(state), target, WINDOWS)
        now = max(self.watermark, state.last_seen)
        if state.email != had_email or state.consented != had_consent:
            self._profile(out, state, now)
        self._segments(state, now, out)

    # erasure
    def forget(self, consumer_id: str) -> Outputs:
        """Remove every trace of a consumer held here; aliases elsewhere get a Forward.

        What cannot be undone: records already written to output topics or files, and the raw
        events still in the input topics (a replay from them would bring the consumer back).
        """
        out = Outputs()
        state = self._get(consumer_id)
        if state is None:
            target = self._alias(consumer_id)
            if target is not None:
                self._set_alias(consumer_id, None)
                self.erasures += 1
                out.forwards.append(Forget(target))
            return out
        self._erase(state, max(self.watermark, state.last_seen), out)
        self._stats["forgotten"] += 1
        return out

    def _erase(self, state: ConsumerState, t: float, out: Outputs) -> None:
        """Segment exits and an empty profile at `t`, the population contribution, the state
        with its timers and index entries, and forwards erasing its aliases."""
        consumer_id = state.id
        at = self._iso(t)
        for seg in state.segments:
            out.segment_changes.append(
                _change(consumer_id, seg, "exited", at, self.rules.version)
            )
            self._stats["exited:" + seg] += 1
        out.profiles.append({"consumer_id": consumer_id, "email": None, "consented": False,
                             "at": at})
        self.population.remove(state)
        for alias in state.aliases:
            out.forwards.append(ForgetAlias(alias))
        self._drop(consumer_id)
        self.erasures += 1


def _check_merge(ev: Event, cid: str, state: ConsumerState | None) -> None:
    """Refuse (identity_conflict) an identify/alias whose merge would close a cycle (its user
    id was merged into the very id it merges now) or exceed MAX_MERGES ids in one consumer;
    `cid` is the consumer the event reached, `state` its state."""
    source = ev.merge_source
    if source is None:
        return
    if source == cid:
        raise EventError(
            f"{ev.user_id!r} was merged into {source!r} before: merging {source!r} into it "
            "would make a cycle",
            IDENTITY_CONFLICT,
        )
    if state is not None and len(state.aliases) >= MAX_MERGES and source not in state.aliases:
        raise EventError(
            f"{cid!r} has {MAX_MERGES} ids merged into it already (the limit): {source!r} is "
            "not merged",
            IDENTITY_CONFLICT,
        )


def _change(cid: str, segment: str, change: str, at: str, version: str) -> dict[str, Any]:
    return {
        "consumer_id": cid,
        "segment": segment,
        "change": change,
        "at": at,
        "event": "Audience Entered" if change == "entered" else "Audience Exited",
        "rules_version": version,
    }
