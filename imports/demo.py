"""Demo data: realistic canonical import files (SPEC §6), written as streams.

The generator writes CSV files and the product imports them through its own import path, so the
demo also exercises the importer. Rows stream to disk: a benchmark-sized run (a million users,
tens of millions of activity rows) needs no more memory than the default one.

Named customers carry every case where usage passes 100% (SPEC §2), with external ids the tests
and the README refer to (`SPECIAL_CUSTOMERS`).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

OFFICE = ("exchange", "sharepoint", "onedrive", "teams", "yammer")
WORKLOADS = {
    "STANDARDPACK": OFFICE,
    "ENTERPRISEPACK": (*OFFICE, "office_apps"),
    "SPB": (*OFFICE, "office_apps"),
    "O365_BUSINESS_PREMIUM": (*OFFICE, "office_apps"),
    "EXCHANGESTANDARD": ("exchange",),
    "DYN365_ENTERPRISE_SALES": ("dynamics365",),
    "POWER_BI_PRO": (),
}
MAIN_SKUS = ("ENTERPRISEPACK", "STANDARDPACK", "SPB", "O365_BUSINESS_PREMIUM")

SPECIAL_CUSTOMERS = {
    "DEMO-TURNOVER": "Turnover Trading Ltd",  # a license moved to a new user inside the window
    "DEMO-GRACE": "Graceful Logistics",  # a second E3 subscription in grace
    "DEMO-DISABLED": "Disabled Dynamics Inc",  # a second E3 subscription disabled
    "DEMO-PREPROVISIONED": "Preprovision Partners",  # a second E3 subscription pre-provisioned
    "DEMO-TRIAL": "Trial & Error GmbH",  # an active trial whose users are active
    "DEMO-YAMMER": "Yammer Heavy Industries",  # many users on Yammer without a license
    "DEMO-HOWTO": "Helpdesk Hungry BV",  # many how-to support requests, low usage
    "DEMO-EMPTY": "Newly Signed Ltd",  # a customer without any data yet
}
NAMES = (
    "Contoso",
    "Fabrikam",
    "Northwind Traders",
    "Adventure Works",
    "Tailspin Toys",
    "Wingtip Toys",
    "Litware",
    "Proseware",
    "Woodgrove Bank",
    "Coho Winery",
    "Alpine Ski House",
    "Blue Yonder Airlines",
    "Fourth Coffee",
    "Lamna Healthcare",
    "Margie's Travel",
    "Relecloud",
    "Trey Research",
    "Wide World Importers",
    "VanArsdel",
    "Humongous Insurance",
    "Lucerne Publishing",
    "Graphic Design Institute",
    "School of Fine Art",
    "Southridge Video",
    "City Power & Light",
    "Consolidated Messenger",
    "Datum Corporation",
    "Bellows College",
    "Müller GmbH",
    "Société Générale d'Exemple",
    "東京 Trading",
    "Øresund Shipping",
    "Zürich Präzision AG",
    "São Paulo Têxtil",
    "Kraków Software",
    "Ångström Labs",
    "Ελληνικά Ναυτιλιακά",
    "Nordlys AS",
)
FILES = ("customers.csv", "subscriptions.csv", "users.csv", "assignments.csv", "activity.csv", "support_requests.csv")
HEADERS = {
    "customers.csv": ("customer_id", "name", "domain"),
    "subscriptions.csv": (
        "subscription_id",
        "customer_id",
        "sku",
        "quantity",
        "status",
        "is_trial",
        "source",
        "start_date",
        "end_date",
    ),
    "users.csv": ("user_id", "customer_id", "upn", "display_name"),
    "assignments.csv": ("user_id", "subscription_id", "assigned_on", "removed_on", "state"),
    "activity.csv": ("user_id", "workload", "date"),
    "support_requests.csv": ("request_id", "customer_id", "opened_on", "category"),
}


@dataclass(frozen=True)
class DemoConfig:
    customers: int = 42
    users: int = 1_800
    days: int = 130
    seed: int = 1
    today: dt.date = field(default_factory=dt.date.today)
    prefix: str = ""  # prefixes every id and name: lets a second partner reuse the same shape

    @property
    def last_day(self) -> dt.date:
        return self.today - dt.timedelta(days=1)

    @property
    def first_day(self) -> dt.date:
        return self.today - dt.timedelta(days=self.days)


@dataclass
class Person:
    user_id: str
    skus: list[str]  # workloads come from these
    activity_rate: float  # chance of being active on a given working day
    first_day: dt.date
    last_day: dt.date
    workloads: tuple[str, ...] = ()


class Writer:
    """One csv.writer per file, counting rows."""

    def __init__(self, folder: Path, stack: ExitStack) -> None:
        self.counts = dict.fromkeys(FILES, 0)
        self._writers = {}
        for name in FILES:
            handle = stack.enter_context((folder / name).open("w", encoding="utf-8", newline=""))
            self._writers[name] = csv.writer(handle, lineterminator="\n")
            self._writers[name].writerow(HEADERS[name])

    def row(self, name: str, *values: object) -> None:
        self._writers[name].writerow(["" if v is None else v for v in values])
        self.counts[name] += 1


def write_demo_files(folder: Path, config: DemoConfig) -> dict[str, int]:
    """Writes the six canonical files of a demo partner into `folder`; returns their row counts."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)  # noqa: S311 (repeatable demo data, not security)
    with ExitStack() as stack:
        out = Writer(folder, stack)
        _Generator(rng, config, out).run()
    return out.counts


