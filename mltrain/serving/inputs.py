"""Turn a request body into the model's input matrix, or a 400 that names the problem.

Accepted: ``{"data": [[x, ...], ...]}`` (rows of numbers, in ``feature_names_in_`` order) or
``{"data": [{"name": x, ...}, ...]}`` (objects keyed by feature name, any order, all names required, no
others), with an optional ``"method"``. ``null`` is a missing value (NaN): passed to models that accept NaN,
refused otherwise, like infinities. JSON ``true``/``false`` count as 1/0. The fast path is one
``orjson.loads`` and one ``np.array``; the slow diagnostics run only on bad input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any

import numpy as np

from mltrain.serving.errors import BadRequest
from mltrain.serving.model import ModelSpec

try:
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - orjson is in SERVING_REQUIREMENTS
    _loads = json.loads

_float64 = np.float64
_isfinite = math.isfinite
_asarray = np.array


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _listing(names: Iterable[str], limit: int = 10) -> str:
    items = sorted(names)
    shown = ", ".join(repr(n) for n in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _bad(message: str) -> BadRequest:
    return BadRequest(400, message)


class RequestParser:
    """Validates bodies against one model; build once, call :meth:`parse` per request."""

    def __init__(self, spec: ModelSpec) -> None:
        self.n_features = spec.n_features
        self.names = spec.feature_names
        self.nameset = frozenset(spec.feature_names) if spec.feature_names else frozenset()
        self.allow_nan = spec.allow_nan
        self.methods = frozenset(spec.methods)
        self.method_list = ", ".join(spec.methods)
        self._getter: Callable[[dict[str, Any]], Any] | None = None
        if self.names:
            if len(self.names) == 1:
                only = self.names[0]
                self._getter = lambda row: (row[only],)
            else:
                self._getter = itemgetter(*self.names)

    # -- body -------------------------------------------------------------------------------------
    def parse(self, body: bytes) -> tuple[str, np.ndarray]:
        """Return (method name, float64 matrix of shape (rows, features)) or raise :class:`BadRequest`."""
        try:
            obj = _loads(body)
        except ValueError:
            obj = self._slow_loads(body)
        if type(obj) is not dict:
            raise _bad(f'the body must be a JSON object like {{"data": [[...], ...]}}, got a JSON {_json_type(obj)}')
        method = "predict"
        if len(obj) != 1 or "data" not in obj:
            extra = obj.keys() - {"data", "method"}
            if extra:
                raise _bad(f'unknown key(s) in the body: {_listing(extra)}; allowed keys are "data" and "method"')
            method = obj.get("method", "predict")
        if "data" not in obj:
            raise _bad('missing "data": send {"data": [[...], ...]} with one row per prediction')
        if type(method) is not str or method not in self.methods:
            raise _bad(f"unknown method {_show(method)}: this model supports {self.method_list}")
        return method, self.matrix(obj["data"])

    def _slow_loads(self, body: bytes) -> Any:
        """stdlib json accepts NaN/Infinity (as Python's json.dumps writes them) and explains errors."""
        if not body:
            raise _bad('the body is empty: send a JSON object like {"data": [[...], ...]}')
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise _bad(f"malformed JSON: {exc}") from None

    # -- rows -------------------------------------------------------------------------------------
    def matrix(self, data: Any) -> np.ndarray:
        if type(data) is not list:
            raise _bad(f'"data" must be a list of rows, got a JSON {_json_type(data)}')
        if not data:
            raise _bad('"data" is empty: send at least one row')
        rows = self._rows_from_objects(data) if type(data[0]) is dict else data
        try:
            X = _asarray(rows)
        except (ValueError, TypeError):  # ragged rows
            raise self._diagnose(data) from None
        kind = X.dtype.kind
        if kind != "f":
            if kind in "iub":
                X = X.astype(_float64)
            elif kind == "O":  # null, integers beyond 64 bits, or nested containers
                try:
                    X = _asarray(rows, dtype=_float64)
                except (ValueError, TypeError, OverflowError):
                    raise self._diagnose(data) from None
            else:
                raise self._diagnose(data)
        if X.ndim != 2:
            raise self._diagnose(data)
        nf = self.n_features
        if nf is not None and X.shape[1] != nf:
            raise _bad(f"each row must have {nf} features{self._names_hint()}, got {X.shape[1]}")
        if not _isfinite(X.sum()):
            self._check_finite(X)
        return X

    def _names_hint(self) -> str:
        return f" ({', '.join(self.names)})" if self.names and len(self.names) <= 20 else ""

    def _column(self, j: int) -> str:
        if self.names and j < len(self.names):
            return f"feature {j} ({self.names[j]!r})"
        return f"feature {j}"

    def _check_finite(self, X: np.ndarray) -> None:
        bad = np.isinf(X) if self.allow_nan else ~np.isfinite(X)
        if not bad.any():
            return
        i, j = (int(k) for k in np.argwhere(bad)[0])
        value = X[i, j]
        if np.isnan(value):
            raise _bad(f"row {i}, {self._column(j)} is null/NaN: this model cannot take missing values")
        sign = "" if value > 0 else "-"
        raise _bad(f"row {i}, {self._column(j)} is {sign}Infinity: values must be finite numbers")

    def _rows_from_objects(self, data: list[Any]) -> list[Any]:
        if self._getter is None:
            raise _bad(
                "rows are objects, but this model was fit without feature names (on an array, not a DataFrame): "
                f"send each row as a list of {self.n_features or 'N'} numbers"
            )
        getter, nameset, n = self._getter, self.nameset, len(self.nameset)
        out = []
        append = out.append
        for row in data:
            if type(row) is not dict or len(row) != n or row.keys() != nameset:
                raise self._diagnose_objects(data)
            append(getter(row))
        return out

    def _diagnose_objects(self, data: list[Any]) -> BadRequest:
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                return _bad(f"row {i} is a JSON {_json_type(row)} but row 0 is an object: send every row in one form")
            missing = self.nameset - row.keys()
            extra = row.keys() - self.nameset
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"missing feature(s) {_listing(missing)}")
                if extra:
                    parts.append(f"unknown feature(s) {_listing(extra)}")
                return _bad(f"row {i}: {' and '.join(parts)}; the model takes exactly: {', '.join(self.names or ())}")
        return _bad('"data" rows must be objects with the model\'s feature names')

    def _diagnose(self, data: list[Any]) -> BadRequest:
        nf = self.n_features
        first = data[0]
        width = nf if nf is not None else (len(first) if isinstance(first, (list, tuple)) else None)
        objects = isinstance(first, dict)
        for i, raw in enumerate(data):
            if objects:
                if not isinstance(raw, dict):
                    return _bad(
                        f"row {i} is a JSON {_json_type(raw)} but row 0 is an object: send every row in one form"
                    )
                row = list(self._getter(raw)) if self._getter else []
            else:
                if isinstance(raw, dict):
                    return _bad(f"row {i} is an object but row 0 is a list: send every row in one form")
                if not isinstance(raw, list):
                    return _bad(
                        f'row {i} is a JSON {_json_type(raw)}, not a list: "data" must be a list of rows, '
                        f"e.g. [[{', '.join(['0'] * (nf or 2))}]] for one row"
                    )
                if width is not None and len(raw) != width:
                    want = f"the model takes {nf} features" if nf is not None else f"row 0 has {width}"
                    return _bad(f"row {i} has {len(raw)} values, but {want}{self._names_hint()}")
                row = raw
            for j, value in enumerate(row):
                if value is None or type(value) in (int, float, bool):
                    continue
                where = f"feature {self.names[j]!r}" if objects and self.names else self._column(j)
                return _bad(f"row {i}, {where} is {_show(value)}: values must be numbers (or null for missing)")
        return _bad('"data" must be a list of rows of numbers')
