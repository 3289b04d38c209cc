"""The part of MLflow's REST tracking API a training script uses, served by the driver on
127.0.0.1 for the length of one run, so that ``mlflow.log_param(s)``, ``log_metric(s)``,
``set_tag(s)``, ``log_artifact(s)``, ``log_input``, ``mlflow.sklearn.log_model`` and ``autolog()`` record
into the mltrain run (as Azure ML v2 does for MLflow scripts).

The job gets ``MLFLOW_TRACKING_URI`` (this server), ``MLFLOW_RUN_ID`` (its mltrain run: the
script's ``mlflow.start_run()`` resumes it), ``MLFLOW_EXPERIMENT_NAME`` and a
``MLFLOW_TRACKING_TOKEN`` every request must carry. Params are stored as metrics (numbers when they
read as numbers), metrics as series with their steps, tags as run tags; artifacts are written by
the client itself into ``outputs/mlflow/`` of the run folder (a ``file://`` artifact location), a
logged model into ``outputs/mlflow/<name>/`` (``model.pkl`` for scikit-learn), which ``register``
or ``mltrain models register --run ID --path ...`` can point at. Started only for environments
that have mlflow (mltrain/runs/compat.py ``serve_tracking``), so other runs pay nothing.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

PREFIX = "/api/2.0/mlflow/"
ARTIFACTS = "outputs/mlflow"
MAX_BODY = 64 << 20
EXPERIMENT_ID = "1"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _ms() -> int:
    return int(time.time() * 1000)


def _number_or_text(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return number if number == number else value  # keep "nan" as text


def _dataset_source(ds: dict[str, Any]) -> str | None:
    """Where an MLflow dataset came from: the URI (or path, URL) in its JSON ``source``, else its source type."""
    try:
        source = json.loads(str(ds.get("source") or "{}"))
    except ValueError:
        source = {}
    if isinstance(source, dict):
        for field in ("uri", "url", "path", "table_name"):
            if isinstance(source.get(field), str):
                return str(source[field])[:2000]
    return str(ds.get("source_type") or "") or None


class TrackingState:
    """What the script logged through MLflow, and where it goes in the workspace."""

    def __init__(self, ws: Workspace, run_id: str, experiment: str, run_dir: Path) -> None:
        self.ws, self.run_id, self.experiment, self.run_dir = ws, run_id, experiment, run_dir
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.seen: set[tuple[str, float, int, int]] = set()  # MLflow stores a metric logged twice once
        self.started = _ms()
        self.lock = threading.Lock()

    # -- entities as MLflow's REST API returns them ------------------------------------------------
    def run_info(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_uuid": self.run_id,
            "run_name": self.run_id,
            "experiment_id": EXPERIMENT_ID,
            "user_id": "mltrain",
            "status": "RUNNING",
            "start_time": self.started,
            "artifact_uri": (self.run_dir / ARTIFACTS).as_uri(),
            "lifecycle_stage": "active",
        }

    def run(self) -> dict[str, Any]:
        with self.lock:
            data = {
                "metrics": list(self.latest.values()),
                "params": [{"key": k, "value": v} for k, v in self.params.items()],
                "tags": [{"key": k, "value": v} for k, v in self.tags.items()],
            }
        return {"info": self.run_info(), "data": data, "inputs": {}, "outputs": {}}

    def experiment_entity(self) -> dict[str, Any]:
        return {
            "experiment_id": EXPERIMENT_ID,
            "name": self.experiment,
            "artifact_location": (self.run_dir / ARTIFACTS).as_uri(),
            "lifecycle_stage": "active",
            "tags": [],
        }

    # -- writes -------------------------------------------------------------------------------------
    def check_run(self, body: dict[str, Any]) -> None:
        run_id = body.get("run_id") or body.get("run_uuid")
        if run_id != self.run_id:
            raise ApiError(
                404, "RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found (this job records into {self.run_id})"
            )

    def log(self, metrics: list[dict[str, Any]], params: list[dict[str, Any]], tags: list[dict[str, Any]]) -> None:
        records: list[dict[str, Any]] = []
        now = time.time()
        for p in params:
            key, value = str(p["key"]), str(p.get("value", ""))
            old = self.params.get(key)
            if old is not None and old != value:
                raise ApiError(
                    400, "INVALID_PARAMETER_VALUE", f"param {key!r} was already logged as {old!r}; params cannot change"
                )
            self.params[key] = value
            records.append({"t": now, "k": key, "v": _number_or_text(value)})
        for m in metrics:
            value = float(m["value"])
            step = int(m.get("step") or 0)
            ts = int(m.get("timestamp") or _ms())
            ident = (str(m["key"]), value, ts, step)
            if ident in self.seen:  # e.g. the run's metrics linked again to a logged model
                continue
            self.seen.add(ident)
            records.append({"t": ts / 1000, "k": str(m["key"]), "v": value, "s": step})
            with self.lock:
                self.latest[str(m["key"])] = {"key": m["key"], "value": value, "timestamp": ts, "step": step}
        if records:
            self.ws.metrics.add(self.run_id, records)
        if tags:
            new = {str(t["key"]): str(t.get("value", "")) for t in tags}
            with self.lock:
                self.tags.update(new)
            self.ws.runs.set_tags(self.run_id, new)

    def log_inputs(self, datasets: list[dict[str, Any]]) -> None:
        """``mlflow.log_input(dataset, context=...)``: each dataset recorded as an input of the run, named
        ``mlflow:NAME`` (`` (CONTEXT)`` when given), with its digest and source (``runs show`` lists them)."""
        for item in datasets:
            ds = item.get("dataset") or {}
            name = str(ds.get("name") or "dataset")[:200]
            tags = {str(t.get("key")): str(t.get("value", "")) for t in item.get("tags") or []}
            context = tags.get("mlflow.data.context")
            key = f"mlflow:{name}" + (f" ({context[:100]})" if context else "")
            self.ws.data.link_run(
                self.run_id,
                "input",
                key,
                uri=_dataset_source(ds),
                digest=str(ds.get("digest") or "") or None,
                mode="mlflow",
            )

    def history(self, key: str) -> list[dict[str, Any]]:
        """Every numeric value of the metric ``key`` of the run, as MLflow's Metric entities."""
        return [
            {"key": key, "value": r["value"], "timestamp": int(r["ts"] * 1000), "step": r["step"] or 0}
            for r in self.ws.metrics.history(self.run_id, key)
            if r["kind"] == "scalar" and isinstance(r["value"], (int, float)) and not isinstance(r["value"], bool)
        ]

    def create_model(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("name") or "model")
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or name.startswith("."):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"model name {name!r}: use letters, digits, '-', '_', '.'")
        model_id = f"m-{uuid.uuid4().hex}"
        folder = self.run_dir / ARTIFACTS / name
        if folder.exists() or any(m["info"]["name"] == name for m in self.models.values()):
            folder = self.run_dir / ARTIFACTS / f"{name}-{model_id[2:10]}"
        folder.mkdir(parents=True, exist_ok=True)
        now = _ms()
        model = {
            "info": {
                "model_id": model_id,
                "experiment_id": EXPERIMENT_ID,
                "name": name,
                "artifact_uri": folder.as_uri(),
                "creation_timestamp_ms": now,
                "last_updated_timestamp_ms": now,
                "status": "PENDING",
                "source_run_id": self.run_id,
                "model_type": body.get("model_type"),
                "tags": body.get("tags") or [],
            },
            "data": {"params": body.get("params") or [], "metrics": []},
        }
        self.models[model_id] = model
        return model

    def model(self, model_id: str) -> dict[str, Any]:
        if model_id not in self.models:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Logged model {model_id!r} not found")
        return self.models[model_id]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str) -> None:
        try:
            if not secrets.compare_digest(self.headers.get("Authorization", ""), f"Bearer {self.server.token}"):
                raise ApiError(401, "UNAUTHENTICATED", "missing or wrong MLFLOW_TRACKING_TOKEN")
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0 or length > MAX_BODY:
                raise ApiError(413, "INVALID_PARAMETER_VALUE", f"request body over {MAX_BODY} bytes")
            raw = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            body: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if raw:
                decoded = json.loads(raw)
                if not isinstance(decoded, dict):
                    raise ApiError(400, "MALFORMED_REQUEST", "the request body must be a JSON object")
                body.update(decoded)
            if not url.path.startswith(PREFIX):
                raise ApiError(404, "ENDPOINT_NOT_FOUND", f"{url.path} is not served by mltrain")
            self._reply(200, route(self.server.state, method, url.path[len(PREFIX) :], body))
        except ApiError as exc:
            if exc.code == "ENDPOINT_NOT_FOUND":
                print(f"mltrain: MLflow call {method} {self.path} is not supported", file=sys.stderr, flush=True)
            self._reply(exc.status, {"error_code": exc.code, "message": exc.message})
        except (ValueError, KeyError, TypeError) as exc:
            self._reply(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"bad request: {exc!r}"})


