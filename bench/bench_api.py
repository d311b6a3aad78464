"""Lookup API speed against its baselines, measured in the same run (``python -m bench api``).

Servers: a SecantusDB (in-memory) seeded with ``CUSTOMERS`` documents; the API twice (read
cache off, then on) and a FastAPI endpoint returning a constant, each in its own uvicorn
process. Load comes from a separate process (``python -m bench.bench_api load ...``): a
keep-alive HTTP/1.1 client on raw asyncio sockets, or the bare async pymongo driver for the
baselines, so the subject and its baseline pay the same client costs. ``wrk`` is not used
even when installed: its C client would make the HTTP side look cheaper than the Python
driver baseline it is compared with.

Reported: p50/p99 latency and requests/s; ratios against bare ``find_one`` at the same
concurrency (single lookups), one bare ``$in`` for the same 100 ids (batch), and the
constant endpoint (cold start, cache hits).

Two references at 1 connection say what the target can be there: the constant endpoint
(the cost of the HTTP hop alone) and a bare ASGI callable that does one ``find_one`` per
request and nothing else (``raw_find_one_app``: the least any HTTP API over the driver
can cost, on the same client, server and machine). They are extra rows; no baseline
changed.

Only some groups of cells: ``python -m bench.bench_api --cells coldstart,single1`` (or
``LAKESCORE_BENCH_API_CELLS=coldstart python -m bench api``); each group keeps its
baselines, and a partial run writes ``results/api-<groups>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Measurement, Report

CUSTOMERS = 20_000
DURATION_S = float(os.environ.get("LAKESCORE_BENCH_API_SECONDS", "6"))
WARMUP_S = 1.5
REPEATS = int(os.environ.get("LAKESCORE_BENCH_API_REPEATS", "2"))
KEY = "bench-key-0123456789"
DATABASE = "bench_api"
REPO = Path(__file__).resolve().parents[1]
# Groups of cells (``--cells a,b`` or ``LAKESCORE_BENCH_API_CELLS=a,b``; default: all). A group
# is a subject and its baselines, measured in turns, so its ratios stay meaningful alone.
CELL_GROUPS = ("single1", "single16", "single64", "batch1", "batch16", "coldstart", "servedlog")
_SERVERS_OF = {
    "single1": {"api", "cached", "constant", "raw"},
    "single16": {"api", "cached"},
    "single64": {"api", "cached"},
    "batch1": {"api", "cached"},
    "batch16": {"api", "cached"},
    "coldstart": {"api", "cached", "constant"},
    "servedlog": {"cached", "cached_log"},
}


def constant_app() -> Any:
    """The floor: FastAPI answering a constant JSON body (``--factory``)."""
    from fastapi import FastAPI, Response

    app = FastAPI()
    body = b'{"customer_id":"C1","known":true,"degraded":false,"predictions":[]}'

    @app.get("/constant")
    async def constant() -> Response:
        return Response(body, media_type="application/json")

    @app.post("/constant")
    async def constant_post() -> Response:
        return Response(body, media_type="application/json")

    return app


def raw_find_one_app() -> Any:
    """A reference, not a target: the least any HTTP API over the driver can cost. A bare ASGI
    callable (no framework, no checks) answering ``GET /raw/{id}`` with one ``find_one``
    (``--factory``). Its ratio to bare ``find_one`` at 1 connection is the ceiling of that
    ratio for the real API, whose answers cross the same extra HTTP hop."""
    from pymongo import AsyncMongoClient

    state: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(os.environ["MONGO_URI"])
                state["client"] = client
                state["coll"] = client[DATABASE]["predictions"]
                await send({"type": "lifespan.startup.complete"})
            await state["client"].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b"{}"
        if scope["path"].startswith("/raw/"):
            doc = await state["coll"].find_one({"_id": scope["path"][5:]})
            body = json.dumps({"score": (doc or {}).get("models", {})}, default=str).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


# ---------------------------------------------------------------- load generator (own process)


def _http_requests(args: argparse.Namespace) -> list[bytes]:
    spec = json.loads(Path(args.requests).read_text())
    out = []
    for item in spec:
        body = item.get("body")
        head = f"{item['method']} {item['path']} HTTP/1.1\r\nHost: bench\r\nX-API-Key: {KEY}\r\n"
        if body is None:
            out.append((head + "\r\n").encode())
        else:
            raw = json.dumps(body).encode()
            head += f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
            out.append(head.encode() + raw)
    return out


async def _http_worker(
    host: str, port: int, reqs: list[bytes], start: float, stop: float, out: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = random.randrange(len(reqs))
    while (now := time.perf_counter()) < stop:
        t0 = now
        writer.write(reqs[i % len(reqs)])
        i += 1
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"content-length:")
        length = int(lower[at + 15 : lower.find(b"\r\n", at)]) if at >= 0 else 0
        await reader.readexactly(length)
        if t0 >= start:
            out["lat"].append(time.perf_counter() - t0)
            out["status"][status] = out["status"].get(status, 0) + 1
    writer.close()


async def _mongo_worker(
    coll: Any, kind: str, ids: list[str], start: float, stop: float, out: dict[str, Any]
) -> None:
    while (now := time.perf_counter()) < stop:
        t0 = now
        if kind == "find_one":
            await coll.find_one({"_id": random.choice(ids)})
        else:
            await coll.find({"_id": {"$in": ids}}, batch_size=len(ids)).to_list()
        if t0 >= start:
            out["lat"].append(time.perf_counter() - t0)
            out["status"][200] = out["status"].get(200, 0) + 1


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"lat": [], "status": {}}
    t0 = time.perf_counter()
    start, stop = t0 + args.warmup, t0 + args.warmup + args.duration
    if args.kind == "http":
        reqs = _http_requests(args)
        host, port = args.target.rsplit(":", 1)
        tasks = [_http_worker(host, int(port), reqs, start, stop, out) for _ in range(args.conns)]
        await asyncio.gather(*tasks)
    else:
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            args.target, maxPoolSize=max(args.conns, 1)
        )
        coll = client[DATABASE]["predictions"]
        ids = json.loads(Path(args.requests).read_text())
        tasks = [_mongo_worker(coll, args.kind, ids, start, stop, out) for _ in range(args.conns)]
        await asyncio.gather(*tasks)
        await client.close()
    return out


def load_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["http", "find_one", "in"], required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--requests", required=True)
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--duration", type=float, default=DURATION_S)
    parser.add_argument("--warmup", type=float, default=WARMUP_S)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out = asyncio.run(_load(args))
    import numpy as np

    lat = np.asarray(out["lat"]) * 1000
    print(
        json.dumps(
            {
                "requests": len(lat),
                "seconds": args.duration,
                "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
                "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
                "status": out["status"],
            }
        )
    )


# ---------------------------------------------------------------- orchestration


def _run_load(kind: str, target: str, requests: Any, conns: int, tmp: Path) -> dict[str, Any]:
    spec = tmp / f"req-{random.randrange(10**9)}.json"
    spec.write_text(json.dumps(requests))
    cmd = [sys.executable, "-m", "bench.bench_api", "load", "--kind", kind, "--target", target]
    cmd += ["--requests", str(spec), "--conns", str(conns)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _start_uvicorn(
    target: str, env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    from tests.conftest import free_port

    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log", "--log-level", "warning"],
            cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{url}/healthz", timeout=2).status_code in (200, 404):
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{target} did not start; see {log}")


def _api_env(tmp: Path, mongo_uri: str, tracking_uri: str, *, cache: int) -> dict[str, str]:
    from tests.api.helpers import sha

    return {
        "MONGO_URI": mongo_uri,
        "LAKESCORE_MONGO__DATABASE": DATABASE,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "LAKESCORE_MLFLOW__TRACKING_URI": tracking_uri,
        "LAKESCORE_API__API_KEY_SHA256": json.dumps([sha(KEY)]),
        "LAKESCORE_API__MODEL_CACHE_DIR": str(tmp / "model-cache"),
        "LAKESCORE_API__CACHE_MAX_ENTRIES": str(cache),
        "LAKESCORE_API__MAX_CONCURRENCY": "1024",
        "LAKESCORE_API__SHED_AFTER_MS": "0",
        # The bare driver has no deadline; on this shared 2-core box a 250 ms budget times
        # out (and reconnects) under 64 connections, which measures the box, not the API.
        "LAKESCORE_API__STORE_TIMEOUT_MS": "2000",
    }


def selected_cells(argv: list[str] | None = None) -> tuple[str, ...]:
    """The cell groups to run: ``--cells`` (or ``LAKESCORE_BENCH_API_CELLS``), else all."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_api")
    parser.add_argument(
        "--cells",
        default=os.environ.get("LAKESCORE_BENCH_API_CELLS", ""),
        help=f"comma-separated groups of {', '.join(CELL_GROUPS)} (default: all)",
    )
    raw = parser.parse_args(argv or []).cells
    chosen = [c.strip() for c in raw.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CELL_GROUPS]
    if unknown:
        parser.error(f"unknown cell groups {unknown}; choose from {', '.join(CELL_GROUPS)}")
    return tuple(c for c in CELL_GROUPS if c in chosen) if chosen else CELL_GROUPS


