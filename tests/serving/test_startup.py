"""Refusals at start: a tampered model file, untrusted skops types, bad config; plus the standalone layout."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from .helpers import ROOT


def test_sha256_mismatch_refuses_to_start(launcher, svc_file):
    server = launcher.run_to_exit(svc_file.config(model_sha256="0" * 64))
    assert server.proc.returncode == 2
    assert "failed verification" in server.log
    assert svc_file.sha256 in server.log
    assert not Path(server.config["ready_file"]).exists()


def test_untrusted_skops_type_refused_with_the_type_listed(launcher, skops_file):
    server = launcher.run_to_exit(skops_file.config())
    assert server.proc.returncode == 2
    assert "not trusted: serving_custom.clip_features" in server.log
    assert "trusted_types" in server.log
    assert not Path(server.config["ready_file"]).exists()


def test_trusted_skops_type_is_served(skops_server):
    assert skops_server.score({"data": [[5.1, 3.5, 1.4, 0.2]]}, key=None).json() == {"predictions": ["setosa"]}


def test_bad_config_refused_with_the_key_named(launcher, svc_file, tmp_path):
    server = launcher.run_to_exit(svc_file.config(workers=0))
    assert server.proc.returncode == 2
    assert "workers must be an integer >= 1" in server.log
    server = launcher.run_to_exit(svc_file.config(auth=True, keys_file=str(tmp_path / "missing.json")))
    assert server.proc.returncode == 2
    assert "cannot read the keys file" in server.log


def test_port_in_use_refused(launcher, svc_server, svc_file):
    server = launcher.run_to_exit(svc_file.config(port=svc_server.port))
    assert server.proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{svc_server.port}" in server.log


def test_serving_imports_nothing_from_mltrain_outside_itself():
    for path in (ROOT / "mltrain" / "serving").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name == "mltrain" or name.startswith("mltrain."):
                    assert name.startswith("mltrain.serving"), f"{path.name} imports {name}"


def test_standalone_copy_loads_only_its_own_modules(server_path):
    code = (
        "import sys, json, mltrain.serving.app, mltrain.serving.supervisor, mltrain.serving;"
        "print(json.dumps({'file': mltrain.__file__, 'req': mltrain.serving.SERVING_REQUIREMENTS,"
        "'mods': sorted(m for m in sys.modules if m.startswith('mltrain'))}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(server_path)},
        capture_output=True,
        text=True,
        check=True,
        cwd=server_path,
    )
    info = json.loads(out.stdout)
    assert info["file"].startswith(str(server_path))
    assert all(m in ("mltrain", "mltrain.run_context") or m.startswith("mltrain.serving") for m in info["mods"])
    assert any(r.startswith("uvicorn") for r in info["req"])
