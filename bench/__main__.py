"""``python -m bench [NAME ...]``: run the benchmarks (all by default) and print their ratios."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS: dict[str, str] = {
    "api": "bench.bench_api",
    "sync": "bench.bench_sync",
    "features": "bench.bench_features",
    "contracts": "bench.bench_contracts",
    "scoring": "bench.bench_scoring",
    "quality": "bench.bench_quality",
    "night": "bench.bench_night",
    "sql": "bench.bench_sql",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], default=[])
    args, _ = parser.parse_known_args()  # the rest: the benchmark's own options
    for name in args.names or list(BENCHMARKS):
        importlib.import_module(BENCHMARKS[name]).main()


if __name__ == "__main__":
    main()