def main(argv: list[str] | None = None) -> None:
    from jobs.platform.local_mongo import start_server
    from tests.api.helpers import register_coldstart, seed_mongo
    from tests.conftest import free_port

    cells = selected_cells(argv)
    needed = set().union(*(_SERVERS_OF[c] for c in cells))
    # A partial run saves beside the full one (``api-coldstart.json``), never over it.
    report = Report(benchmark="api" if cells == CELL_GROUPS else "api-" + "-".join(cells))
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    port = free_port()
    mongo = start_server(port=port, storage_path=":memory:", log_path=tmp / "mongo.log")
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        mongo_uri = f"mongodb://127.0.0.1:{port}/"
        docs = seed_mongo(mongo_uri, database=DATABASE, n=CUSTOMERS)
        ids = list(docs)
        tracking = f"sqlite:///{tmp}/mlflow.db"
        register_coldstart(tracking_uri=tracking, artifact_root=tmp / "art", seed=1, workdir=tmp)
        servers = {}
        for name, target, env in (
            ("api", "api.main:create_app", _api_env(tmp, mongo_uri, tracking, cache=0)),
            ("cached", "api.main:create_app", _api_env(tmp, mongo_uri, tracking, cache=10**6)),
            (
                "cached_log",
                "api.main:create_app",
                {
                    **_api_env(tmp, mongo_uri, tracking, cache=10**6),
                    "LAKESCORE_API__SERVED_LOG": "true",
                    "LAKESCORE_LAKE__ROOT": str(tmp / "lake"),
                },
            ),
            ("constant", "bench.bench_api:constant_app", {}),
            ("raw", "bench.bench_api:raw_find_one_app", {"MONGO_URI": mongo_uri}),
        ):
            if name not in needed:
                continue
            proc, url = _start_uvicorn(target, env, tmp / f"{name}.log")
            procs.append(proc)
            servers[name] = url
        rng = random.Random(7)
        single = [{"method": "GET", "path": f"/v1/customers/{c}/predictions?model=purchase_30d"} for c in rng.sample(ids, 2000)]  # fmt: skip
        batch_ids = rng.sample(ids, 100)
        batch = [{"method": "POST", "path": "/v1/predictions/batch", "body": {"customer_ids": batch_ids}}]  # fmt: skip
        contexts = [
            {"country": rng.choice(["US", "DE", "FR"]), "channel": rng.choice(["web", "app"]),
             "days_since_signup": rng.randrange(0, 400), "first_order_amount": rng.uniform(5, 300)}
            for _ in range(500)
        ]  # fmt: skip
        cold = [{"method": "POST", "path": f"/v1/customers/NEW{i}/coldstart", "body": {"context": c}} for i, c in enumerate(contexts)]  # fmt: skip
        const_get = [{"method": "GET", "path": "/constant"}]
        const_post = [{"method": "POST", "path": "/constant", "body": {"context": contexts[0]}}]

        Spec = tuple[str, str, str, Any, int]  # label, kind, target, requests, connections

        def group(*specs: Spec) -> list[dict[str, Any]]:
            """Best of ``REPEATS`` per row, the rows of a group taken in turns (A B C A B C).

            This machine is shared and noisy: the best run is the least disturbed one, for
            the subject and its baseline alike. Taking the runs of a subject and of its
            baselines in turns (rather than all runs of one, then all of the other) gives
            them the same exposure to the machine's slow and busy spells."""
            runs: list[list[dict[str, Any]]] = [[] for _ in specs]
            for _ in range(REPEATS):
                for i, (_label, kind, target, reqs, conns) in enumerate(specs):
                    runs[i].append(_run_load(kind, target, reqs, conns, tmp))
            best = []
            for (label, *_), results in zip(specs, runs, strict=True):
                result = max(results, key=lambda r: r["requests"])
                rows.append((label, result))
                report.add(Measurement(name=label, seconds=result["seconds"], rows=result["requests"]))  # fmt: skip
                print(f"  {label:<44} {result['requests'] / result['seconds']:8.0f} req/s  "
                      f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  {result['status']}", flush=True)  # fmt: skip
                best.append(result)
            return best

        single_ids = [r["path"].split("/")[3] for r in single]
        _warm(servers["cached"], [*single_ids, *batch_ids])
        if "cached_log" in servers:
            _warm(servers["cached_log"], [*single_ids, *batch_ids])
        bare_ids = single_ids
        raw = [{"method": "GET", "path": f"/raw/{c}"} for c in single_ids]
        if "single1" in cells:
            # At 1 connection, two references: the HTTP hop alone (constant), and the least
            # any HTTP API over the driver costs (raw ASGI + find_one).
            drv, const1, raw1, api, hit = group(
                ("bare find_one c1", "find_one", mongo_uri, bare_ids, 1),
                ("constant GET c1", "http", servers["constant"], const_get, 1),
                ("raw ASGI + find_one c1 (reference)", "http", servers["raw"], raw, 1),
                ("api single (no cache) c1", "http", servers["api"], single, 1),
                ("api single (cache hits) c1", "http", servers["cached"], single, 1),
            )
            _ratios(report, "single c1 vs bare find_one", api, drv)
            _ratios(report, "single cache-hit c1 vs bare find_one", hit, drv)
            _ratios(report, "raw ASGI + find_one c1 vs bare find_one", raw1, drv)
            _ratios(report, "single c1 vs raw ASGI + find_one", api, raw1)
            _ratios(report, "single cache-hit c1 vs constant GET c1", hit, const1)
        for conns in (16, 64):
            if f"single{conns}" not in cells:
                continue
            drv, api, hit = group(
                (f"bare find_one c{conns}", "find_one", mongo_uri, bare_ids, conns),
                (f"api single (no cache) c{conns}", "http", servers["api"], single, conns),
                (f"api single (cache hits) c{conns}", "http", servers["cached"], single, conns),
            )
            _ratios(report, f"single c{conns} vs bare find_one", api, drv)
            _ratios(report, f"single cache-hit c{conns} vs bare find_one", hit, drv)
        for conns in (1, 16):
            if f"batch{conns}" not in cells:
                continue
            bare_in, api_b, hit_b = group(
                (f"bare $in 100 ids c{conns}", "in", mongo_uri, batch_ids, conns),
                (f"api batch 100 (no cache) c{conns}", "http", servers["api"], batch, conns),
                (f"api batch 100 (cache hits) c{conns}", "http", servers["cached"], batch, conns),
            )
            _ratios(report, f"batch100 c{conns} vs bare $in", api_b, bare_in)
            _ratios(report, f"batch100 cache-hit c{conns} vs bare $in", hit_b, bare_in)
        if "coldstart" in cells:
            const, const_p, hit16, cold_nc, cold_hit = group(
                ("constant GET c16", "http", servers["constant"], const_get, 16),
                ("constant POST c16", "http", servers["constant"], const_post, 16),
                ("api single (cache hits) c16, again", "http", servers["cached"], single, 16),
                ("api coldstart (no cache) c16", "http", servers["api"], cold, 16),
                ("api coldstart (cache hits) c16", "http", servers["cached"], cold, 16),
            )
            _ratios(report, "single cache-hit c16 vs constant", hit16, const)
            _ratios(report, "coldstart c16 vs constant POST", cold_nc, const_p)
            _ratios(report, "coldstart cache-hit c16 vs constant POST", cold_hit, const_p)
        if "servedlog" in cells:
            # Every answer to monitoring.served (api.served_log) against the same server
            # without it: cache hits, where the log's share of the cost is largest.
            off, on, batch_off, batch_on = group(
                ("api single (cache hits) c16, served log off", "http", servers["cached"], single, 16),
                ("api single (cache hits) c16, served log on", "http", servers["cached_log"], single, 16),
                ("api batch 100 (cache hits) c16, served log off", "http", servers["cached"], batch, 16),
                ("api batch 100 (cache hits) c16, served log on", "http", servers["cached_log"], batch, 16),
            )  # fmt: skip
            _ratios(report, "single cache-hit c16 served log on vs off (target >= 0.9)", on, off)
            _ratios(report, "batch100 cache-hit c16 served log on vs off (target >= 0.9)", batch_on, batch_off)  # fmt: skip
        report.notes["latency_ms"] = {label: {k: r[k] for k in ("p50_ms", "p99_ms", "status")} for label, r in rows}  # fmt: skip
        report.notes["setup"] = {"customers": CUSTOMERS, "duration_s": DURATION_S, "cpus": os.cpu_count(), "cells": list(cells)}  # fmt: skip
        report.print_and_save()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        os.killpg(mongo.pid, 15)
        mongo.wait(timeout=10)


def _warm(target: str, ids: list[str]) -> None:
    """Fill the read cache of the cached server before its runs are measured."""
    import httpx

    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        resp = httpx.post(
            f"http://{target}/v1/predictions/batch",
            json={"customer_ids": chunk},
            headers={"X-API-Key": KEY},
            timeout=60,
        )
        resp.raise_for_status()


def _ratios(report: Report, label: str, subject: dict[str, Any], base: dict[str, Any]) -> None:
    """Throughput ratio (higher is better) and p99 ratio (lower is better)."""
    report.ratios[f"{label}: throughput"] = (subject["requests"] / subject["seconds"]) / (
        base["requests"] / base["seconds"]
    )
    report.ratios[f"{label}: p99"] = subject["p99_ms"] / base["p99_ms"]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        load_main(sys.argv[2:])
    else:
        main(sys.argv[1:])
