"""``python -m jobs.sync [--mode auto|full|incremental] [--batch-size N]``: the sync alone."""

from __future__ import annotations

import argparse
import logging

from jobs.platform import ensure_local_mongo, get_spark
from jobs.sync.run import sync
from schemas.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Sync predictions.current into MongoDB.")
    parser.add_argument("--mode", choices=["auto", "full", "incremental"], default="auto")
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO)
    settings = get_settings()
    ensure_local_mongo(settings)
    print(sync(get_spark(settings), settings, mode=args.mode, batch_size=args.batch_size))


if __name__ == "__main__":
    main()
