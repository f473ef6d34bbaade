"""Load and validate a rules file (YAML) into a RuleSet; every problem points at its line:col."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, cast

import yaml
from yaml.nodes import Node, ScalarNode, SequenceNode

from streams.engine.clv import CustomerModels
from streams.engine.rules.expr import Sharing, compile_at
from streams.engine.rules.model import (
    DEFAULT_BGNBD,
    TRIGGER_KINDS,
    Expr,
    OfferTier,
    RuleIssue,
    RulesError,
    RuleSet,
    Segment,
    Settings,
    Suppression,
    Trigger,
    TriggerKind,
)
from streams.engine.rules.modelsfile import ModelsError, load_models
from streams.engine.rules.nodes import Const
from streams.engine.rules.typecheck import suggest
from streams.engine.rules.yamlnodes import Entries, NodeReader

TOP_KEYS = ("segments", "triggers", "suppression", "settings")
SEGMENT_KEYS = ("name", "when")
TRIGGER_KEYS = (
    "name", "kind", "on", "wait", "unless", "if", "offer", "offers", "cooldown",
    "attribution_window",
)
TIER_KEYS = ("if", "offer")
SUPPRESSION_KEYS = ("frequency_cap", "holdout", "global_control")
CAP_KEYS = ("max", "per")
SETTINGS_KEYS = (
    "allowed_lateness",
    "dedupe_window",
    "affinity_half_life",
    "bgnbd",
    "reevaluate_every",
    "models",
    "discount_rate",
    "max_clock_skew",
    "profile_ttl",
    "attribution_window",
)
BGNBD_KEYS = ("r", "alpha", "a", "b")
# Segment's e-commerce v2 events, and the names non-track events go by
ECOMMERCE_EVENTS = (
    "Products Searched", "Product List Viewed", "Product List Filtered", "Promotion Viewed",
    "Promotion Clicked", "Product Clicked", "Product Viewed", "Product Added", "Product Removed",
    "Cart Viewed", "Checkout Started", "Checkout Step Viewed", "Checkout Step Completed",
    "Payment Info Entered", "Order Updated", "Order Completed", "Order Refunded",
    "Order Cancelled", "Coupon Entered", "Coupon Applied", "Coupon Denied", "Coupon Removed",
    "Product Added to Wishlist", "Product Removed from Wishlist",
    "Wishlist Product Added to Cart", "Product Shared", "Cart Shared", "Product Reviewed",
)
KNOWN_EVENTS = frozenset((*ECOMMERCE_EVENTS, "page", "screen", "identify", "alias"))


MAX_RULES_CHARS = 8_000_000
MAX_NESTING = 64  # of YAML lists and mappings
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BRACKETS = re.compile(r"[\[\]{}]")


def load_rules(path: str | os.PathLike[str]) -> RuleSet:
    """Load a rules file; raises RulesError listing every problem (OSError if unreadable)."""
    text, issue = _read_text(path)
    if issue is not None:
        raise RulesError([issue])
    return loads_rules(text, str(path))


def loads_rules(text: str, path: str = "<string>") -> RuleSet:
    """Load rules from YAML text; `path` is used in messages. Raises RulesError."""
    sharing = Sharing()
    try:
        first = _Loader(text, path, sharing)
        rules, issues = first.load()
        if issues or rules is None:
            raise RulesError(issues)
        if sharing.plan():  # compile again, shared sub-expressions now computed once per view
            rules, issues = _Loader(text, path, sharing, first.root).load()
            assert rules is not None and not issues
    except RulesError:
        raise
    except (RecursionError, ValueError, OverflowError) as err:  # a bound we missed: no traceback
        message = f"cannot read this file: {type(err).__name__}: {err}"
        raise RulesError([RuleIssue(path, 1, 1, message[:300])]) from None
    return rules


def check_rules(path: str | os.PathLike[str]) -> list[RuleIssue]:
    """Every problem of a rules file, in file order (empty if it is fine)."""
    return check_file(path)[0]


def check_file(path: str | os.PathLike[str]) -> tuple[list[RuleIssue], list[RuleIssue]]:
    """(problems, warnings) of a rules file, each in file order. Warnings (e.g. an `on:` event
    name that looks like a typo) do not stop the file from loading."""
    text, issue = _read_text(path)
    if issue is not None:
        return [issue], []
    loader = _Loader(text, str(path))
    try:
        issues = loader.load()[1]
    except (RecursionError, ValueError, OverflowError) as err:  # as in loads_rules
        message = f"cannot read this file: {type(err).__name__}: {err}"
        return [RuleIssue(str(path), 1, 1, message[:300])], []
    return issues, sorted(loader.warnings, key=lambda i: (i.line, i.col))


def _read_text(path: str | os.PathLike[str]) -> tuple[str, RuleIssue | None]:
    """The file's text, or the issue that makes it unreadable as rules (OSError if it cannot
    be read at all)."""
    with open(path, "rb") as f:
        data = f.read(MAX_RULES_CHARS * 4 + 1)
    if len(data) > MAX_RULES_CHARS * 4:
        msg = f"the rules file is too large (over {MAX_RULES_CHARS:,} characters)"
        return "", RuleIssue(str(path), 1, 1, msg)
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        return "", RuleIssue(str(path), line, col, f"the file is not UTF-8 text: {err.reason}")


def _too_deep_at(text: str) -> int | None:
    """Index of the first bracket nested deeper than MAX_NESTING (brackets in strings count:
    a rough bound, but no sensible file comes near it)."""
    depth = 0
    for m in _BRACKETS.finditer(text):
        if m.group() in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return m.start()
        elif depth > 0:
            depth -= 1
    return None


def version_of(text: str, files: list[bytes] | None = None) -> str:
    """Short stable hash of a rules file's text (and of the files it reads, if any)."""
    digest = hashlib.sha256(text.encode("utf-8"))
    for data in files or ():
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()[:12]


