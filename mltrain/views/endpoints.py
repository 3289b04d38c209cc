"""An endpoint as ``mltrain endpoints list|show --json``, ``GET /api/endpoints`` and the Python API's
``EndpointRecord`` give it: its record with the live state checked now, URIs and key fingerprints
(keys are stored hashed; a key in full is shown only when made)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mltrain.workspace import Workspace
    from mltrain.workspace.endpoints import Endpoint


def endpoint_view(ws: Workspace, rec: Endpoint) -> dict[str, Any]:
    """The record (without its key digests) with the ``state`` checked now (is the server alive, does it
    answer ready) and ``reason``, the state as recorded (``recorded_state``), ``model`` (NAME:VERSION),
    ``keys`` (fingerprints) and, once it has an address, ``scoring_uri`` and ``swagger_uri``."""
    from mltrain.deploy.keys import SLOTS, fingerprint
    from mltrain.deploy.service import endpoint_status

    state, reason = endpoint_status(ws, rec)
    out = {k: v for k, v in rec.items() if not k.endswith("_key_sha256")}
    out.update(recorded_state=rec.state, state=state, reason=reason or None, model=rec.model)
    out["keys"] = {s: fingerprint(rec.key_digest(s)) for s in SLOTS} if rec.auth else {}
    if rec.uri:
        out.update(scoring_uri=f"{rec.uri}/score", swagger_uri=f"{rec.uri}/swagger.json")
    return out
