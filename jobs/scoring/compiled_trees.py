"""LightGBM models compiled to native code for nightly scoring, with LightGBM as the fallback.

``Booster.predict`` walks every tree through generic C++ code. lleaves compiles each
tree of a model into straight-line machine code (LLVM, through llvmlite) and scores
the same model about ten times faster on the same core, equal to ``Booster.predict``
up to floating-point rounding (differences of about 1e-16 on probabilities).

Compiling takes seconds per hundred trees, so the object code is cached on local disk
(``scoring.compiled_cache_dir``) under a key made of the model text, the compiler
versions and the host CPU: the first night of a champion pays for it, the others load
it in milliseconds. The driver compiles before the scoring job starts; an executor on
another host compiles once for its own CPU (a file lock keeps its tasks from
compiling twice; the file appears atomically, so no task reads half of it).

Whatever goes wrong (lleaves or llvmlite missing, an objective lleaves does not know,
a compiled model that disagrees with LightGBM on the probe rows), scoring falls back
to ``Booster.predict``: a slower night, never a failed or a wrong one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np

log = logging.getLogger(__name__)

# A compiled model must match LightGBM on the probe rows within this absolute tolerance.
PROBE_TOLERANCE = 1e-9
PROBE_ROWS = 256


class Predictor(Protocol):
    @property
    def kind(self) -> str: ...  # "compiled" or "lightgbm"

    def predict(self, matrix: np.ndarray, *, num_threads: int) -> np.ndarray: ...


@dataclass(frozen=True)
class BoosterPredictor:
    booster: lgb.Booster
    kind: str = "lightgbm"

    def predict(self, matrix: np.ndarray, *, num_threads: int) -> np.ndarray:
        return np.asarray(self.booster.predict(matrix, num_threads=num_threads))


@dataclass(frozen=True)
class CompiledPredictor:
    model: Any  # lleaves.Model, compiled
    kind: str = "compiled"

    def predict(self, matrix: np.ndarray, *, num_threads: int) -> np.ndarray:
        return np.asarray(self.model.predict(matrix, n_jobs=num_threads))


def load_predictor(model_text: str, *, cache_dir: str | None, probe: np.ndarray) -> Predictor:
    """The fastest predictor for ``model_text`` that agrees with LightGBM on ``probe`` rows.

    ``cache_dir`` None: LightGBM (compilation off). ``probe``: a few feature rows in the
    model's column order, scored by both before the compiled model is trusted.
    """
    booster = lgb.Booster(model_str=model_text)
    fallback = BoosterPredictor(booster)
    if cache_dir is None:
        return fallback
    try:
        compiled = CompiledPredictor(_compiled_model(model_text, cache_dir=Path(cache_dir)))
    except Exception as exc:  # no compiler, unknown objective, unwritable cache: LightGBM
        log.warning(
            "compiled trees unavailable (%s: %s); scoring with LightGBM", type(exc).__name__, exc
        )
        return fallback
    rows = probe[:PROBE_ROWS]
    if rows.shape[0]:
        expected = fallback.predict(rows, num_threads=1)
        got = compiled.predict(rows, num_threads=1)
        if got.shape != expected.shape or not np.allclose(
            got, expected, rtol=0.0, atol=PROBE_TOLERANCE, equal_nan=True
        ):
            worst = float(np.nanmax(np.abs(got - expected))) if got.shape == expected.shape else -1
            log.warning("compiled trees disagree with LightGBM (max %.3g); using LightGBM", worst)
            return fallback
    return compiled


def compile_ahead(model_text: str, *, cache_dir: str) -> str:
    """Compile (or find compiled) ``model_text`` in the driver; returns the predictor kind."""
    try:
        _compiled_model(model_text, cache_dir=Path(cache_dir))
    except Exception as exc:
        log.warning(
            "compiling the model failed (%s: %s); scoring with LightGBM", type(exc).__name__, exc
        )
        return "lightgbm"
    return "compiled"


def _compiled_model(model_text: str, *, cache_dir: Path) -> Any:
    import lleaves  # optional at import time: the API and training never need it

    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _cache_key(model_text)
    model_file = cache_dir / f"{key}.txt"
    object_file = cache_dir / f"{key}.o"
    with _locked(cache_dir / f"{key}.lock"):
        if not model_file.exists():
            _write_atomically(model_file, model_text.encode())
        model = lleaves.Model(model_file=str(model_file))
        if object_file.exists():
            model.compile(cache=str(object_file))
            return model
        # lleaves writes its cache file in place: compile into a private name, then rename.
        scratch = cache_dir / f"{key}.{os.getpid()}.partial"
        scratch.unlink(missing_ok=True)
        model.compile(cache=str(scratch))
        os.replace(scratch, object_file)
        log.info("compiled %s trees into %s", model.num_trees(), object_file)
        return model


def _cache_key(model_text: str) -> str:
    from importlib.metadata import version

    import llvmlite
    import llvmlite.binding as llvm

    llvm.initialize()
    llvm.initialize_native_target()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:
        features = ""
    digest = hashlib.sha256()
    for part in (
        model_text,
        version("lleaves"),
        llvmlite.__version__,
        llvm.get_process_triple(),
        llvm.get_host_cpu_name(),
        features,
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(name, path)
