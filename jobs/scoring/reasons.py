"""Reasons for a score: each customer's largest feature contributions (exact TreeSHAP).

A tree ensemble's SHAP values are the sum of each tree's, and LightGBM's path-dependent
TreeSHAP (``Booster.predict(pred_contrib=True)``) gives a tree's values for a row as a
function of the row's decisions at that tree's splits only (which side of each split it
falls on; the cover weights are fixed by the model). A tree with ``m`` splits therefore
has at most ``2**m`` distinct contribution vectors. ``TableExplainer`` asks LightGBM for
them once per model (one row per decision pattern that a row can produce, the tree
alone: ``start_iteration=t, num_iteration=1``), and then explains any number of rows
with comparisons and table lookups: the same numbers as ``pred_contrib``, without
walking every path of every tree for every row (``pred_contrib`` costs about 40 times a
plain predict on the nightly models; the tables, a few times).

Whatever it cannot do (trees with more than ``MAX_SPLITS`` splits, categorical splits,
more than one output per iteration, a probe that disagrees with LightGBM), it leaves to
``pred_contrib`` itself: a slower night, never different reasons.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import lightgbm as lgb
import numpy as np
import pyarrow as pa

from schemas.tables import REASONS_DDL

log = logging.getLogger(__name__)

ReasonsMode = Literal["all", "top_share", "off"]
# A tree with more splits than this is explained by pred_contrib (2**MAX_SPLITS patterns).
MAX_SPLITS = 10
PROBE_TOLERANCE = 1e-9
PROBE_ROWS = 256
_CHUNK_ROWS = 32_768
# LightGBM's kZeroThreshold: |x| below it is zero for a split with missing_type Zero.
_ZERO = float(np.float32(1e-35))  # 1.0000000180025095e-35, a float in LightGBM

REASON_TYPE = pa.struct(
    [
        pa.field("feature", pa.string()),
        pa.field("contribution", pa.float64()),
        pa.field("value", pa.float64()),
    ]
)
REASONS_TYPE = pa.list_(REASON_TYPE)  # REASONS_DDL in Arrow
__all__ = ["REASONS_DDL", "REASONS_TYPE", "ReasonsPolicy", "load_explainer", "top_reasons"]


class Explainer(Protocol):
    @property
    def kind(self) -> str: ...  # "tables" or "lightgbm"

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """``(rows, features + 1)``: each feature's SHAP value, the expected value last."""
        ...


@dataclass(frozen=True)
class LightGBMExplainer:
    booster: lgb.Booster
    num_threads: int = 1
    kind: str = "lightgbm"

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(
            self.booster.predict(matrix, pred_contrib=True, num_threads=self.num_threads)
        )


@dataclass(frozen=True)
class _Split:
    index: int  # the split's bit in the tree's pattern
    feature: int
    threshold: float
    default_left: bool
    missing: str  # "None", "Zero" or "NaN"


@dataclass(frozen=True)
class _TreeTable:
    splits: tuple[_Split, ...]
    features: np.ndarray  # the features the tree splits on, (d,)
    values: np.ndarray  # (d, 2**m): contribution of each feature per decision pattern


class UnsupportedModelError(ValueError):
    """The model has a tree the tables cannot explain exactly."""


