from __future__ import annotations

from tests.unit.engine.helpers import DAY, T0, engine, identify, run, track

RULES = """
segments:
  - name: viewer
    when: views >= 2
  - name: road-women
    when: traits.gender == "female" and affinity("road") >= 0.5
  - name: both
    when: in_segment("viewer") and in_segment("road-women")
  - name: later-ref
    when: in_segment("last")
  - name: last
    when: views >= 3
"""


def changes(out):
    return [(c["consumer_id"], c["segment"], c["change"]) for c in out.segment_changes]


def test_only_changes_are_emitted():
    eng = engine(RULES)
    assert changes(run(eng, track("u", "Product Viewed", T0, category="road"))) == []
    assert changes(run(eng, track("u", "Product Viewed", T0 + 1, category="road"))) == [
        ("u", "viewer", "entered")
    ]
    assert changes(run(eng, track("u", "Page", T0 + 2))) == []


def test_in_segment_sees_earlier_segments_of_this_evaluation_and_later_ones_as_before():
    eng = engine(RULES)
    run(eng, identify("u", T0, gender="female"))
    out = run(eng, track("u", "Product Viewed", T0 + 1, category="road"))
    assert changes(out) == [("u", "road-women", "entered")]
    out = run(eng, track("u", "Product Viewed", T0 + 2, category="road"))
    # "both" reads "road-women", which comes earlier in the file, as just evaluated
    assert changes(out) == [("u", "viewer", "entered"), ("u", "both", "entered")]
    out = run(eng, track("u", "Product Viewed", T0 + 3, category="road"))
    assert changes(out) == [("u", "last", "entered")]  # later-ref saw last as it was
    out = run(eng, track("u", "Page", T0 + 4))
    assert changes(out) == [("u", "later-ref", "entered")]


def test_exit_and_record_shape():
    eng = engine(RULES)
    run(eng, identify("u", T0, gender="female"))
    run(eng, track("u", "Product Viewed", T0 + 1, category="road"))
    run(eng, track("u", "Product Viewed", T0 + 2, category="road"))
    out = run(eng, *[track("u", "Product Viewed", T0 + DAY + i, category="mountain")
                     for i in range(5)])
    exits = [c for c in out.segment_changes if c["change"] == "exited"]
    assert {c["segment"] for c in exits} == {"road-women", "both"}
    rec = exits[0]
    assert rec["event"] == "Audience Exited"
    assert rec["at"].endswith("Z")
    assert set(rec) == {"consumer_id", "segment", "change", "at", "event", "rules_version"}


def test_hot_reload_exits_removed_segments():
    from tests.unit.engine.helpers import rules

    eng = engine(RULES)
    run(eng, track("u", "Product Viewed", T0), track("u", "Product Viewed", T0 + 1))
    eng.set_rules(rules("segments:\n  - name: other\n    when: views >= 100\n"))
    out = run(eng, track("u", "Page", T0 + 2))
    assert changes(out) == [("u", "viewer", "exited")]
    assert out.segment_changes[0]["rules_version"] == eng.rules.version


def test_hot_reload_evaluates_added_segments_on_the_next_event_of_any_kind():
    """A segment added by a reload is evaluated on the consumer's next event even when that
    event cannot change its inputs (a page view cannot change `views`)."""
    from tests.unit.engine.helpers import rules

    eng = engine(RULES)
    run(eng, *(track("u", "Product Viewed", T0 + i) for i in range(3)))
    eng.set_rules(rules("segments:\n  - name: keen\n    when: views >= 3\n"))
    out = run(eng, {**track("u", "x", T0 + 10), "type": "page", "name": "Home"})
    assert ("u", "keen", "entered") in changes(out)
    assert ("u", "viewer", "exited") in changes(out)
    # the full evaluation happens once per reload: the next page view changes nothing
    assert changes(run(eng, {**track("u", "x", T0 + 11), "type": "page", "name": "Home"})) == []


def test_timer_firing_matches_a_full_evaluation():
    """At firing only time-relative segments are re-run; the memberships on the trigger are
    those a full evaluation would give."""
    text = RULES + (
        "  - name: quiet\n    when: days_since_last_seen > 1d\n"
        "triggers:\n  - name: nudge\n    kind: retargeting\n    on: Product Viewed\n"
        "    wait: 2d\n    offer: hi\n"
    )
    eng = engine(text)
    run(eng, track("u", "Product Viewed", T0), track("u", "Product Viewed", T0 + 1))
    out = eng.advance(T0 + 3 * DAY)
    assert changes(out) == [("u", "quiet", "entered")]
    [trig] = out.triggers
    assert trig["segments"] == ["viewer", "quiet"]
