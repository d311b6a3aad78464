"""Shared helpers: timing, ratios against named baselines, JSON results under bench/results/."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(kw_only=True)
class Measurement:
    name: str
    seconds: float
    rows: int

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass(kw_only=True)
class Report:
    benchmark: str
    measurements: list[Measurement] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, m: Measurement) -> Measurement:
        self.measurements.append(m)
        return m

    def ratio(self, label: str, subject: Measurement, baseline: Measurement) -> float:
        """Throughput of ``subject`` relative to ``baseline`` (1.0 = as fast)."""
        value = subject.rows_per_s / baseline.rows_per_s
        self.ratios[label] = value
        return value

    def print_and_save(self) -> Path:
        print(f"\n== {self.benchmark} ==")
        for m in self.measurements:
            print(f"  {m.name:<40} {m.seconds:8.3f} s  {m.rows_per_s:12,.0f} rows/s")
        for label, value in self.ratios.items():
            print(f"  ratio {label:<50} {value:6.2f}x")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.benchmark}.json"
        payload = {
            "benchmark": self.benchmark,
            "measurements": [{**asdict(m), "rows_per_s": m.rows_per_s} for m in self.measurements],
            "ratios": self.ratios,
            "notes": self.notes,
        }
        path.write_text(json.dumps(payload, indent=2, default=str))
        return path


def timed(name: str, rows: int, fn: Callable[[], Any], *, repeat: int = 1) -> Measurement:
    """Best of ``repeat`` runs (the least disturbed by the noisy machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return Measurement(name=name, seconds=best, rows=rows)