class TableExplainer:
    """Exact TreeSHAP by decision pattern (see the module docstring); ``kind`` ``tables``."""

    kind = "tables"

    def __init__(self, booster: lgb.Booster) -> None:
        if booster.num_model_per_iteration() != 1:
            raise UnsupportedModelError("more than one output per iteration")
        self._booster = booster
        self.num_features = booster.num_feature()
        dumped = booster.dump_model()
        trees = [info["tree_structure"] for info in dumped["tree_info"]]
        tables: list[_TreeTable] = []
        expected = 0.0
        for t, root in enumerate(trees):
            splits = _splits(root)
            if len(splits) > MAX_SPLITS:
                raise UnsupportedModelError(f"tree {t} has {len(splits)} splits (> {MAX_SPLITS})")
            table, bias = _tree_table(booster, t, splits, num_features=self.num_features)
            expected += bias
            if table is not None:
                tables.append(table)
        self.expected_value = expected
        self._tables = tables

    def __getstate__(self) -> dict[str, Any]:
        """Shipped to the tasks as tables and model text (built once, in the driver)."""
        state = dict(self.__dict__)
        state["_booster"] = self._booster.model_to_string()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["_booster"] = lgb.Booster(model_str=state["_booster"])
        self.__dict__.update(state)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        n = matrix.shape[0]
        result = np.empty((n, self.num_features + 1), dtype=np.float64)
        for start in range(0, n, _CHUNK_ROWS):  # a chunk's columns stay in the CPU's cache
            rows = matrix[start : start + _CHUNK_ROWS]
            result[start : start + rows.shape[0]] = self._chunk(rows).T
        unexplained = np.isnan(result).any(axis=1)
        if unexplained.any():  # a pattern no constructed row produced: LightGBM for those rows
            result[unexplained] = self._booster.predict(
                matrix[unexplained], pred_contrib=True, num_threads=1
            )
        return result

    def _chunk(self, matrix: np.ndarray) -> np.ndarray:
        out = np.zeros((self.num_features + 1, matrix.shape[0]), dtype=np.float64)
        columns = _Columns(matrix)
        for table in self._tables:
            lefts = np.stack([_goes_left(columns, split) for split in table.splits])
            packed = np.packbits(lefts, axis=0, bitorder="little")  # (ceil(m / 8), rows)
            pattern = packed[0].astype(np.intp)
            for byte in range(1, packed.shape[0]):
                pattern |= packed[byte].astype(np.intp) << (8 * byte)
            out[table.features] += np.take(table.values, pattern, axis=1)
        out[-1] = self.expected_value
        return out


def build_tables(model_text: str) -> TableExplainer | None:
    """The tables for a model (built once per night, in the driver), None when its trees
    need ``pred_contrib``."""
    try:
        return TableExplainer(lgb.Booster(model_str=model_text))
    except UnsupportedModelError as exc:
        log.warning(
            "reasons by LightGBM's pred_contrib (%s): 20-40x the time of scoring itself; "
            "scoring.reasons=top_share explains only the top of each batch",
            exc,
        )
        return None


def load_explainer(
    model_text: str,
    *,
    probe: np.ndarray,
    tables: TableExplainer | None = None,
    build: bool = True,
    num_threads: int = 1,
) -> Explainer:
    """``tables`` (built here when not given and ``build``; the driver passes ``build=False``
    for a model it found the tables cannot hold) when they agree with ``pred_contrib`` on
    ``probe`` rows (the model's feature columns), else LightGBM's ``pred_contrib``."""
    booster = lgb.Booster(model_str=model_text)
    fallback = LightGBMExplainer(booster, num_threads=num_threads)
    if tables is None and build:
        tables = build_tables(model_text)
    if tables is None:
        return fallback
    rows = probe[:PROBE_ROWS]
    if rows.shape[0]:
        expected = fallback.contributions(rows)
        got = tables.contributions(rows)
        if not np.allclose(got, expected, rtol=0.0, atol=PROBE_TOLERANCE):
            worst = float(np.nanmax(np.abs(got - expected)))
            log.warning("reason tables disagree with pred_contrib (max %.3g): using it", worst)
            return fallback
    return tables


@dataclass(frozen=True, kw_only=True)
class ReasonsPolicy:
    """Which rows get reasons: ``all``, ``top_share`` (the highest scores, ``share`` of each
    batch) or ``off``; ``count`` reasons per row, largest absolute contribution first."""

    mode: ReasonsMode = "all"
    share: float = 0.1
    count: int = 3

    @property
    def label(self) -> str:
        """What every scored row records of it: ``all``, ``top_share:0.1`` or ``off``."""
        return f"top_share:{self.share:g}" if self.mode == "top_share" else self.mode

    def rows(self, scores: np.ndarray) -> np.ndarray | None:
        """Indices of the rows to explain, None for every row."""
        if self.mode == "all":
            return None
        if self.mode == "off" or scores.shape[0] == 0:
            return np.empty(0, dtype=np.intp)
        keep = max(1, math.ceil(self.share * scores.shape[0]))
        if keep >= scores.shape[0]:
            return None
        return np.sort(np.argpartition(-scores, keep - 1)[:keep])


