"""Fixtures of the dashboard tests: a seeded workspace, the dashboard on 127.0.0.1, and Playwright
driving the Debian Chromium (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import seed, seed_pages

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A workspace (``root``) with the runs, sweep, artifacts and model of ``helpers.seed``."""
    root = tmp_path_factory.mktemp("ui") / "ws"
    return {"root": root, **seed(root)}


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A workspace (``root``) with what every page shows: ``helpers.seed_pages`` (data assets included)."""
    root = tmp_path_factory.mktemp("pages") / "ws"
    return {"root": root, **seed_pages(root)}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/system-deps.sh installs the Debian package)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM}


@pytest.fixture
def console_errors(page: Any) -> Iterator[list[str]]:
    """Console errors and uncaught exceptions of ``page``."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    yield errors
