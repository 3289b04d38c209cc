"""What ``mltrain compute check +compute=cluster`` shows of a Ray cluster: each node (alive or dead,
head or not), its CPUs and memory free/total, its custom resources, the Ray version, and whether the
job server wants a token. Read from the dashboard (State API, cluster status) with our token."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from mltrain.errors import ComputeError

if TYPE_CHECKING:
    from mltrain.compute.ray.connection import RayConnection

BUILT_IN = ("CPU", "GPU", "memory", "object_store_memory")


def _camel(name: str) -> str:
    """The dashboard's cluster status spells resource names in camelCase (``worker_node``: ``workerNode``)."""
    return re.sub(r"_([a-zA-Z0-9])", lambda m: m.group(1).upper(), name)


def token_required(api: str, timeout: float) -> bool:
    """True when the job server refuses a request without a token (token authentication is on)."""
    try:
        with urllib.request.urlopen(f"{api}/api/version", timeout=timeout):  # noqa: S310 - the configured cluster
            return False
    except urllib.error.HTTPError as exc:
        return exc.code in (401, 403)
    except OSError:
        return False


def cluster_report(conn: RayConnection) -> list[dict[str, Any]]:
    """One row per node of the cluster (alive ones first)."""
    conn.check()  # reachable, with our token: a clear error otherwise
    try:
        nodes = conn.get("/api/v0/nodes?limit=10000&detail=true")["data"]["result"]["result"]
        version = str(conn.get("/api/version").get("ray_version") or "?")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ComputeError(f"cannot read the nodes of the Ray cluster at {conn.api}: {exc}") from exc
    try:
        status = conn.get("/api/cluster_status")["data"]["clusterStatus"]["loadMetricsReport"]
        usage = status.get("usageByNode") or {}
    except (OSError, ValueError, KeyError, TypeError):
        usage = {}
    auth = "token" if token_required(conn.api, conn.config.submit_timeout_s) else "off"
    rows = []
    for node in nodes:
        total = {str(k): float(v) for k, v in (node.get("resources_total") or {}).items()}
        used = usage.get(node.get("node_id"), {})

        def free(name: str, total: dict[str, float] = total, used: dict[str, Any] = used) -> float | None:
            got = used.get(_camel(name)) or used.get(name)
            return None if not got else float(got[1]) - float(got[0])

        alive = node.get("state") == "ALIVE"
        custom = {k: [free(k), v] for k, v in total.items() if k not in BUILT_IN and not k.startswith("node:")}
        rows.append(
            {
                "host": str(node.get("node_ip") or "?"),
                "ok": True,  # the cluster answered; a dead node is a fact about the cluster
                "node_id": str(node.get("node_id") or ""),
                "state": str(node.get("state") or "?"),
                "state_message": node.get("state_message") or None,
                "head": bool(node.get("is_head_node")),
                "cpus": [free("CPU") if alive else None, total.get("CPU", 0.0)],
                "memory_bytes": [free("memory") if alive else None, total.get("memory", 0.0)],
                "resources": custom,
                "ray": version,  # a node joins a cluster only with the head's Ray version
                "auth": auth,
            }
        )
    rows.sort(key=lambda r: (r["state"] != "ALIVE", not r["head"], r["host"]))
    return rows
