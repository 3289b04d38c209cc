"""The scoring server as a raw ASGI application (no framework: fewer layers on the hot path).

Routes: ``POST /score``, ``GET /swagger.json``, ``GET /health/live``, ``GET /health/ready``,
``GET /metrics``. Every refusal is a JSON ``{"error": "..."}`` with a 4xx; a model exception on valid input
is a 422; only a bug in the server itself is a 500. ``/score`` and ``/metrics`` need the key when auth is on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

import numpy as np

from mltrain.serving.auth import KeyChecker
from mltrain.serving.batching import Batcher
from mltrain.serving.config import ServingConfig, parse_config
from mltrain.serving.errors import BadRequest
from mltrain.serving.inputs import RequestParser
from mltrain.serving.metrics import OTHER_PATH, PATH_INDEX, Metrics
from mltrain.serving.model import ModelSpec, describe, load_model, suppress_feature_name_warnings, warm_up
from mltrain.serving.openapi import build_openapi

try:
    import orjson

    _OPT_NUMPY = orjson.OPT_SERIALIZE_NUMPY

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value, default=_to_builtin)

    def dump_predictions(out: Any) -> bytes:
        if type(out) is np.ndarray and out.dtype.kind in "fiub":
            try:
                return orjson.dumps({"predictions": out}, option=_OPT_NUMPY)
            except orjson.JSONEncodeError:  # e.g. not C-contiguous
                pass
        return orjson.dumps({"predictions": _to_builtin(out)}, default=_to_builtin, option=_OPT_NUMPY)

except ImportError:  # pragma: no cover - orjson is in SERVING_REQUIREMENTS
    import json

    def dumps(value: Any) -> bytes:
        return json.dumps(value, default=_to_builtin).encode()

    def dump_predictions(out: Any) -> bytes:
        return json.dumps({"predictions": _to_builtin(out)}, default=_to_builtin).encode()


log = logging.getLogger("mltrain.serving")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
_TEXT = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
_CLOSE = [(b"connection", b"close")]
ROUTES = "POST /score, GET /swagger.json, GET /health/live, GET /health/ready, GET /metrics"
_GET_ONLY = [(b"allow", b"GET")]
_TWO_KEYS = "more than one Authorization header: send exactly one"


def _to_builtin(value: Any) -> Any:
    """numpy arrays and scalars (also inside lists) to JSON-able Python values."""
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    if isinstance(value, (list, tuple)):
        return [_to_builtin(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _is_json(content_type: bytes) -> bool:
    if content_type == b"application/json":
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


async def _send(send: Send, status: int, body: bytes, head: tuple[bytes, bytes] = _JSON, extra: Any = None) -> None:
    headers = [head, (b"content-length", b"%d" % len(body))]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ScoringApp:
    """The ASGI callable. Build it with :func:`create_app` (in-process) or through the worker process."""

    def __init__(self, config: ServingConfig, spec: ModelSpec, metrics: Metrics, workers: int = 1) -> None:
        self.config = config
        self.spec = spec
        self.metrics = metrics
        self.workers = workers
        self.parser = RequestParser(spec)
        self.keys = KeyChecker(config.keys_file) if config.auth and config.keys_file else None
        self.max_body = config.max_body_bytes
        self.methods = spec.methods
        self.batcher = Batcher(spec.methods, config.batch_max_rows, metrics) if config.batch_max_rows > 1 else None
        self.batch_max_rows = config.batch_max_rows
        self.ready = True
        self.labels = {
            "endpoint": config.name,
            "model": config.model_name,
            "version": config.model_version or "",
        }
        self._swagger = dumps(build_openapi(config, spec))
        self._live = dumps({"status": "alive", "pid": os.getpid()})
        self._ready = dumps(
            {
                "status": "ready",
                "model": config.model_name,
                "version": config.model_version,
                "pid": os.getpid(),
            }
        )

    # -- ASGI entry -------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._lifespan(scope, receive, send)
            return
        start = perf_counter()
        path = scope["path"]
        try:
            if path == "/score":
                status = await self._score(scope, receive, send, start)
            else:
                status = await self._other(path, scope, send, start)
        except BadRequest as exc:
            status = exc.status
            try:
                await _send(send, status, dumps({"error": exc.message}), _JSON, exc.headers)
            except Exception:  # the client went away
                pass
        except Exception as exc:
            status = 500
            log.exception("internal error on %s %s", scope.get("method"), path)
            try:
                await _send(send, 500, dumps({"error": f"internal server error: {type(exc).__name__}: {exc}"}))
            except Exception:
                pass
        self.metrics.observe(PATH_INDEX.get(path, OTHER_PATH), status, perf_counter() - start)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- /score -----------------------------------------------------------------------------------
    async def _score(self, scope: Scope, receive: Receive, send: Send, start: float) -> int:
        if scope["method"] != "POST":
            raise BadRequest(405, f"{scope['method']} is not allowed on /score: use POST", [(b"allow", b"POST")])
        auth = ctype = length = None
        auths = 0
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
                auths += 1
            elif name == b"content-type":
                ctype = value
            elif name == b"content-length":
                length = value
        if self.keys is not None:
            if auths > 1:
                raise BadRequest(400, _TWO_KEYS)
            self.keys.check(auth, start)
        if ctype is None or not _is_json(ctype):
            got = ctype.decode("latin-1") if ctype is not None else "none"
            raise BadRequest(415, f"Content-Type must be application/json, got {got}")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                raise BadRequest(400, f"invalid Content-Length {length.decode('latin-1')!r}") from None
            if size > self.max_body:
                raise await self._refuse_large(receive, size, True)
        message = await receive()
        body = message.get("body", b"")
        if message.get("more_body"):
            body = await self._read_rest(receive, body)
        elif len(body) > self.max_body:
            raise await self._refuse_large(receive, len(body), False)
        method, X = self.parser.parse(body)
        try:
            if self.batcher is not None and X.shape[0] < self.batch_max_rows:
                out = await self.batcher.submit(method, X)
            else:
                out = self.methods[method](X)
                self.metrics.predicted(method, X.shape[0])
        except Exception as exc:
            raise BadRequest(422, f"the model could not score the input: {type(exc).__name__}: {exc}") from None
        await _send(send, 200, dump_predictions(out))
        return 200

    async def _read_rest(self, receive: Receive, first: bytes) -> bytes:
        chunks = [first]
        size = len(first)
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest(400, "the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise await self._refuse_large(receive, None, message.get("more_body", False))
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _refuse_large(self, receive: Receive, size: int | None, more: bool) -> BadRequest:
        """A 413. The rest of the body is read and dropped first (up to a cap), so the client gets the
        answer rather than a connection reset; past the cap the answer closes the connection."""
        cap = max(4 * self.max_body, 16 << 20)
        dropped = 0
        while more and dropped <= cap:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            dropped += len(message.get("body", b""))
            more = message.get("more_body", False)
        what = str(size) if size is not None else f"more than {self.max_body}"
        return BadRequest(
            413,
            f"the body is {what} bytes; the limit is {self.max_body} bytes: send fewer rows per request",
            _CLOSE if more else None,
        )

    # -- other routes -----------------------------------------------------------------------------
    async def _other(self, path: str, scope: Scope, send: Send, start: float) -> int:
        if path == "/health/live":
            body = self._live
        elif path == "/health/ready":
            body = self._ready
        elif path == "/swagger.json":
            body = self._swagger
        elif path == "/metrics":
            body = b""
        else:
            raise BadRequest(404, f"no such path {path}; this endpoint serves {ROUTES}")
        if scope["method"] != "GET":
            raise BadRequest(405, f"{scope['method']} is not allowed on {path}: use GET", _GET_ONLY)
        if path == "/metrics":
            if self.keys is not None:
                found = [value for name, value in scope["headers"] if name == b"authorization"]
                if len(found) > 1:
                    raise BadRequest(400, _TWO_KEYS)
                self.keys.check(found[0] if found else None, start)
            await _send(send, 200, self.metrics.render(self.labels, self.workers), _TEXT)
            return 200
        if path == "/health/ready" and not self.ready:
            raise BadRequest(503, "the model is not loaded yet")
        await _send(send, 200, body)
        return 200


def build_app(config: ServingConfig, metrics: Metrics | None = None, workers: int = 1) -> ScoringApp:
    """Verify and load the model, warm it up, and return the app (raises ServingError on refusal)."""
    model = load_model(config)
    spec = describe(model)
    suppress_feature_name_warnings()
    warm_up(spec)
    return ScoringApp(config, spec, metrics or Metrics(slots=2, slot=0), workers=workers)


def create_app(config: dict[str, Any] | ServingConfig) -> ScoringApp:
    """The scoring ASGI app for in-process use, e.g. ``uvicorn.run(create_app(cfg))`` or an ASGI test client.

    Accepts the same keys as the config file (``host``/``port``/``workers``/``memory_gb``/``ready_file`` are
    for the command line and are ignored here). Raises :class:`ServingError` when the model is refused.
    """
    cfg = config if isinstance(config, ServingConfig) else parse_config(config)
    return build_app(cfg)
