"""Opening the serving store from batch jobs (settings decide URI, timeouts, write concern)."""

from __future__ import annotations

from pymongo import MongoClient, WriteConcern
from pymongo.database import Database

from schemas.settings import Settings


def mongo_client(settings: Settings, *, uri: str | None = None) -> MongoClient:
    cfg = settings.mongo
    return MongoClient(
        uri or cfg.effective_uri,
        serverSelectionTimeoutMS=cfg.server_selection_timeout_ms,
        socketTimeoutMS=cfg.socket_timeout_ms,
        connectTimeoutMS=cfg.server_selection_timeout_ms,
    )


def serving_db(client: MongoClient, settings: Settings) -> Database:
    return client.get_database(
        settings.mongo.database, write_concern=WriteConcern(w=settings.mongo.write_concern_w)
    )
