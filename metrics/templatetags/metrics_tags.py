"""Template filters for metric numbers: the same `pct()` as the API and the CSV."""

from __future__ import annotations

from collections.abc import Mapping

from django import template

from metrics import numbers
from metrics.explain import Explanation

register = template.Library()


@register.filter
def pct(numerator: int | None, denominator: int | None) -> str:
    """`{{ assigned|pct:sold }}` → "87.5"; "" when undefined (no data or a zero denominator)."""
    if numerator is None or denominator is None:
        return ""
    return numbers.pct(numerator, denominator)


@register.filter
def over_100(numerator: int | None, denominator: int | None) -> bool:
    """Whether a ratio passes 100% (usage above 100% gets an explanation on the page)."""
    return numerator is not None and denominator is not None and denominator > 0 and numerator > denominator


@register.filter
def get_item(mapping: Mapping[object, object], key: object) -> object:
    """`{{ mapping|get_item:key }}`: a dictionary value by a variable key."""
    return mapping.get(key)


@register.filter
def sku_causes(explanation: Explanation, sku: str) -> list[tuple[int, str]]:
    """`{{ explanation|sku_causes:sku }}`: (count, cause) lines of usage above 100% for a SKU."""
    return explanation.sku_lines(sku)
