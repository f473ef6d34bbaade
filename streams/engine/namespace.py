"""The feature namespace a rule expression may read: names, their types, and the functions.

This is the contract between the rules compiler and the feature view; the features and
functions themselves are declared in `registry`. A compiled expression gets one argument, a
`FeatureView`, and reads plain features as attributes (`Feature.attr`), traits with
`view.trait(name)` and calls the functions as methods of the view.
"""

from __future__ import annotations

from typing import Any, Protocol

from streams.engine.registry import FEATURES, FUNCTIONS, TRAITS_PREFIX, Feature, Function, Type

__all__ = ["FEATURES", "FUNCTIONS", "TRAITS_PREFIX", "Feature", "FeatureView", "Function", "Type"]


class FeatureView(Protocol):
    """What a compiled expression reads. Attributes are those named by `Feature.attr`."""

    def trait(self, name: str) -> Any: ...
    def affinity(self, category: str) -> float: ...
    def brand_affinity(self, brand: str) -> float: ...
    def distance_km(self, lat: float, lon: float) -> float | None: ...
    def in_segment(self, name: str) -> bool: ...
