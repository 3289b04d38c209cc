"""Fixtures for the scoring server: real models trained here, real server processes on 127.0.0.1.

The server runs from a copy of ``mltrain/__init__.py``, ``mltrain/run_context.py`` and ``mltrain/serving``
on PYTHONPATH (as the deployer lays it out), next to ``serving_custom`` (tests/serving/custom_code.py).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    PRIMARY_KEY,
    ROOT,
    SECONDARY_KEY,
    InProcessServer,
    Launcher,
    ModelFile,
    Server,
    save_model,
    write_keys,
)


@pytest.fixture(scope="session")
def serving_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="session")
def server_path(serving_dir: Path) -> Path:
    """The deployer's layout: only the standalone files of mltrain, plus the test's custom model code."""
    root = serving_dir / "pythonpath"
    (root / "mltrain").mkdir(parents=True)
    shutil.copy(ROOT / "mltrain" / "__init__.py", root / "mltrain" / "__init__.py")
    shutil.copy(ROOT / "mltrain" / "run_context.py", root / "mltrain" / "run_context.py")
    (root / "mltrain" / "serving").mkdir()
    for src in (ROOT / "mltrain" / "serving").glob("*.py"):
        shutil.copy(src, root / "mltrain" / "serving" / src.name)
    shutil.copy(Path(__file__).with_name("custom_code.py"), root / "serving_custom.py")
    return root


@pytest.fixture(scope="session")
def custom(server_path: Path) -> Any:
    """The module ``serving_custom`` (importable here too, so models pickled here refer to it by that name)."""
    sys.path.insert(0, str(server_path))
    import serving_custom

    return serving_custom


@pytest.fixture(scope="session")
def launcher(serving_dir: Path, server_path: Path):
    launcher = Launcher(serving_dir / "servers", str(server_path))
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="session")
def iris() -> tuple[Any, Any]:
    pd = pytest.importorskip("pandas", reason="pandas is needed to fit models with feature names")
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    assert isinstance(X, pd.DataFrame)
    return X, y


@pytest.fixture(scope="session")
def svc_file(serving_dir: Path, iris: tuple[Any, Any]) -> ModelFile:
    """The iris SVC, fit on a DataFrame (so it has feature_names_in_), saved with joblib."""
    from sklearn.svm import SVC

    X, y = iris
    return save_model(SVC().fit(X, y), serving_dir / "iris_svc.joblib", "joblib")


@pytest.fixture(scope="session")
def skops_file(serving_dir: Path, iris: tuple[Any, Any], custom: Any) -> ModelFile:
    """A skops pipeline with a custom function (an untrusted type) and string class labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = iris
    labels = y.map({0: "setosa", 1: "versicolor", 2: "virginica"})
    model = make_pipeline(FunctionTransformer(custom.clip_features), LogisticRegression(max_iter=1000))
    return save_model(model.fit(X, labels), serving_dir / "iris_custom.skops", "skops")


@pytest.fixture(scope="session")
def keys_file(serving_dir: Path) -> Path:
    path = serving_dir / "keys.json"
    write_keys(path, PRIMARY_KEY, SECONDARY_KEY)
    return path


@pytest.fixture(scope="session")
def shared_servers(
    launcher: Launcher, svc_file: ModelFile, skops_file: ModelFile, keys_file: Path
) -> dict[str, Server]:
    """The two servers most tests use, spawned together so they load in parallel."""
    return {
        # iris SVC, joblib, key auth on, one worker
        "svc": launcher.spawn(svc_file.config(auth=True, keys_file=str(keys_file), workers=1)),
        # the skops pipeline with its custom function trusted; no auth
        "skops": launcher.spawn(skops_file.config(trusted_types=["serving_custom.clip_features"], auth=False)),
    }


@pytest.fixture(scope="session")
def svc_server(launcher: Launcher, shared_servers: dict[str, Server]) -> Server:
    return launcher.wait_ready(shared_servers["svc"])


@pytest.fixture(scope="session")
def skops_server(launcher: Launcher, shared_servers: dict[str, Server]) -> Server:
    return launcher.wait_ready(shared_servers["skops"])


@pytest.fixture
def serve_inprocess():
    servers: list[InProcessServer] = []

    def start(app: Any) -> InProcessServer:
        server = InProcessServer(app)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
