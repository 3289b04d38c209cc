"""Helpers of the deployment tests: the management command, HTTP on loopback, processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import Response, Result, port_free, request, score  # noqa: F401 - shared HTTP helpers

# the model's own predictions, computed in the model's environment (its scikit-learn version)
PREDICT = """
import json, sys
import joblib
from sklearn.datasets import load_iris
model = joblib.load(sys.argv[1])
x, _ = load_iris(return_X_y=True, as_frame=True)
import sklearn
print(json.dumps({"rows": x.values.tolist(), "predictions": model.predict(x).tolist(),
                  "columns": list(x.columns), "sklearn": sklearn.__version__}))
"""


def run(cwd: Path, *args: str, module: str = "mltrain.cli.main", timeout: float = 900) -> Result:
    """``python -m mltrain.cli.main ARGS`` (or another module) in ``cwd``."""
    cp = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=os.environ
    )
    return Result(cp.returncode, cp.stdout, cp.stderr)


def run_json(cwd: Path, *args: str, timeout: float = 900) -> Any:
    res = run(cwd, *args, "--json", timeout=timeout)
    assert res.returncode == 0, res.output
    return json.loads(res.stdout)


def eventually(check: Callable[[], bool], attempts: int = 100, interval: float = 0.1) -> bool:
    """True as soon as ``check()`` is; False after ``attempts`` tries (a bounded wait, not a timing assertion)."""
    for _ in range(attempts):
        if check():
            return True
        time.sleep(interval)
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(b")") + 2 :].split()[1]) == pid:
            out.append(int(entry))
    return out


def pid_exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


def model_truth(cwd: Path, ref: str) -> dict[str, Any]:
    """Rows of iris and the predictions of model ``ref`` on them, computed in the model's own environment."""
    model = run_json(cwd, "models", "show", ref)
    env = run_json(cwd, "envs", "show", model["env_hash"])
    python = Path(env["location"]) / "bin" / "python"
    dest = cwd / "truth" / ref.replace(":", "-").replace("@", "-")
    res = run(cwd, "models", "download", ref, "--dest", str(dest))
    assert res.returncode == 0, res.output
    out = subprocess.run(
        [str(python), "-c", PREDICT, str(dest / model["path"])], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
