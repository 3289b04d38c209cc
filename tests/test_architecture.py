"""The architecture holds: the import contract of pyproject.toml (layers, standalone modules, no
import circles — lazy imports included) and heavy packages kept off the start-up path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

HEAVY = (
    "docker", "fabric", "paramiko", "ray", "uvicorn", "starlette", "sklearn", "mlflow", "optuna",
    "fsspec", "s3fs", "botocore", "aiobotocore", "boto3", "adlfs", "gcsfs",
)  # fmt: skip


def test_import_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("command", [["-m", "mltrain", "--help"], ["-m", "mltrain.cli.main", "--help"]])
def test_help_imports_no_heavy_package(command, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *command], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
