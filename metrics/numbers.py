"""The one percentage helper shared by pages, API and CSV (SPEC §2)."""

from __future__ import annotations


def pct(numerator: int, denominator: int) -> str:
    """100 × numerator / denominator, rounded half away from zero from the exact ratio to one
    decimal ("87.5", "100.0", "0.0"); "" (an empty cell) when the denominator is 0.

    Integer arithmetic: no float ever rounds 0.05 the wrong way.
    """
    if not denominator:
        return ""
    tenths, remainder = divmod(1000 * abs(numerator), denominator)
    if 2 * remainder >= denominator:
        tenths += 1
    sign = "-" if numerator < 0 and tenths else ""
    return f"{sign}{tenths // 10}.{tenths % 10}"


def ratio(numerator: int, denominator: int) -> float | None:
    """The unrounded percentage, for thresholds and bands; None when undefined."""
    return 100 * numerator / denominator if denominator else None