class _Loader(NodeReader):
    def __init__(
        self, text: str, file: str, sharing: Sharing | None = None, root: Node | None = None
    ) -> None:
        super().__init__(text, file)
        self.sharing = sharing
        self.root = root  # the composed YAML, kept for a second compilation
        self.warnings: list[RuleIssue] = []
        self.event_names: list[tuple[str, ScalarNode]] = []
        self.versioned: list[bytes] = []  # files the rules read, part of their version

    def load(self) -> tuple[RuleSet | None, list[RuleIssue]]:
        if self.root is None:
            root, issues = self.compose()
            if root is None:
                return None, issues
            self.root = root
        return self.build(self.root)

    def compose(self) -> tuple[Node | None, list[RuleIssue]]:
        if len(self.text) > MAX_RULES_CHARS:
            msg = f"the rules file is too large (over {MAX_RULES_CHARS:,} characters)"
            return None, [RuleIssue(self.file, 1, 1, msg)]
        deep = _too_deep_at(self.text)
        if deep is not None:
            line, col = self.position(deep)
            msg = f"lists and mappings nested too deeply (over {MAX_NESTING} levels)"
            return None, [RuleIssue(self.file, line, col, msg)]
        try:
            try:  # libyaml when present: the same nodes and marks, ten times faster
                root = yaml.compose(self.text, Loader=_FAST_LOADER)
            except yaml.YAMLError:  # again with the Python one, whose messages are better
                root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except RecursionError:
            msg = f"lists and mappings nested too deeply (over {MAX_NESTING} levels)"
            return None, [RuleIssue(self.file, 1, 1, msg)]
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = err.problem or "invalid YAML"
            message = f"YAML syntax error: {problem}"
            if err.context:
                message += f" ({err.context})"
            return None, [RuleIssue(self.file, line, col, message)]
        except yaml.YAMLError as err:
            return None, [RuleIssue(self.file, 1, 1, f"YAML error: {err}")]
        if root is None:
            msg = "the rules file is empty: expected 'segments:' and 'triggers:'"
            return None, [RuleIssue(self.file, 1, 1, msg)]
        return root, []

    def build(self, root: Node) -> tuple[RuleSet | None, list[RuleIssue]]:
        top = self.mapping(root, "the rules file", TOP_KEYS)
        if top is None:
            return None, self.issues
        segments = self.segments(top)
        names = frozenset(s.name for s in segments)
        triggers = self.triggers(top, names)
        self.event_name_warnings()
        suppression = self.suppression(top)
        settings = self.settings(top)
        self.issues.sort(key=lambda i: (i.line, i.col))
        rules = RuleSet(
            tuple(segments),
            tuple(triggers),
            suppression,
            settings,
            version_of(self.text, self.versioned),
            self.file,
        )
        return rules, self.issues

    def expr(
        self, node: Node, what: str, segments: frozenset[str], own: str | None = None
    ) -> Expr:
        """Compile the expression in a scalar node; problems go to `issues`."""
        placeholder = Expr("false", Const(False), node.start_mark.line + 1, 1)
        if not isinstance(node, ScalarNode):
            self.issue(node, f"{what} must be an expression such as orders >= 3")
            return placeholder
        try:
            return compile_at(
                node.value,
                segments=segments,
                locate=self.locator(node),
                file=self.file,
                own=own,
                sharing=self.sharing,
            )
        except RulesError as err:
            self.issues.extend(err.issues)
            return placeholder

    def items(self, top: Entries, key: str) -> list[Node]:
        if key not in top:
            return []
        return self.sequence(top[key][1], f"'{key}'") or []

    def unique(self, node: Node, what: str, seen: dict[str, int]) -> str | None:
        name = self.name(node, f"{what} name")
        if name is None:
            return None
        if name in seen:
            self.issue(node, f"duplicate {what} name '{name}' (first defined on line {seen[name]})")
            return None
        seen[name] = node.start_mark.line + 1
        return name

    def segments(self, top: Entries) -> list[Segment]:
        parsed: list[tuple[str, Node]] = []
        seen: dict[str, int] = {}
        for item in self.items(top, "segments"):
            entries = self.mapping(item, "segment", SEGMENT_KEYS, ("name", "when"))
            if entries is None:
                continue
            name = self.unique(entries["name"][1], "segment", seen) if "name" in entries else None
            if "when" in entries:
                parsed.append((name or "", entries["when"][1]))
        names = frozenset(seen)
        out: list[Segment] = []
        for name, node in parsed:
            when = self.expr(node, "when", names, own=name or None)
            if name:
                out.append(Segment(name, when, len(out)))
        return out

    def triggers(self, top: Entries, segments: frozenset[str]) -> list[Trigger]:
        seen: dict[str, int] = {}
        out: list[Trigger] = []
        for item in self.items(top, "triggers"):
            trig = self.trigger(item, segments, seen, len(out))
            if trig is not None:
                out.append(trig)
        return out

    def trigger(
        self, item: Node, segments: frozenset[str], seen: dict[str, int], index: int
    ) -> Trigger | None:
        e = self.mapping(item, "trigger", TRIGGER_KEYS, ("name", "kind", "on", "wait"))
        if e is None:
            return None
        name = self.unique(e["name"][1], "trigger", seen) if "name" in e else None
        if name is not None and name.startswith("~"):  # (the index's own entries: TTL)
            self.issue(e["name"][1], f"trigger name '{name}' may not start with '~'")
            name = None
        what = f"trigger '{name}'" if name else "trigger"
        kind = self.kind(e["kind"][1]) if "kind" in e else None
        for key in ("on", "unless"):
            if key in e:
                self.note_event_names(e[key][1])
        on = self.text_list(e["on"][1], "on") if "on" in e else None
        if "on" in e and on == []:
            self.issue(e["on"][1], "on needs at least one event name, e.g. Product Added")
        wait = self.duration(e["wait"][1], "wait") if "wait" in e else None
        unless = self.text_list(e["unless"][1], "unless") if "unless" in e else []
        when = self.expr(e["if"][1], "if", segments) if "if" in e else None
        offers = self.offers(e, what, segments, item)
        cooldown = self.duration(e["cooldown"][1], "cooldown") if "cooldown" in e else None
        window = (
            self.duration(e["attribution_window"][1], "attribution_window")
            if "attribution_window" in e else None
        )
        if name is None or kind is None or not on or wait is None or unless is None:
            return None
        if offers is None or ("cooldown" in e and cooldown is None):
            return None
        if "attribution_window" in e and window is None:
            return None
        return Trigger(
            name, kind, frozenset(on), wait, frozenset(unless), when, offers, cooldown, index,
            window,
        )

    def note_event_names(self, node: Node) -> None:
        """Remember the event names of an `on:`/`unless:` (see event_name_warnings)."""
        items = node.value if isinstance(node, SequenceNode) else [node]
        for item in items:
            if isinstance(item, ScalarNode) and str(item.value).strip():
                self.event_names.append((str(item.value).strip(), item))

    def event_name_warnings(self) -> None:
        """Warn about an event name that is no Segment e-commerce event (nor an event type)
        and appears nowhere else in the file: most likely a typo, which would never match."""
        named = {name for name, _ in self.event_names}
        for name, node in self.event_names:
            if name in KNOWN_EVENTS or self.text.count(name) > 1:
                continue
            others = [n for n in named if n != name and self.text.count(n) > 1]
            hint = suggest(name, [*ECOMMERCE_EVENTS, *sorted(others)])
            mark = node.start_mark
            self.warnings.append(RuleIssue(
                self.file, mark.line + 1, mark.column + 1,
                f"warning: no event called '{name}' is known (not a Segment e-commerce event "
                f"and named nowhere else in the file){hint}",
            ))

    def kind(self, node: Node) -> TriggerKind | None:
        text = self.text_value(node, "kind")
        if text is None:
            return None
        if text not in TRIGGER_KINDS:
            hint = suggest(text, TRIGGER_KINDS) or "; use retargeting or winback"
            self.issue(node, f"unknown kind '{text}'{hint}")
            return None
        return cast(TriggerKind, text)

    def offers(
        self, e: Entries, what: str, segments: frozenset[str], item: Node
    ) -> tuple[OfferTier, ...] | None:
        if "offer" in e and "offers" in e:
            later = max(e["offer"][0], e["offers"][0], key=lambda k: k.start_mark.index)
            self.issue(later, f"{what} has both 'offer' and 'offers': use one of them")
            return None
        if "offer" in e:
            offer = self.text_value(e["offer"][1], "offer")
            return None if offer is None else (OfferTier(None, offer),)
        if "offers" not in e:
            self.issue(item, f"{what} needs an 'offer' (or a list of 'offers')")
            return None
        items = self.sequence(e["offers"][1], "offers")
        if items is None:
            return None
        if not items:
            self.issue(e["offers"][1], "offers needs at least one tier, e.g. {offer: comeback-10}")
            return None
        tiers: list[OfferTier] = []
        for node in items:
            t = self.mapping(node, "offer tier", TIER_KEYS, ("offer",))
            if t is None:
                continue
            when = self.expr(t["if"][1], "if", segments) if "if" in t else None
            offer = self.text_value(t["offer"][1], "offer") if "offer" in t else None
            if offer is not None:
                tiers.append(OfferTier(when, offer))
        return tuple(tiers) if len(tiers) == len(items) else None

    def suppression(self, top: Entries) -> Suppression:
        if "suppression" not in top:
            return Suppression()
        e = self.mapping(top["suppression"][1], "suppression", SUPPRESSION_KEYS)
        if not e:
            return Suppression()
        cap_max = cap_per = None
        if "frequency_cap" in e:
            cap = self.mapping(e["frequency_cap"][1], "frequency_cap", CAP_KEYS, CAP_KEYS)
            if cap and "max" in cap:
                cap_max = self.number(cap["max"][1], "max", integer=True)
                if cap_max is not None and cap_max <= 0:
                    self.issue(cap["max"][1], "max must be at least 1")
                    cap_max = None
            if cap and "per" in cap:
                cap_per = self.duration(cap["per"][1], "per")
        shares = {"holdout": 0.0, "global_control": 0.0}
        for key, example in (("holdout", "0.1"), ("global_control", "0.05")):
            if key in e:
                value = self.number(e[key][1], key)
                if value is not None and not 0 <= value < 1:
                    msg = f"{key} must be at least 0 and less than 1, e.g. {example}"
                    self.issue(e[key][1], msg)
                elif value is not None:
                    shares[key] = float(value)
        return Suppression(None if cap_max is None else int(cap_max), cap_per, shares["holdout"],
                           shares["global_control"])

    def settings(self, top: Entries) -> Settings:
        defaults = Settings()
        if "settings" not in top:
            return defaults
        e = self.mapping(top["settings"][1], "settings", SETTINGS_KEYS)
        if not e:
            return defaults

        def dur(key: str, default: float, positive: bool = True) -> float:
            if key not in e:
                return default
            value = self.duration(e[key][1], key, positive=positive)
            return default if value is None else value

        bgnbd = DEFAULT_BGNBD
        if "bgnbd" in e:
            params = self.mapping(e["bgnbd"][1], "bgnbd", BGNBD_KEYS, BGNBD_KEYS)
            if params and all(k in params for k in BGNBD_KEYS):
                values = [self.number(params[k][1], k) for k in BGNBD_KEYS]
                for k, v in zip(BGNBD_KEYS, values, strict=True):
                    if v is not None and not v > 0:
                        self.issue(params[k][1], f"{k} must be more than zero")
                if all(v is not None and v > 0 for v in values):
                    r, alpha, a, b = (float(cast(float, v)) for v in values)
                    bgnbd = (r, alpha, a, b)
        return Settings(
            allowed_lateness=dur("allowed_lateness", defaults.allowed_lateness, positive=False),
            dedupe_window=dur("dedupe_window", defaults.dedupe_window),
            affinity_half_life=dur("affinity_half_life", defaults.affinity_half_life),
            bgnbd=bgnbd,
            reevaluate_every=dur("reevaluate_every", defaults.reevaluate_every),
            models=self.models(e, bgnbd),
            max_clock_skew=dur("max_clock_skew", defaults.max_clock_skew),
            profile_ttl=dur("profile_ttl", defaults.profile_ttl),
            attribution_window=dur("attribution_window", defaults.attribution_window),
        )

    def models(self, e: Entries, bgnbd: tuple[float, float, float, float]) -> CustomerModels:
        """`models:` (a file written by `micromarketing fit`, relative to the rules file) and
        `discount_rate` (a year, for clv_365d); the file is read at every (re)load."""
        rate = 0.0
        if "discount_rate" in e:
            value = self.number(e["discount_rate"][1], "discount_rate")
            if value is not None and not 0 <= value < 10:
                self.issue(e["discount_rate"][1], "discount_rate must be a yearly rate, e.g. 0.1")
            elif value is not None:
                rate = float(value)
        if "models" not in e:
            return CustomerModels(bgnbd, discount_rate=rate)
        node = e["models"][1]
        if "bgnbd" in e:
            self.issue(e["bgnbd"][0], "settings have both 'bgnbd' and 'models': use one of them")
        name = self.text_value(node, "models")
        if name is None:
            return CustomerModels(bgnbd, discount_rate=rate)
        path = Path(self.file).parent / name
        try:
            models = load_models(path, rate)
        except ModelsError as err:
            self.issue(node, str(err))
            return CustomerModels(bgnbd, discount_rate=rate)
        self.versioned.append(path.read_bytes())
        return models
