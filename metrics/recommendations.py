"""Recommendations ("next steps", SPEC §3): the rules, applied to a customer's family-grain numbers
(`metrics.selectors.recommendation_list` reads them).

Rules read the unrounded numbers of the `rec_*` columns (the family without the partner's
excluded SKUs); an undefined percentage never triggers a rule. Support load is a property of the
customer, so it is judged once per customer against the entitled users of all its families.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from django.db import models

from customers.models import Family
from metrics.definitions import WINDOW_DAYS
from metrics.models import InsightSettings
from metrics.numbers import pct


class Kind(models.TextChoices):
    LOW_ADOPTION = "low_adoption", "Low adoption"
    SUPPORT_LOAD = "support_load", "Support load"
    GROWTH = "growth", "Growth opportunity"


# The source document's advice, word for word where it gives one.
ADVICE = {
    Kind.LOW_ADOPTION: (
        "Customers may not understand the value of the software. Share case studies, user references "
        "for concrete scenarios, and tutorial blogs or videos."
    ),
    Kind.SUPPORT_LOAD: (
        "The customer may be new to the software, its version or the task. Offer training (in person or "
        "online), better self-service options, and a support site that carries your support contacts "
        "and the customer's self-help options."
    ),
    Kind.GROWTH: "Licenses are deployed and used: offer more seats or a higher plan.",
}


@dataclass(frozen=True)
class Recommendation:
    customer_id: int
    kind: Kind
    family: str  # "" for support load, which concerns the whole customer
    facts: tuple[str, ...]  # the numbers that triggered it, as a person reads them

    @property
    def advice(self) -> str:
        return ADVICE[self.kind]

    @property
    def family_label(self) -> str:
        return Family(self.family).label if self.family else ""


@dataclass(frozen=True)
class FamilyNumbers:
    sold: int
    assigned: int
    entitled: int
    active: int


def evaluate(
    numbers: dict[int, dict[str, FamilyNumbers]], howto: dict[int, int], settings: InsightSettings
) -> list[Recommendation]:
    """The recommendations of each customer from its family numbers (the rec_* columns, by family)
    and its how-to requests in the window, in customer, kind and family order."""
    found = []
    for customer_id, by_family in numbers.items():
        found += _customer_recommendations(customer_id, by_family, howto.get(customer_id, 0), settings)
    return found


def _customer_recommendations(
    customer_id: int, by_family: dict[str, FamilyNumbers], howto: int, settings: InsightSettings
) -> list[Recommendation]:
    found = []
    for family, numbers in by_family.items():
        if facts := _low_adoption(numbers, settings):
            found.append(Recommendation(customer_id, Kind.LOW_ADOPTION, family, facts))
    entitled = sum(numbers.entitled for numbers in by_family.values())
    if facts := _support_load(howto, entitled, settings):
        found.append(Recommendation(customer_id, Kind.SUPPORT_LOAD, "", facts))
    for family, numbers in by_family.items():
        if facts := _growth(numbers, settings):
            found.append(Recommendation(customer_id, Kind.GROWTH, family, facts))
    return found


@lru_cache(maxsize=256)
def _exact(threshold: Decimal | int) -> tuple[int, int]:
    """A threshold as the numerator and denominator of an exact fraction (cached: a portfolio's
    evaluation compares thousands of numbers with the same few thresholds)."""
    fraction = Fraction(threshold)
    return fraction.numerator, fraction.denominator


def _pct_below(numerator: int, denominator: int, threshold: Decimal | int) -> bool:
    """Whether the exact percentage numerator/denominator is below `threshold`, in integers
    (Fraction arithmetic was most of a large portfolio's evaluation). Call with denominator > 0."""
    num, den = _exact(threshold)
    return 100 * numerator * den < num * denominator


def _low_adoption(n: FamilyNumbers, settings: InsightSettings) -> tuple[str, ...]:
    facts = []
    if n.entitled and _pct_below(n.active, n.entitled, settings.low_usage_pct):
        facts.append(
            f"usage {pct(n.active, n.entitled)}% ({n.active} active of {n.entitled} users) "
            f"is below {settings.low_usage_pct}%"
        )
    unused = n.sold - n.assigned
    enough = n.sold and unused >= settings.unused_licenses_min
    if enough and not _pct_below(unused, n.sold, settings.unused_licenses_pct):
        facts.append(
            f"{unused} of {n.sold} licenses unused (at least {settings.unused_licenses_min} "
            f"and {settings.unused_licenses_pct}% of those sold)"
        )
    return tuple(facts)


def _support_load(howto: int, entitled: int, settings: InsightSettings) -> tuple[str, ...]:
    if not entitled or howto < settings.howto_requests_min:
        return ()
    if _pct_below(howto, entitled, settings.howto_per_100_users):
        return ()
    rate = pct(howto, entitled)  # requests per 100 users, as a percentage is per 100
    return (
        f"{howto} how-to requests in the last {WINDOW_DAYS} days: {rate} per 100 entitled users "
        f"(threshold {settings.howto_per_100_users} per 100 and at least {settings.howto_requests_min} requests)",
    )


def _growth(n: FamilyNumbers, settings: InsightSettings) -> tuple[str, ...]:
    if not n.sold or not n.entitled:  # an undefined percentage never triggers a rule
        return ()
    if _pct_below(n.assigned, n.sold, settings.growth_deployment_pct) or _pct_below(
        n.active, n.entitled, settings.growth_usage_pct
    ):
        return ()
    return (
        f"deployment {pct(n.assigned, n.sold)}% (threshold {settings.growth_deployment_pct}%) "
        f"and usage {pct(n.active, n.entitled)}% (threshold {settings.growth_usage_pct}%)",
    )
