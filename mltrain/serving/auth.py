"""Key authentication: ``Authorization: Bearer KEY`` checked against the sha256 digests in the keys file.

The keys file is JSON ``{"primary": "<sha256 hex>", "secondary": "<sha256 hex>"}`` (the plain keys are
never stored). It is re-read when its mtime, size or inode changes, checked at most once a second, so
regenerating a key takes effect without a restart. A file that cannot be read keeps the last good keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time

from mltrain.serving.errors import BadRequest, ServingError

log = logging.getLogger("mltrain.serving")

CHECK_INTERVAL_S = 1.0
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="mltrain"')]
_INVALID = [(b"www-authenticate", b'Bearer realm="mltrain", error="invalid_token"')]


def read_keys(path: str) -> tuple[bytes, ...]:
    """The key digests in ``path`` (raises ValueError/OSError on a bad file)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object with primary and secondary")
    digests = []
    for slot in ("primary", "secondary"):
        value = data.get(slot)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) != 64:
            raise ValueError(f"{slot} must be the sha256 hex digest of a key (64 hex digits)")
        digests.append(bytes.fromhex(value))
    if not digests:
        raise ValueError("no primary or secondary key digest")
    return tuple(digests)


class KeyChecker:
    """Checks the Authorization header value; reloads the keys file when it changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        try:
            self._stamp = self._stat()
            self.digests = read_keys(path)
        except (OSError, ValueError) as exc:
            raise ServingError(
                f"cannot read the keys file {path}: {exc}",
                'write it as JSON {"primary": "<sha256 hex of key>", "secondary": "<sha256 hex of key>"}',
            ) from None
        self._next_check = time.monotonic() + CHECK_INTERVAL_S

    def _stat(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _maybe_reload(self, now: float) -> None:
        self._next_check = now + CHECK_INTERVAL_S
        try:
            stamp = self._stat()
            if stamp == self._stamp:
                return
            self.digests = read_keys(self.path)
            self._stamp = stamp
            log.info("keys file %s reloaded", self.path)
        except (OSError, ValueError) as exc:
            log.error("keys file %s cannot be read (%s); keeping the previous keys", self.path, exc)

    def check(self, header: bytes | None, now: float) -> None:
        """Raise a 401 :class:`BadRequest` unless ``header`` carries a valid key. ``now`` is monotonic seconds."""
        if now >= self._next_check:
            self._maybe_reload(now)
        if header is None:
            raise BadRequest(401, 'missing key: send the header "Authorization: Bearer <key>"', _CHALLENGE)
        scheme, _, key = header.partition(b" ")
        key = key.strip()
        if not key or scheme.lower() != b"bearer":
            raise BadRequest(401, 'malformed Authorization header: expected "Bearer <key>"', _CHALLENGE)
        digest = hashlib.sha256(key).digest()
        ok = False
        for expected in self.digests:  # compare with every key, not stopping early
            ok |= hmac.compare_digest(digest, expected)
        if not ok:
            raise BadRequest(401, "invalid key", _INVALID)
