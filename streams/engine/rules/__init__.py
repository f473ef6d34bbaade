"""The rules language: a YAML file of segments and triggers, with safe compiled expressions.

rules = load_rules("rules.yaml")          # RuleSet, or RulesError listing every issue
rules.segments[0].when.fn(view)           # a view is a namespace.FeatureView
"""

from streams.engine.rules.durations import DurationError, parse_duration
from streams.engine.rules.expr import compile_expr
from streams.engine.rules.loader import check_file, check_rules, load_rules, loads_rules
from streams.engine.rules.model import (
    Expr,
    OfferTier,
    RuleIssue,
    RulesError,
    RuleSet,
    Segment,
    Settings,
    Suppression,
    Trigger,
)

__all__ = [
    "DurationError",
    "Expr",
    "OfferTier",
    "RuleIssue",
    "RuleSet",
    "RulesError",
    "Segment",
    "Settings",
    "Suppression",
    "Trigger",
    "check_file",
    "check_rules",
    "compile_expr",
    "load_rules",
    "loads_rules",
    "parse_duration",
]
