"""botocore's own S3 client, for the plain reads of an ``s3://`` datastore (GET, HEAD, LIST, presigning).

It starts in a fraction of the time s3fs takes to import (aiobotocore, aiohttp), which a one-off
``mltrain data download`` or ``data check`` pays in full. The same options and credentials as the
store's s3fs file system (used for its uploads); credentials are held in memory only.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from typing import Any

NOT_FOUND = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
REFUSED = frozenset({"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"})


def new_client(options: dict[str, Any], creds: dict[str, str]) -> Any:
    """An S3 client with the store's endpoint, region, timeouts and retries; ``creds`` are explicit keys
    (``key``, ``secret``, ``token``) or a ``profile``, or empty for the SDK's own chain."""
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(
        connect_timeout=float(options["connect_timeout_s"]),
        read_timeout=120,
        retries={"max_attempts": int(options["retries"]) + 1, "mode": "standard"},
        signature_version=UNSIGNED if options["anon"] else "s3v4",  # s3v4 also for presigned URLs, as AWS requires
    )
    session = botocore.session.Session(profile=creds.get("profile"))
    return session.create_client(
        "s3",
        endpoint_url=options["endpoint_url"] or None,
        region_name=options["region"] or None,
        config=config,
        aws_access_key_id=creds.get("key"),
        aws_secret_access_key=creds.get("secret"),
        aws_session_token=creds.get("token"),
    )


def translated(exc: Exception) -> Exception:
    """A client's "no such key/bucket" as FileNotFoundError and "access denied" as PermissionError (as
    s3fs reports them); any other error as it is."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return exc
    code = str(response.get("Error", {}).get("Code", ""))
    if code in NOT_FOUND:
        return FileNotFoundError(str(exc))
    if code in REFUSED:
        return PermissionError(str(exc))
    return exc


class Body:
    """The streamed body of one GET; a failing read raises what ``errors()`` (the store's) makes of it."""

    def __init__(self, errors: Callable[[], AbstractContextManager[None]], body: Any) -> None:
        self._errors, self._body = errors, body

    def read(self, n: int = -1) -> bytes:
        with self._errors():
            return self._body.read(None if n < 0 else n)  # type: ignore[no-any-return]

    def close(self) -> None:
        with suppress(Exception):
            self._body.close()

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
