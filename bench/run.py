#!/usr/bin/env python3
"""The benchmark: the product's own data path at portfolio scale, against the database's floor.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pi_bench .venv/bin/python bench/run.py --scale S

Generates a dataset with the product's generator, imports it through the product's import path
(COPY on PostgreSQL), then times — as medians of --runs runs — the full recompute of one date,
a 28-day backfill, the pages and the export, and in the same run on the same data the floor (one
hand-written INSERT … SELECT of the SKU grain) and a naive per-customer ORM loop on a sample of
customers (extrapolated, and labelled so). Prints one table and writes it as JSON under
bench/results/. The database named by DATABASE_URL is the benchmark's own: the bench partner is
replaced (use --reuse to keep an imported dataset of the same scale and seed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "partnerinsights.settings")
os.environ.setdefault("DEBUG", "true")


@dataclass(frozen=True)
class Scale:
    name: str
    customers: int
    users: int
    days: int = 35
    export_rows: int = 1_000_000  # the large export's SKU snapshot rows (a portfolio of its own)


SCALES = {
    "XS": Scale("XS", 12, 600, export_rows=1_800),  # the CI smoke test
    "S": Scale("S", 200, 100_000),
    "L": Scale("L", 2_000, 1_000_000),
}
SLUG = "bench"
TODAY = dt.date(2026, 1, 31)  # fixed, so two runs of one scale and seed have the same data
AS_OF = TODAY - dt.timedelta(days=1)


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    note: str = ""
    floor_ratio: float | None = None
    queries: int | None = None


def median_time(action: Callable[[], object], runs: int) -> float:
    """Median wall time of `runs` calls, in seconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, default="S")
    parser.add_argument("--runs", type=int, default=5, help="Runs per timing (the median is reported).")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="Keep the imported dataset if it is already there.")
    parser.add_argument("--output", type=Path, help="The JSON file (default: bench/results/<scale>-<time>.json).")
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.db import connection

    from bench.measure import run_benchmark

    if "bench" not in str(connection.settings_dict["NAME"]):
        parser.error("the benchmark empties its database: point DATABASE_URL at a database named *bench*")

    figures, facts = run_benchmark(scale=SCALES[args.scale], runs=args.runs, seed=args.seed, reuse=args.reuse)
    print_table(figures, facts)
    output = args.output or ROOT / "bench" / "results" / f"{args.scale}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"facts": facts, "figures": [asdict(f) for f in figures]}, indent=2) + "\n")
    print(f"\nWritten to {output}")
    return 0


def machine_facts() -> dict[str, object]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()" if connection.vendor == "postgresql" else "SELECT sqlite_version()")
        version = cursor.fetchone()[0]
    return {
        "python": platform.python_version(),
        "database": f"{connection.vendor} {version.split(' on ')[0]}",
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def print_table(figures: list[Figure], facts: dict[str, object]) -> None:
    print()
    for key, value in facts.items():
        print(f"{key:>22}: {value}")
    print()
    print(f"{'measure':46} {'value':>12} {'unit':8} {'× floor':>8} {'queries':>8}  note")
    print("-" * 110)
    for f in figures:
        ratio = f"{f.floor_ratio:.2f}" if f.floor_ratio is not None else ""
        queries = str(f.queries) if f.queries is not None else ""
        print(f"{f.name:46} {f.value:>12,.3f} {f.unit:8} {ratio:>8} {queries:>8}  {f.note}")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """The process's resident memory now (Linux), in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


class MemoryProbe:
    """Peak Python allocations (tracemalloc) over a block, in MiB."""

    def __enter__(self) -> MemoryProbe:
        tracemalloc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_mib = tracemalloc.get_traced_memory()[1] / 1024**2
        tracemalloc.stop()


def temp_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="bench-")


if __name__ == "__main__":
    sys.exit(main())
