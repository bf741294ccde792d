"""The one percentage helper shared by pages, API and CSV (SPEC §2)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=65_536)  # exports call it twice a row, mostly with pairs seen before
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


# Usage and deployment bands of SPEC §8, in display order: [0,20) … [80,100), 100 and above, no data.
BANDS = ("0-20", "20-40", "40-60", "60-80", "80-100", "100+", "none")
BAND_LABELS = {
    "0-20": "0–20%",
    "20-40": "20–40%",
    "40-60": "40–60%",
    "60-80": "60–80%",
    "80-100": "80–100%",
    "100+": "100% and above",
    "none": "No data",
}


def band(numerator: int, denominator: int) -> str:
    """The band of the exact (unrounded) percentage; "none" when it is undefined."""
    if not denominator:
        return "none"
    if numerator >= denominator:
        return "100+"
    return BANDS[min(5 * numerator // denominator, 4)]
