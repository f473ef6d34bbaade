"""Reading the models file `micromarketing fit` writes (settings `models:` of a rules file)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from streams.engine.clv import CustomerModels
from streams.engine.gammagamma import CDNOW_SPEND

MODELS = ("bgnbd", "mbgnbd")


class ModelsError(ValueError):
    """A models file that cannot be used; the message says why."""


def load_models(path: str | Path, discount_rate: float = 0.0) -> CustomerModels:
    """The customer models of a models.yaml; ModelsError with the reason if unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ModelsError(f"cannot read models file {path}: {err}") from None
    return parse_models(text, discount_rate)


def parse_models(text: str, discount_rate: float = 0.0) -> CustomerModels:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ModelsError(f"the models file is not valid YAML: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("bgnbd"), dict):
        raise ModelsError("the models file has no 'bgnbd:' mapping (micromarketing fit writes it)")
    model = doc.get("model", "bgnbd")
    if model not in MODELS:
        raise ModelsError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    r, alpha, a, b = _params(doc["bgnbd"], "bgnbd", ("r", "alpha", "a", "b"))
    spend = CDNOW_SPEND
    if doc.get("gamma_gamma") is not None:
        p, q, v = _params(doc["gamma_gamma"], "gamma_gamma", ("p", "q", "v"))
        spend = (p, q, v)
    return CustomerModels((r, alpha, a, b), spend, model == "mbgnbd", discount_rate)


def _params(block: Any, what: str, keys: tuple[str, ...]) -> list[float]:
    if not isinstance(block, dict):
        raise ModelsError(f"{what} must be a mapping of {', '.join(keys)}")
    out: list[float] = []
    for key in keys:
        value = block.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ModelsError(f"{what}.{key} must be a number, got {value!r}")
        if not (math.isfinite(value) and value > 0):
            raise ModelsError(f"{what}.{key} must be more than zero, got {value!r}")
        out.append(float(value))
    return out
