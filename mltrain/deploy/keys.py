"""Endpoint keys: made with ``secrets.token_urlsafe``, stored only as sha256 digests (in the workspace
and in the endpoint's keys file, mode 0600), shown in full once, when made."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path

SLOTS = ("primary", "secondary")
KEY_BYTES = 32


def new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def digest(key: str) -> str:
    """The sha256 hex digest of a key (what is stored and what the server compares)."""
    return hashlib.sha256(key.encode()).hexdigest()


def fingerprint(key_digest: str | None) -> str:
    """A short, safe-to-show name of a stored key."""
    return f"sha256:{key_digest[:12]}" if key_digest else "-"


def write_keys_file(path: Path, digests: dict[str, str]) -> None:
    """Write ``{"primary": hex, "secondary": hex}`` to ``path`` atomically, readable by its owner only.

    Atomic (a new file renamed over the old one), so the server never reads half a file and sees
    the change (inode and mtime) at its next check.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({slot: digests[slot] for slot in SLOTS if digests.get(slot)}, f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
