"""One request, one row: LightGBM's single-row C entry point and an encoder planned once per model.

``Booster.predict`` on a 1-row array costs about 100 us of Python around a microsecond of
tree walking (a predictor object, a parameter copy, array checks, two ctypes casts).
LightGBM's C API has a path made for serving one row at a time:
``LGBM_BoosterPredictForMatSingleRowFastInit`` parses the parameters once, and
``LGBM_BoosterPredictForMatSingleRowFast`` then scores a row with the same predictor (same
trees, same objective transform, so the same float64 result as ``Booster.predict``).

The encoder is ``schemas.coldstart.encode`` planned once per spec: the level -> index maps
are built at load time and each request reads its context's fields directly instead of
dumping the model to a dict (``tests/api/test_units.py`` checks both against the originals).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable, Sequence
from typing import Any

import lightgbm as lgb
from lightgbm.basic import LightGBMError
from schemas.coldstart import ColdStartContext, ColdStartSpec

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL
_PREDICT_CONTRIB = 3  # C_API_PREDICT_CONTRIB: SHAP values, the expected value last
_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64


def _lib() -> Any:
    from lightgbm import basic

    lib = getattr(basic, "_LIB", None)
    if lib is None:  # older layouts keep it in libpath
        from lightgbm import libpath

        lib = libpath._LIB
    return lib


class SingleRowScorer:
    """``scorer(row) -> float``: the booster's probability for one float64 row (1 output only).

    The C-side config holds only parsed parameters; rows and outputs are allocated per call,
    so calls from several threads share nothing on the Python side."""

    _predict_type = _PREDICT_NORMAL

    def __init__(self, booster: lgb.Booster, *, num_features: int, threads: int = 1) -> None:
        if booster.num_model_per_iteration() != 1:
            raise ValueError("the single-row scorer serves single-output models only")
        self._booster = booster  # the config points into the booster: keep it alive
        self._lib = _lib()
        self._ncol = num_features
        self._row_type = ctypes.c_double * num_features
        self._config = ctypes.c_void_p()
        ret = self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle,
            ctypes.c_int(self._predict_type),
            ctypes.c_int(0),  # start_iteration, as Booster.predict
            ctypes.c_int(booster.best_iteration),  # Booster.predict's num_iteration=None
            ctypes.c_int(_DTYPE_FLOAT64),
            ctypes.c_int32(num_features),
            ctypes.c_char_p(f"num_threads={threads}".encode()),
            ctypes.byref(self._config),
        )
        self._check(ret)
        self._predict = self._lib.LGBM_BoosterPredictForMatSingleRowFast

    def _check(self, ret: int) -> None:
        if ret != 0:
            raise LightGBMError(self._lib.LGBM_GetLastError().decode("utf-8"))

    def __call__(self, row: Sequence[float]) -> float:
        if len(row) != self._ncol:
            raise ValueError(f"expected {self._ncol} features, got {len(row)}")
        out = ctypes.c_double(0.0)
        out_len = ctypes.c_int64(0)
        ret = self._predict(
            self._config, self._row_type(*row), ctypes.byref(out_len), ctypes.byref(out)
        )
        self._check(ret)
        return out.value

    def _out(self, row: Sequence[float], out: Any) -> None:
        if len(row) != self._ncol:
            raise ValueError(f"expected {self._ncol} features, got {len(row)}")
        out_len = ctypes.c_int64(0)
        ret = self._predict(self._config, self._row_type(*row), ctypes.byref(out_len), out)
        self._check(ret)

    def __del__(self) -> None:
        config = getattr(self, "_config", None)
        if config is not None and config.value:
            self._lib.LGBM_FastConfigFree(config)
            self._config = ctypes.c_void_p()


def plan_encoder(spec: ColdStartSpec) -> Callable[[ColdStartContext], list[float]]:
    """``schemas.coldstart.encode(context, spec)`` with the spec's work done once."""
    steps: list[tuple[str, dict[str, float] | None]] = []
    for name in spec.feature_order:
        levels = spec.categorical_levels.get(name)
        if levels is None:
            steps.append((name, None))
        else:  # the first position of a level wins, as ``list.index``
            steps.append((name, {lvl: float(i) for i, lvl in reversed(list(enumerate(levels)))}))
    nan = math.nan

    def encode(context: ColdStartContext) -> list[float]:
        values = context.__dict__  # pydantic keeps field values here (model_dump's source)
        row: list[float] = []
        for name, index in steps:
            value = values.get(name)
            if index is not None:
                row.append(index.get(value, nan) if isinstance(value, str) else nan)
            else:
                row.append(nan if value is None else float(value))
        return row

    return encode


class SingleRowContributions(SingleRowScorer):
    """``contributions(row) -> list``: the row's SHAP values (LightGBM's ``pred_contrib``,
    one per feature, the expected value last), through the same single-row C path."""

    _predict_type = _PREDICT_CONTRIB

    def contributions(self, row: Sequence[float]) -> list[float]:
        out = (ctypes.c_double * (self._ncol + 1))()
        self._out(row, out)
        return list(out)
