"""Helpers shared by test modules (import them from here, not from conftest: every test folder has a
conftest of its own)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_script(folder: Path, name: str, body: str) -> Path:
    """Write a job script into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body)
    return path