class _Generator:
    def __init__(self, rng: random.Random, config: DemoConfig, out: Writer) -> None:
        self.rng, self.config, self.out = rng, config, out
        self.ids: dict[str, int] = {}

    def next_id(self, kind: str) -> str:
        self.ids[kind] = self.ids.get(kind, 0) + 1
        return f"{self.config.prefix}{kind}{self.ids[kind]:06d}"

    def run(self) -> None:
        regular = max(self.config.customers - len(SPECIAL_CUSTOMERS), 1)
        per_customer = self._split_users(regular, max(self.config.users - 170, regular))
        for index, users in enumerate(per_customer):
            self._regular_customer(index, users)
        cases = {
            "DEMO-TURNOVER": self._turnover,
            "DEMO-GRACE": self._grace,
            "DEMO-DISABLED": self._disabled,
            "DEMO-PREPROVISIONED": self._preprovisioned,
            "DEMO-TRIAL": self._trial_case,
            "DEMO-YAMMER": self._yammer,
            "DEMO-HOWTO": self._howto,
            "DEMO-EMPTY": self._empty,
        }
        for external_id, name in SPECIAL_CUSTOMERS.items():
            cases[external_id](self._customer(external_id, name))

    def _split_users(self, customers: int, users: int) -> list[int]:
        """Customer sizes vary a lot (a few large, many small), summing to `users`."""
        weights = [self.rng.paretovariate(1.3) for _ in range(customers)]
        total = sum(weights)
        sizes = [max(3, int(users * w / total)) for w in weights]
        sizes[0] += max(users - sum(sizes), 0)
        return sizes

    def _customer(self, external_id: str, name: str) -> str:
        customer_id = self.config.prefix + external_id
        domain = "".join(c for c in name.lower() if c.isascii() and c.isalnum())[:20] or "customer"
        self.out.row("customers.csv", customer_id, self.config.prefix + name, f"{domain}.example")
        return customer_id

    # Regular customers: adoption from near zero to past 100%.
    def _regular_customer(self, index: int, users: int) -> None:
        rng = self.rng
        name = NAMES[index % len(NAMES)] + (f" {index // len(NAMES) + 1}" if index >= len(NAMES) else "")
        customer_id = self._customer(f"C{index + 1:05d}", name)
        main = rng.choice(MAIN_SKUS)
        adoption = rng.choice([0.03, 0.15, 0.3, 0.45, 0.6, 0.7, 0.8, 0.9, 0.97])
        deployment = rng.choice([0.35, 0.6, 0.8, 0.92, 0.97, 1.0, 1.05])
        seats = max(1, math.ceil(users / deployment))
        end = self._renewal_date() if rng.random() < 0.2 else None
        main_sub = self._subscription(customer_id, main, seats, end=end)
        other_seller = None
        if rng.random() < 0.3:  # part of the seats bought from another partner or directly
            other_seller = self._subscription(
                customer_id, main, max(1, seats // 4), source=rng.choice(["other_partner", "direct"])
            )
        dynamics_users = math.ceil(users * 0.12) if rng.random() < 0.25 else 0
        dynamics = (
            self._subscription(customer_id, "DYN365_ENTERPRISE_SALES", math.ceil(dynamics_users / deployment))
            if dynamics_users
            else None
        )
        power_bi = self._subscription(customer_id, "POWER_BI_PRO", max(1, users // 6)) if rng.random() < 0.2 else None
        for number in range(users):
            subscriptions: list[tuple[str, str] | None] = [
                other_seller if other_seller and rng.random() < 0.2 else main_sub
            ]
            if number < dynamics_users:
                subscriptions.append(dynamics)
            if power_bi and rng.random() < 0.15:
                subscriptions.append(power_bi)
            # Adoption is who uses the software at all, not how often: most adopters are
            # active every few days, the others almost never.
            self._person(customer_id, subscriptions, 0.55 if rng.random() < adoption else 0.004)
        if rng.random() < 0.15:
            self._trial(customer_id, main, users=min(5, users), rate=adoption)
        self._support(customer_id, howto=rng.randint(0, 3), other=rng.randint(0, 4))

    def _renewal_date(self) -> dt.date:
        return self.config.today + dt.timedelta(days=self.rng.randint(3, 45))

    def _subscription(
        self,
        customer_id: str,
        sku: str,
        quantity: int,
        *,
        status: str = "active",
        trial: bool = False,
        source: str = "own",
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> tuple[str, str]:
        subscription_id = self.next_id("S")
        start = start or self.config.first_day - dt.timedelta(days=self.rng.randint(30, 700))
        self.out.row(
            "subscriptions.csv",
            subscription_id,
            customer_id,
            sku,
            quantity,
            status,
            "true" if trial else "false",
            source,
            start.isoformat(),
            end.isoformat() if end else None,
        )
        return subscription_id, sku

    def _person(
        self,
        customer_id: str,
        subscriptions: list[tuple[str, str] | None],
        rate: float,
        *,
        assigned_on: dt.date | None = None,
        removed_on: dt.date | None = None,
        state: str = "active",
        active_until: dt.date | None = None,
    ) -> str:
        user_id = self.next_id("U")
        self.out.row(
            "users.csv",
            user_id,
            customer_id,
            f"{user_id.lower()}@{customer_id.lower()}.example",
            f"User {user_id[-6:]}",
        )
        assigned_on = assigned_on or self.config.first_day - dt.timedelta(days=self.rng.randint(1, 400))
        skus = []
        for subscription in subscriptions:
            if subscription is not None:
                subscription_id, sku = subscription
                self.out.row(
                    "assignments.csv",
                    user_id,
                    subscription_id,
                    assigned_on.isoformat(),
                    removed_on.isoformat() if removed_on else None,
                    state,
                )
                skus.append(sku)
        person = Person(user_id, skus, rate, assigned_on, active_until or removed_on or self.config.last_day)
        self._activity(person)
        return user_id

    def _activity(self, person: Person, workloads: tuple[str, ...] | None = None) -> None:
        """Daily activity on the workloads of the person's SKUs, on working days mostly."""
        rng = self.rng
        wanted = workloads or tuple(dict.fromkeys(w for sku in person.skus for w in WORKLOADS[sku]))
        if not wanted or person.activity_rate <= 0:
            return
        # Each person favours some workloads: a stable share of the days per workload.
        shares = {w: rng.uniform(0.3, 1.0) for w in wanted}
        day = max(person.first_day, self.config.first_day)
        while day <= min(person.last_day, self.config.last_day):
            weekday_factor = 1.0 if day.weekday() < 5 else 0.15
            if rng.random() < person.activity_rate * weekday_factor:
                for workload in wanted:
                    if rng.random() < shares[workload]:
                        self.out.row("activity.csv", person.user_id, workload, day.isoformat())
            day += dt.timedelta(days=1)

    def _trial(self, customer_id: str, sku: str, *, users: int, rate: float) -> None:
        end = self.config.today + dt.timedelta(days=self.rng.randint(2, 28))
        trial = self._subscription(
            customer_id, sku, 25, trial=True, end=end, start=self.config.today - dt.timedelta(days=20)
        )
        for _ in range(users):
            self._person(customer_id, [trial], max(rate, 0.6), assigned_on=self.config.today - dt.timedelta(days=20))

    def _support(self, customer_id: str, *, howto: int, other: int, recent: bool = False) -> None:
        span = 27 if recent else self.config.days
        for category in ["howto"] * howto + [self.rng.choice(["incident", "billing", "other"]) for _ in range(other)]:
            opened = self.config.last_day - dt.timedelta(days=self.rng.randint(0, span))
            self.out.row("support_requests.csv", self.next_id("R"), customer_id, opened.isoformat(), category)

    # The named cases of SPEC §2 where usage passes 100%.
    def _turnover(self, customer_id: str) -> None:
        e3 = self._subscription(customer_id, "ENTERPRISEPACK", 6)
        for _ in range(5):
            self._person(customer_id, [e3], 0.9)
        moved_on = self.config.last_day - dt.timedelta(days=10)
        self._person(customer_id, [e3], 0.9, removed_on=moved_on)  # the leaver, active until moved_on
        self._person(customer_id, [e3], 0.9, assigned_on=moved_on)  # the newcomer on the same seat

    def _second_subscription(self, customer_id: str, status: str) -> None:
        active = self._subscription(customer_id, "ENTERPRISEPACK", 10)
        lapsed = self._subscription(customer_id, "ENTERPRISEPACK", 10, status=status)
        for _ in range(8):
            self._person(customer_id, [active], 0.85)
        for _ in range(6):
            self._person(customer_id, [lapsed], 0.85)

    def _grace(self, customer_id: str) -> None:
        self._second_subscription(customer_id, "grace")

    def _disabled(self, customer_id: str) -> None:
        self._second_subscription(customer_id, "disabled")

    def _preprovisioned(self, customer_id: str) -> None:
        self._second_subscription(customer_id, "preprovisioned")

    def _trial_case(self, customer_id: str) -> None:
        spb = self._subscription(customer_id, "SPB", 5)
        for _ in range(4):
            self._person(customer_id, [spb], 0.8)
        self._trial(customer_id, "SPB", users=8, rate=0.85)

    def _yammer(self, customer_id: str) -> None:
        e1 = self._subscription(customer_id, "STANDARDPACK", 12)
        for _ in range(10):
            self._person(customer_id, [e1], 0.7)
        for _ in range(40):  # no license at all: Yammer is free for the whole organisation
            user_id = self._person(customer_id, [], 0)
            self._activity(Person(user_id, [], 0.8, self.config.first_day, self.config.last_day), ("yammer",))

    def _howto(self, customer_id: str) -> None:
        e3 = self._subscription(customer_id, "ENTERPRISEPACK", 40)
        for _ in range(30):
            self._person(customer_id, [e3], 0.12)
        self._support(customer_id, howto=12, other=2, recent=True)

    def _empty(self, customer_id: str) -> None:
        """Signed, nothing imported yet: listed with no numbers."""