def route(state: TrackingState, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Answer one call of MLflow's tracking API (path relative to /api/2.0/mlflow/)."""
    if path in ("runs/get", "runs/update", "runs/log-metric", "runs/log-parameter", "runs/set-tag", "runs/log-batch"):
        state.check_run(body)
    if path == "runs/get":
        return {"run": state.run()}
    if path == "runs/create":  # a nested or new run: recorded into this job's run
        return {"run": state.run()}
    if path == "runs/update":  # the run's status follows the script's exit code
        return {"run_info": state.run_info()}
    if path == "runs/log-metric":
        state.log([body], [], [])
        return {}
    if path == "runs/log-parameter":
        state.log([], [body], [])
        return {}
    if path == "runs/set-tag":
        state.log([], [], [body])
        return {}
    if path == "runs/delete-tag":
        return {}
    if path == "runs/log-batch":
        state.log(body.get("metrics") or [], body.get("params") or [], body.get("tags") or [])
        return {}
    if path == "metrics/get-history":
        state.check_run(body)
        return {"metrics": state.history(str(body.get("metric_key", "")))}
    if path == "runs/log-inputs":
        state.check_run(body)
        state.log_inputs(list(body.get("datasets") or []))
        return {}
    if path in ("runs/outputs", "runs/log-model"):
        return {}
    if path == "experiments/get" or path == "experiments/get-by-name":
        return {"experiment": state.experiment_entity()}
    if path == "experiments/search":
        return {"experiments": [state.experiment_entity()]}
    if path == "experiments/create":
        return {"experiment_id": EXPERIMENT_ID}
    if path == "logged-models" and method == "POST":
        return {"model": state.create_model(body)}
    if path == "logged-models/search":
        return {"models": [m for m in state.models.values()], "next_page_token": None}
    if path.startswith("logged-models/"):
        model_id, _, action = path[len("logged-models/") :].partition("/")
        model = state.model(model_id)
        if method == "PATCH" and not action:
            model["info"]["status"] = body.get("status", "READY")
            model["info"]["last_updated_timestamp_ms"] = _ms()
        elif action == "tags":
            model["info"]["tags"] = [*model["info"]["tags"], *(body.get("tags") or [])]
        elif action == "params":
            model["data"]["params"] = [*model["data"]["params"], *(body.get("params") or [])]
        return {"model": model}
    raise ApiError(404, "ENDPOINT_NOT_FOUND", f"{method} {PREFIX}{path} is not served by mltrain")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: TrackingState, token: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state, self.token = state, token


class TrackingServer:
    """The server of one run; ``env`` is what the job needs, ``close()`` stops it."""

    def __init__(self, ws: Workspace, run_id: str, experiment: str, run_dir: Path) -> None:
        self.token = secrets.token_urlsafe(24)
        self.state = TrackingState(ws, run_id, experiment, run_dir)
        self._server = _Server(self.state, self.token)
        self._thread = threading.Thread(target=self._server.serve_forever, name="mltrain-mlflow", daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.env = {
            "MLFLOW_TRACKING_URI": f"http://{host}:{port}",
            "MLFLOW_TRACKING_TOKEN": self.token,
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_EXPERIMENT_NAME": experiment,
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # there is no MLflow UI to link to
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
