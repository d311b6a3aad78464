"""The embedded serving store: a local Mongo-wire server (SecantusDB) started on demand.

Used only when no ``MONGO_URI`` is configured. The server runs detached so that
the API and later runs can reach it; ``stop_local_mongo`` ends it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from schemas.settings import Settings


class LocalMongoError(RuntimeError):
    pass


def server_binary() -> str:
    """``secantusd-py`` from this interpreter's environment (the ``local`` extra)."""
    candidate = Path(sys.executable).parent / "secantusd-py"
    found = str(candidate) if candidate.exists() else shutil.which("secantusd-py")
    if not found:
        raise LocalMongoError(
            "no MONGO_URI is configured and the local Mongo-wire server is not installed: "
            "pip install 'lakescore[local]' (or set MONGO_URI)"
        )
    return found


def ping(uri: str, *, timeout_ms: int = 500) -> bool:
    client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def start_server(
    *, port: int, storage_path: str, log_path: Path, timeout_s: float = 60.0
) -> subprocess.Popen[bytes]:
    """Start a server process and wait until it answers ``ping``."""
    if storage_path != ":memory:":
        Path(storage_path).mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                server_binary(),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                storage_path,
                "--log-level",
                "WARNING",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    uri = f"mongodb://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalMongoError(
                f"local Mongo-wire server exited with {proc.returncode}; see {log_path}"
            )
        if ping(uri):
            return proc
        time.sleep(0.2)
    proc.kill()
    raise LocalMongoError(f"local Mongo-wire server did not answer on port {port} in {timeout_s}s")


def ensure_local_mongo(settings: Settings) -> str:
    """Return a reachable URI: the configured one, or a local server (started if needed)."""
    if settings.mongo.uri:
        return settings.mongo.uri
    uri = settings.mongo.effective_uri
    if ping(uri):
        return uri
    data = Path(settings.data_dir)
    proc = start_server(
        port=settings.mongo.local_port,
        storage_path=settings.mongo.local_storage_path,
        log_path=data / "logs" / "mongo.log",
    )
    (data / "mongo.pid").write_text(str(proc.pid))
    return uri


def stop_local_mongo(settings: Settings) -> bool:
    pid_file = Path(settings.data_dir) / "mongo.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().strip())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)
    return True