def top_reasons(
    contributions: np.ndarray, values: np.ndarray, *, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(feature index, contribution, value)``, each ``(rows, k)``: the ``k = min(count,
    features)`` largest absolute contributions of each row, largest first (ties: lower
    feature index first). ``contributions``: ``(rows, features + 1)``, expected value last."""
    phi = contributions[:, :-1]
    k = min(count, phi.shape[1])
    size = np.abs(phi)
    if k < phi.shape[1]:
        part = np.argpartition(-size, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(phi.shape[1]), phi.shape).copy()
    # Order the k by size, then by feature index, so that ties are deterministic.
    chosen = np.take_along_axis(size, part, axis=1)
    order = np.lexsort((part, -chosen), axis=1)
    index = np.take_along_axis(part, order, axis=1)
    return (
        index,
        np.take_along_axis(phi, index, axis=1),
        np.take_along_axis(values, index, axis=1),
    )


def reasons_array(
    rows: int,
    *,
    explained: np.ndarray | None,
    index: np.ndarray,
    contribution: np.ndarray,
    value: np.ndarray,
    names: list[str],
) -> pa.Array:
    """``rows`` lists of reasons (``REASONS_TYPE``): those of the ``explained`` rows (None:
    every row, in order), null for the others. A missing feature value is null."""
    k = index.shape[1] if index.ndim == 2 else 0
    flat_values = value.ravel()
    structs = pa.StructArray.from_arrays(
        [
            pa.array(np.asarray(names, dtype=object)[index.ravel()], pa.string())
            if index.size
            else pa.array([], pa.string()),
            pa.array(contribution.ravel(), pa.float64()),
            pa.array(flat_values, pa.float64(), mask=np.isnan(flat_values)),
        ],
        fields=list(REASON_TYPE),
    )
    if explained is None:
        offsets = pa.array(np.arange(0, (rows + 1) * k, k, dtype=np.int32)[: rows + 1])
        return pa.ListArray.from_arrays(offsets, structs, type=REASONS_TYPE)
    lengths = np.zeros(rows, dtype=np.int32)
    lengths[explained] = k
    offsets_np = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets_np[1:])
    mask = np.ones(rows, dtype=bool)
    mask[explained] = False
    return pa.ListArray.from_arrays(
        pa.array(offsets_np), structs, type=REASONS_TYPE, mask=pa.array(mask)
    )


# ---------------------------------------------------------------- the tables


class _Columns:
    """A matrix's columns as LightGBM's numerical decision sees them, built on first use."""

    def __init__(self, matrix: np.ndarray) -> None:
        self._matrix = matrix
        self._raw: dict[int, np.ndarray] = {}
        self._nan_as_zero: dict[int, np.ndarray] = {}
        self._nan: dict[int, np.ndarray] = {}

    def raw(self, j: int) -> np.ndarray:
        """Column ``j`` as LightGBM reads a dense row: values within 1e-35 of zero are 0.0."""
        if j not in self._raw:
            x = self._matrix[:, j]
            self._raw[j] = np.where(np.abs(x) <= _ZERO, 0.0, x)
        return self._raw[j]

    def isnan(self, j: int) -> np.ndarray:
        if j not in self._nan:
            self._nan[j] = np.isnan(self.raw(j))
        return self._nan[j]

    def nan_as_zero(self, j: int) -> np.ndarray:
        if j not in self._nan_as_zero:
            self._nan_as_zero[j] = np.where(self.isnan(j), 0.0, self.raw(j))
        return self._nan_as_zero[j]


def _goes_left(columns: _Columns, split: _Split) -> np.ndarray:
    """LightGBM's ``NumericalDecision``: a value that is missing (NaN for ``NaN``; NaN or
    zero for ``Zero``) takes the default side; NaN is 0.0 otherwise; then ``x <= t``."""
    j, t = split.feature, split.threshold
    if split.missing == "NaN":
        if split.default_left:
            return (columns.raw(j) <= t) | columns.isnan(j)
        return columns.raw(j) <= t  # NaN compares False: right
    x = columns.nan_as_zero(j)
    if split.missing == "Zero":
        zero = np.abs(x) <= _ZERO
        return np.where(zero, split.default_left, x <= t)
    return x <= t


def _splits(root: dict[str, Any]) -> tuple[_Split, ...]:
    out: list[_Split] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if "split_index" not in node:
            continue
        if node.get("decision_type", "<=") != "<=":
            raise UnsupportedModelError(f"categorical split on feature {node['split_feature']}")
        out.append(
            _Split(
                index=int(node["split_index"]),
                feature=int(node["split_feature"]),
                threshold=float(node["threshold"]),
                default_left=bool(node["default_left"]),
                missing=str(node.get("missing_type", "None")),
            )
        )
        stack.extend((node["left_child"], node["right_child"]))
    out.sort(key=lambda s: s.index)
    if [s.index for s in out] != list(range(len(out))):
        raise UnsupportedModelError("split indices are not 0..m-1")
    return tuple(out)


def _tree_table(
    booster: lgb.Booster, t: int, splits: tuple[_Split, ...], *, num_features: int
) -> tuple[_TreeTable | None, float]:
    """Tree ``t``'s contribution for every decision pattern a row can produce (LightGBM's
    ``pred_contrib`` of the tree alone on one constructed row per pattern), and its
    expected value."""
    m = len(splits)
    patterns = np.arange(2**m, dtype=np.intp)
    rows = np.zeros((patterns.size, num_features), dtype=np.float64)
    feasible = np.ones(patterns.size, dtype=bool)
    by_feature: dict[int, list[_Split]] = {}
    for s in splits:
        by_feature.setdefault(s.feature, []).append(s)
    for feature, on_it in by_feature.items():
        mask = sum(1 << s.index for s in on_it)
        by_bits = _values_by_bits(on_it)
        for p in patterns:
            value = by_bits.get(int(p) & mask)
            if value is None:
                feasible[p] = False
            else:
                rows[p, feature] = value
    if m:  # keep only the patterns the constructed rows really produce
        got = np.zeros(patterns.size, dtype=np.intp)
        columns = _Columns(rows)
        for s in splits:
            got += _goes_left(columns, s).astype(np.intp) << s.index
        feasible &= got == patterns
    contrib = np.asarray(
        booster.predict(
            rows[feasible] if m else rows[:1],
            pred_contrib=True,
            start_iteration=t,
            num_iteration=1,
            num_threads=1,
        )
    )
    bias = float(contrib[0, -1])
    if not m:
        return None, bias
    features = np.array(sorted(by_feature), dtype=np.intp)
    values = np.full((features.size, patterns.size), np.nan)
    values[:, feasible] = contrib[:, features].T
    return _TreeTable(splits=splits, features=features, values=values), bias


def _values_by_bits(splits: list[_Split]) -> dict[int, float]:
    """One value of a feature for each way its splits can send a row (the bits of the
    splits that send it left -> the value): missing (NaN), zero, and a value inside each
    interval between the thresholds, as LightGBM's numerical decision reads them."""
    thresholds = sorted({s.threshold for s in splits})
    low, high = thresholds[0], thresholds[-1]
    candidates = [math.nan, 0.0, low - max(1.0, abs(low)), high + max(1.0, abs(high))]
    for a, b in itertools.pairwise(thresholds):
        candidates.append((a + b) / 2)
    for x in thresholds:
        candidates += [x, float(np.nextafter(x, math.inf))]
    column = _Columns(np.array(candidates, dtype=np.float64)[:, None])
    bits = np.zeros(len(candidates), dtype=np.intp)
    for s in splits:
        bits += _goes_left(column, replace(s, feature=0)).astype(np.intp) << s.index
    out: dict[int, float] = {}
    for b, x in zip(bits.tolist(), candidates, strict=True):
        out.setdefault(b, x)
    return out
