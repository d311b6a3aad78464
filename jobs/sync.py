"""Sync ``predictions.current`` into the serving store (MongoDB).

Build and swap: write every document into a fresh build collection, verify it,
then rename it over the live collection in one step (``dropTarget``), so that
readers never see a half-built collection. The synced Delta version (the
watermark) is recorded only after the swap succeeded, so a crash at any point
followed by a re-run converges to exactly the Delta state.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pymongo.database import Database
from pyspark.sql import SparkSession

from jobs.lake import read_table, table_version
from jobs.mongo import mongo_client, serving_db
from schemas.serving import PRIORS_COLLECTION_SUFFIX, SYNC_STATE_COLLECTION
from schemas.settings import Settings
from schemas.tables import PREDICTIONS_CURRENT


class SyncError(RuntimeError):
    """The sync stopped; the live collection and the watermark are unchanged."""


@dataclass(frozen=True, kw_only=True)
class SyncResult:
    mode: str
    delta_version: int
    documents: int
    verified_sample: int
    mismatches: list[str] = field(default_factory=list)


def documents_from_current(frame: pd.DataFrame, *, delta_version: int) -> Iterator[dict[str, Any]]:
    """One document per customer, each model's latest prediction under ``models``."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    frame = frame.sort_values(["customer_id", "model_name"], kind="stable")
    doc: dict[str, Any] | None = None
    for row in frame.itertuples(index=False):
        if doc is None or doc["_id"] != row.customer_id:
            if doc is not None:
                yield doc
            doc = {
                "_id": row.customer_id,
                "models": {},
                "delta_version": delta_version,
                "synced_at": now,
            }
        doc["models"][row.model_name] = {
            "score": float(row.score),
            "model_version": str(row.model_version),
            "score_date": pd.Timestamp(row.score_date).date().isoformat(),
            "scored_at": pd.Timestamp(row.scored_at).to_pydatetime(),
        }
    if doc is not None:
        yield doc


def sync_full(spark: SparkSession, settings: Settings, *, sample_size: int = 200) -> SyncResult:
    """Build a new collection from the current Delta state and swap it in atomically."""
    version = table_version(spark, settings, PREDICTIONS_CURRENT)
    frame: pd.DataFrame = read_table(
        spark, settings, PREDICTIONS_CURRENT, version=version
    ).toPandas()
    client = mongo_client(settings)
    try:
        db = serving_db(client, settings)
        name = settings.mongo.collection
        build = db[f"{name}__build"]
        build.drop()
        batch: list[dict[str, Any]] = []
        written = 0
        for doc in documents_from_current(frame, delta_version=version):
            batch.append(doc)
            if len(batch) >= settings.mongo.batch_size:
                written += _insert_batch(build, batch, first=written)
                batch = []
        if batch:
            written += _insert_batch(build, batch, first=written)
        mismatches = verify(db, collection=build.name, frame=frame, sample_size=sample_size)
        if build.count_documents({}) != frame["customer_id"].nunique() or mismatches:
            raise SyncError(
                f"verification of {build.name} failed: {len(mismatches)} mismatches "
                f"({'; '.join(mismatches[:3])})"
            )
        if written:
            client.admin.command(
                "renameCollection",
                f"{db.name}.{build.name}",
                to=f"{db.name}.{name}",
                dropTarget=True,
            )
        _write_priors(db, settings, frame=frame, delta_version=version)
        db[SYNC_STATE_COLLECTION].replace_one(
            {"_id": name},
            {
                "_id": name,
                "delta_version": version,
                "documents": written,
                "mode": "full",
                "synced_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            },
            upsert=True,
        )
    finally:
        client.close()
    return SyncResult(
        mode="full",
        delta_version=version,
        documents=written,
        verified_sample=min(sample_size, written),
    )


def synced_version(settings: Settings) -> int | None:
    client = mongo_client(settings)
    try:
        state = serving_db(client, settings)[SYNC_STATE_COLLECTION].find_one(
            {"_id": settings.mongo.collection}
        )
        return None if state is None else int(state["delta_version"])
    finally:
        client.close()


def verify(db: Database, *, collection: str, frame: pd.DataFrame, sample_size: int) -> list[str]:
    """Compare a random sample of documents with the Delta rows, field by field."""
    if frame.empty:
        return []
    ids = frame["customer_id"].drop_duplicates().tolist()
    sample = random.Random(0).sample(ids, min(sample_size, len(ids)))
    expected = frame[frame["customer_id"].isin(sample)]
    docs = {d["_id"]: d for d in db[collection].find({"_id": {"$in": sample}})}
    problems: list[str] = []
    for row in expected.itertuples(index=False):
        doc = docs.get(row.customer_id)
        got = None if doc is None else doc["models"].get(row.model_name)
        if got is None:
            problems.append(f"{row.customer_id}/{row.model_name}: missing")
        elif abs(got["score"] - float(row.score)) > 1e-12 or got["model_version"] != str(
            row.model_version
        ):
            problems.append(f"{row.customer_id}/{row.model_name}: differs")
    return problems


def _insert_batch(collection: Any, batch: list[dict[str, Any]], *, first: int) -> int:
    from pymongo.errors import PyMongoError

    try:
        collection.insert_many(batch, ordered=False)
    except PyMongoError as exc:
        raise SyncError(
            f"writing documents {first}..{first + len(batch) - 1} to {collection.name} failed: {exc}"
        ) from exc
    return len(batch)


def _write_priors(
    db: Database, settings: Settings, *, frame: pd.DataFrame, delta_version: int
) -> None:
    """The population prior per model (mean score): the answer for customers without a score."""
    priors = db[settings.mongo.collection + PRIORS_COLLECTION_SUFFIX]
    for model_name, group in frame.groupby("model_name"):
        priors.replace_one(
            {"_id": model_name},
            {
                "_id": model_name,
                "prior": float(group["score"].mean()),
                "model_version": str(group["model_version"].mode().iloc[0]),
                "delta_version": delta_version,
            },
            upsert=True,
        )
