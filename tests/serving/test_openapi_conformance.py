"""The OpenAPI document matches the server: schemathesis, with every check, against ``/swagger.json`` of
served models (key auth on and off, a model that refuses missing values and one that accepts them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import PRIMARY_KEY, Launcher, ModelFile, Server, save_model

SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
MAX_EXAMPLES = "150"
SEED = "20261201"


@pytest.fixture(scope="module")
def nan_server(launcher: Launcher, serving_dir: Path, iris) -> Server:
    """A model that accepts missing values (null), with two output shapes, no auth."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = iris
    model = save_model(HistGradientBoostingClassifier(max_iter=10).fit(X, y), serving_dir / "hgb.joblib", "joblib")
    return launcher.wait_ready(launcher.spawn(model.config(auth=False, workers=1)))


# A schema-valid row may still be refused by the model itself (documented: 422, "the model could not score the
# input"; e.g. the skops pipeline's own function refuses values above 1e6): schema-valid data must get a 2xx,
# 401 or that 422; every other check keeps its defaults.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "422"]
"""


def _schemathesis(server: Server, *extra: str) -> subprocess.CompletedProcess[str]:
    if SCHEMATHESIS is None:
        pytest.fail("schemathesis is not installed: scripts/install.sh dev installs it")
    config = server.folder / "schemathesis.toml"
    config.write_text(CONFIG)
    cmd = [SCHEMATHESIS, "--config-file", str(config), "run", f"{server.url}/swagger.json", "--checks", "all"]
    cmd += ["--max-examples", MAX_EXAMPLES]
    cmd += ["--seed", SEED, "--workers", "1", "--request-timeout", "30", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=server.folder)  # its cache there


def _assert_no_failures(proc: subprocess.CompletedProcess[str]) -> None:
    summary = proc.stdout[-3000:]
    assert proc.returncode == 0 and "No issues found" in proc.stdout, summary + proc.stderr[-2000:]


def test_the_document_of_a_keyed_endpoint_matches_the_server(svc_server: Server):
    _assert_no_failures(_schemathesis(svc_server, "-H", f"Authorization: Bearer {PRIMARY_KEY}"))


def test_the_document_of_an_open_endpoint_with_missing_values_matches_the_server(nan_server: Server):
    _assert_no_failures(_schemathesis(nan_server))


def test_the_document_of_a_skops_pipeline_with_string_classes_matches_the_server(skops_server: Server):
    _assert_no_failures(_schemathesis(skops_server))


def test_schema_details(svc_server: Server, nan_server: Server, svc_file: ModelFile):
    doc = svc_server.get("/swagger.json").json()
    assert "401" in doc["paths"]["/metrics"]["get"]["responses"]
    row = doc["components"]["schemas"]["ScoreRequest"]["properties"]["data"]["oneOf"][0]["items"]["items"]
    assert "nullable" not in str(row)  # the SVC refuses missing values
    nan_doc = nan_server.get("/swagger.json").json()
    nan_row = nan_doc["components"]["schemas"]["ScoreRequest"]["properties"]["data"]["oneOf"][0]["items"]["items"]
    assert "'nullable': True" in str(nan_row)
    outputs = nan_doc["components"]["schemas"]["ScoreResponse"]["properties"]["predictions"]["anyOf"]
    shapes = [{k: v for k, v in o.items() if k != "description"} for o in outputs]
    assert len(shapes) == len({str(s) for s in shapes})  # no two identical alternatives
