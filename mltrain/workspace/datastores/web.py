"""A read-only datastore over ``https://`` (and ``http://``) URLs, with the standard library.

A web server cannot list a folder, so only single files (``uri_file``) are read from it; each file's
checksum is its ``ETag`` when the server sends one. A URL carrying a user, a password or a signed
token is refused: it would put a credential into the workspace's records.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, quote, urlsplit

from mltrain.errors import ConfigError, DataError
from mltrain.workspace.datastores.base import Datastore, StoredFile, check_key
from mltrain.workspace.datastores.credentials import check_url_has_no_secret

SECRET_PARAMS = {"sig", "signature", "sv", "key", "apikey", "api_key", "credential"}  # exact names (SAS, keys)
SECRET_PARTS = ("token", "secret", "password", "x-amz-", "x-goog-")  # anywhere in a name


def check_no_signed_query(url: str) -> None:
    """Refuse a URL whose query carries a signature or token (a pre-signed or SAS URL)."""
    for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        lowered = name.lower()
        if lowered in SECRET_PARAMS or any(part in lowered for part in SECRET_PARTS):
            raise ConfigError(
                f"the URL's query holds {name!r}, a signature or token: it would be stored in the workspace",
                hint="give an object-storage URI (s3://, az://, gs://) with credentials from the environment instead",
            )


class HttpsDatastore(Datastore):
    """Files served over HTTPS (or HTTP), read-only."""

    kind = "https"
    read_only = True

    def __init__(self, url: str | None = None, timeout_s: float = 30.0) -> None:
        if url is not None:
            if urlsplit(url).scheme not in ("http", "https"):
                raise ConfigError(f"datastore.url={url!r} is not an https:// URL")
            check_url_has_no_secret("the URL", url)
            check_no_signed_query(url)
        self._url = url.rstrip("/") if url else None
        self.timeout_s = float(timeout_s)

    @property
    def url(self) -> str:
        return self._url or "https://"

    def _full(self, key: str) -> str:
        if self._url is None:
            raise DataError("the https datastore has no url", hint="name a file by its https:// URL")
        return f"{self._url}/{quote(check_key(key, self.url))}"

    @contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        try:
            yield
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410):
                raise DataError(f"{key} does not exist at {self.url} (HTTP {exc.code})") from None
            if exc.code in (401, 403):
                raise DataError(
                    f"{self.url} refused access to {key} (HTTP {exc.code})",
                    hint="https datastores read public files only: use an object-storage datastore with credentials",
                ) from None
            raise DataError(f"reading {key} from {self.url} failed: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DataError(f"cannot reach {self.url}: {reason}", hint="check the URL and the network") from None

    def _request(self, key: str, method: str) -> Any:
        request = urllib.request.Request(self._full(key), method=method)
        with self._errors(key):
            return urllib.request.urlopen(request, timeout=self.timeout_s)  # noqa: S310 - http(s) only, checked

    def open(self, key: str) -> BinaryIO:
        return self._request(key, "GET")  # type: ignore[no-any-return]

    def info(self, key: str) -> StoredFile:
        with self._request(key, "HEAD") as response:
            length = response.headers.get("Content-Length")
            etag = response.headers.get("ETag")
        if length is None:
            raise DataError(f"{self._full(key)} has no Content-Length", hint="the server must say each file's size")
        return StoredFile(key, int(length), f"etag:{etag.strip(chr(34))}" if etag else None)

    def list(self, prefix: str = "") -> list[StoredFile]:
        raise DataError(
            f"a web server cannot list a folder ({self.url}/{prefix})",
            hint="create a single file (--type uri_file), or put the folder on object storage",
        )

    def exists(self, key: str) -> bool:
        try:
            self.info(key)
        except DataError:
            return False
        return True

    def write(self, key: str, stream: BinaryIO, sha256: str | None = None) -> StoredFile:
        self._writable()
        raise AssertionError("unreachable")

    def signed_url(self, key: str, expires_s: int) -> str | None:
        return self._full(key)  # a public file: its URL needs no signature

    def at(self, url: str) -> Datastore:
        return HttpsDatastore(url, self.timeout_s)
