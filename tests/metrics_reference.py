"""A straightforward in-Python implementation of SPEC §2, written from the text independently of
the SQL engine, for comparing the two on random data. Slow on purpose: loops over everything."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from customers.models import Activity, EndUser, LicenseAssignment, Product, Subscription

FAMILIES = {"office365", "dynamics365"}


def reference_metrics(partner, d: dt.date) -> dict[str, dict]:
    w0 = d - dt.timedelta(days=27)
    products = {p.pk: (p.family, set(p.workload_list)) for p in Product.objects.prefetch_related("workloads")}
    subs = list(Subscription.objects.filter(partner=partner))
    sub_by_id = {s.pk: s for s in subs}
    assignments = list(LicenseAssignment.objects.filter(partner=partner))
    activity = defaultdict(set)  # user -> workloads active in the window
    for act in Activity.objects.filter(partner=partner):
        if w0 <= act.activity_date <= d:
            activity[act.user_id].add(act.workload)
    customer_of_user = dict(EndUser.objects.filter(partner=partner).values_list("pk", "customer_id"))

    def counted(s: Subscription) -> bool:
        return (
            s.status == "active"
            and not s.is_trial
            and (s.start_date is None or s.start_date <= d)
            and (s.end_date is None or s.end_date >= d)
        )

    def current(a: LicenseAssignment) -> bool:
        return a.assigned_on <= d and (a.removed_on is None or a.removed_on > d)

    def overlaps(a: LicenseAssignment) -> bool:
        return a.assigned_on <= d and (a.removed_on is None or a.removed_on > w0)

    sku = defaultdict(lambda: {"sold": 0, "own": 0, "assigned": 0, "entitled": set(), "active": set()})
    for s in subs:
        if products[s.product_id][0] in FAMILIES and counted(s):
            row = sku[(s.customer_id, s.product_id)]
            row["sold"] += s.quantity
            row["own"] += s.quantity if s.source == "own" else 0
    for a in assignments:
        s = sub_by_id[a.subscription_id]
        family, workloads = products[s.product_id]
        if family not in FAMILIES:
            continue
        key = (s.customer_id, s.product_id)
        if counted(s) and current(a):
            if a.state in ("active", "suspended"):
                sku[key]["assigned"] += 1
            if a.state == "active":
                sku[key]["entitled"].add(a.user_id)
        if overlaps(a) and activity[a.user_id] & workloads:
            sku[key]["active"].add(a.user_id)

    family = defaultdict(lambda: {"sold": 0, "own": 0, "assigned": 0, "entitled": set(), "active": set()})
    for (customer, product), row in sku.items():
        f = family[(customer, products[product][0])]
        for k in ("sold", "own", "assigned"):
            f[k] += row[k]
        f["entitled"] |= row["entitled"]
        f["active"] |= row["active"]

    workload = defaultdict(lambda: {"entitled": set(), "active": set()})
    for a in assignments:
        s = sub_by_id[a.subscription_id]
        fam, workloads = products[s.product_id]
        if fam not in FAMILIES:
            continue
        for wl in workloads:
            if a.state == "active" and current(a) and counted(s):
                workload[(s.customer_id, wl)]["entitled"].add(a.user_id)
            if wl != "yammer" and overlaps(a) and wl in activity[a.user_id]:
                workload[(s.customer_id, wl)]["active"].add(a.user_id)
    for user, workloads in activity.items():
        if "yammer" in workloads:
            workload[(customer_of_user[user], "yammer")]["active"].add(user)

    def counts(row: dict) -> tuple:
        return (row["sold"], row["own"], row["assigned"], len(row["entitled"]), len(row["active"]))

    result_sku = {k: counts(v) for k, v in sku.items() if any(counts(v))}
    result_family = {k: counts(v) for k, v in family.items() if any(counts(v))}
    result_workload = {
        k: (len(v["entitled"]), len(v["active"])) for k, v in workload.items() if v["entitled"] or v["active"]
    }
    portfolio = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for (_, fam), numbers in result_family.items():
        total = portfolio[fam]
        for i, n in enumerate(numbers):
            total[i] += n
        total[5] += 1
    return {
        "sku": result_sku,
        "family": result_family,
        "workload": result_workload,
        "portfolio": {k: tuple(v) for k, v in portfolio.items()},
    }


def stored_metrics(partner, d: dt.date) -> dict[str, dict]:
    """The engine's snapshots of one date, in the reference's shape."""
    from metrics.models import FamilySnapshot, PortfolioSnapshot, SkuSnapshot, WorkloadSnapshot

    licenses = ("sold_licenses", "own_sold_licenses", "assigned_licenses", "entitled_users", "active_users")

    def rows(model, key):
        return {
            tuple(r[: len(key)]): tuple(r[len(key) :])
            for r in model.objects.filter(partner=partner, as_of=d).values_list(*key, *licenses)
        }

    return {
        "sku": rows(SkuSnapshot, ("customer_id", "product_id")),
        "family": rows(FamilySnapshot, ("customer_id", "family")),
        "workload": {
            (c, w): (e, a)
            for c, w, e, a in WorkloadSnapshot.objects.filter(partner=partner, as_of=d).values_list(
                "customer_id", "workload", "entitled_users", "active_users"
            )
        },
        "portfolio": {
            f: tuple(rest)
            for f, *rest in PortfolioSnapshot.objects.filter(partner=partner, as_of=d).values_list(
                "family", *licenses, "customers"
            )
        },
    }


def reference_inactive(partner, d: dt.date, days: int) -> dict[int, tuple[int, Decimal | None]]:
    """SPEC §8 from the text: per customer, the users entitled at `d` on SKUs not excluded from
    alerts whose last activity on a workload of those SKUs, up to `d`, is before d-days+1 (or
    never), and the sum of those SKUs' unit prices over them (None when none has a price)."""
    from metrics.models import SkuSetting

    settings = {s.sku: s for s in SkuSetting.objects.filter(partner=partner)}
    products = {p.pk: p for p in Product.objects.prefetch_related("workloads")}
    held = defaultdict(set)  # (customer, user) -> alerted SKUs entitled at d
    for a in LicenseAssignment.objects.filter(partner=partner).select_related("subscription"):
        s, product = a.subscription, products[a.subscription.product_id]
        counted = (
            s.status == "active"
            and not s.is_trial
            and (s.start_date is None or s.start_date <= d)
            and (s.end_date is None or s.end_date >= d)
        )
        current = a.assigned_on <= d and (a.removed_on is None or a.removed_on > d)
        excluded = product.sku in settings and settings[product.sku].excluded
        if product.family in FAMILIES and counted and current and a.state == "active" and not excluded:
            held[(s.customer_id, a.user_id)].add(product)
    last_seen = defaultdict(lambda: dt.date.min)  # (user, workload) -> last activity up to d
    for act in Activity.objects.filter(partner=partner, activity_date__lte=d):
        last_seen[(act.user_id, act.workload)] = max(last_seen[(act.user_id, act.workload)], act.activity_date)
    since = d - dt.timedelta(days=days - 1)
    result: dict[int, list] = defaultdict(lambda: [0, None])
    for (customer, user), skus in held.items():
        workloads = {w for product in skus for w in product.workload_list}
        if all(last_seen[(user, w)] < since for w in workloads):
            row = result[customer]
            row[0] += 1
            for product in skus:
                price = settings[product.sku].monthly_price if product.sku in settings else None
                if price is not None:
                    row[1] = (row[1] or Decimal(0)) + price
    return {customer: (count, cost) for customer, (count, cost) in result.items()}
