"""The benchmark's smallest scale runs end to end, so it never rots (no timing is asserted:
the figures are the benchmark's business, recorded in the README)."""

from __future__ import annotations

import pytest

from bench.measure import run_benchmark
from bench.run import SCALES
from customers.models import Customer
from metrics.models import SkuSnapshot


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_benchmark_runs_at_its_smallest_scale():
    figures, facts = run_benchmark(scale=SCALES["XS"], runs=1, seed=3, reuse=False)
    names = [figure.name for figure in figures]
    assert names[0].startswith("floor")
    assert {"recompute one date, every grain", "28-day backfill", "page: customer list"} <= set(names)
    assert all(figure.value >= 0 for figure in figures)
    assert next(f for f in figures if f.name.startswith("recompute")).floor_ratio > 0
    assert all(f.queries for f in figures if f.name.startswith("page"))
    large = next(f for f in figures if f.name == "portfolio CSV export, SKU grain")
    assert large.note == f"{SCALES['XS'].export_rows:,} rows streamed"
    assert (
        facts["customers"] == Customer.objects.exclude(partner__slug="bench-export").count() == SCALES["XS"].customers
    )
    assert SkuSnapshot.objects.exists()
