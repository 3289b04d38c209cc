"""Fixtures of the deployment tests: a workspace with the iris model trained and registered by a real
run (one per module), and endpoints that are always deleted when the test ends."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from deploytools import model_truth, run, run_json


@dataclass
class Trained:
    """A project folder whose workspace holds run ``run_id`` and model sklearn-iris:1."""

    folder: Path
    run_id: str
    truth: dict[str, Any]  # rows, predictions (by the model in its own environment), sklearn version

    def cli(self, *args: str, timeout: float = 900) -> Any:
        return run(self.folder, *args, timeout=timeout)

    def cli_json(self, *args: str, timeout: float = 900) -> Any:
        return run_json(self.folder, *args, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    folder = tmp_path_factory.mktemp("deploy-project")
    res = run(folder, module="mltrain")
    assert res.returncode == 0, res.output
    runs = run_json(folder, "runs", "list")
    t = Trained(folder, runs[0]["id"], model_truth(folder, "sklearn-iris:1"))
    yield t
    _delete_all(folder)


def _delete_all(folder: Path) -> None:
    res = run(folder, "endpoints", "list", "--json")
    for ep in json.loads(res.stdout) if res.returncode == 0 else []:
        run(folder, "endpoints", "delete", ep["name"], "--missing-ok")


@dataclass
class Deployer:
    """``deploy(*args)``: ``mltrain endpoints deploy ARGS --json`` in a folder; deletes what it deployed."""

    folder: Path
    names: list[str] = field(default_factory=list)

    def __call__(self, *args: str) -> dict[str, Any]:
        res = run(self.folder, "endpoints", "deploy", *args, "--json")
        assert res.returncode == 0, res.output
        info = json.loads(res.stdout)
        self.names.append(info["name"])
        return info

    def cleanup(self) -> None:
        for name in self.names:
            run(self.folder, "endpoints", "delete", name, "--missing-ok")


@pytest.fixture
def deploy(trained: Trained) -> Iterator[Callable[..., dict[str, Any]]]:
    deployer = Deployer(trained.folder)
    yield deployer
    deployer.cleanup()
