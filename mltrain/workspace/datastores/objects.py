"""Datastores on object storage through fsspec: ``s3://`` (AWS, MinIO, Ceph, any S3-compatible server),
``az://``/``abfs://`` (Azure Blob Storage, ADLS Gen2) and ``gs://`` (Google Cloud Storage).

Each needs its fsspec package (``pip install 'mltrain[s3]'``, ``[azure]``, ``[gcs]``), imported only
when the store is first used. Writes are uploads that only become visible when complete (committed),
and are discarded on any failure. An ``s3://`` store reads (GET, HEAD, LIST, presigning) through
botocore's own client, so a command that only reads never imports s3fs (see s3client). Credentials
come from the environment (the SDK's own variables), a profile, or a file named by
``credentials_file``; they are read when the store connects and are held in memory only.
"""

from __future__ import annotations

import base64
import importlib
import os
import threading
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from mltrain.errors import ConfigError, DataError
from mltrain.workspace.blobs import CHUNK
from mltrain.workspace.datastores.base import Datastore, HashingReader, StoredFile, check_key, mismatch
from mltrain.workspace.datastores.credentials import check_url_has_no_secret, read_credentials_file
from mltrain.workspace.datastores.sdk_errors import sdk_errors

_CLIENT_LOCK = threading.Lock()
READ_BLOCK = 8 << 20  # bytes per ranged read of an object (the read-ahead buffer of one open file)


class ObjectDatastore(Datastore):
    """A bucket (or container) and prefix reached through an fsspec file system."""

    protocols: ClassVar[tuple[str, ...]]
    package: ClassVar[tuple[str, str]]  # (module, mltrain extra)
    credentials_hint: ClassVar[str]

    def __init__(self, url: str | None, **options: Any) -> None:
        if url is not None:
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            if scheme not in self.protocols:
                raise ConfigError(
                    f"datastore.url={url!r} is not a {self.kind} URL",
                    hint=f"write {self.protocols[0]}://BUCKET/PREFIX",
                )
            check_url_has_no_secret("datastore.url", url)
        self._url = url.rstrip("/") if url else None
        self._options = options
        self._fs: Any = None
        self._pid = os.getpid()

    @property
    def url(self) -> str:
        return self._url or f"{self.protocols[0]}://"

    def _filesystem(self) -> Any:
        """A new fsspec file system with this store's options (credentials resolved now)."""
        raise NotImplementedError

    @property
    def fs(self) -> Any:
        """The file system, connected on first use (again in a forked child: an fsspec file system's event
        loop does not survive a fork)."""
        if self._fs is None or self._pid != os.getpid():
            module, extra = self.package
            try:
                importlib.import_module(module)
            except ImportError:
                raise DataError(
                    f"{self.protocols[0]}:// datastores need the {module} package, which is not installed",
                    hint=f"pip install 'mltrain[{extra}]'",
                ) from None
            with self._errors("connect"):
                self._fs = self._filesystem()
            self._pid = os.getpid()
        return self._fs

    def _root(self) -> str:
        if self._url is None:
            raise DataError(
                f"the {self.kind} datastore has no url, so it cannot store data",
                hint=f"set datastore.url={self.protocols[0]}://BUCKET/PREFIX in its conf/datastore/ file",
            )
        return self._path(self._url).rstrip("/")

    def _path(self, url: str) -> str:
        """``url`` as a path of the file system (no scheme)."""
        return str(type(self.fs)._strip_protocol(url))

    def check_bucket(self) -> None:
        """One request for the bucket (container) of the URL: a DataError if it is missing, refused or
        cannot be reached."""
        with self._errors("connect"):
            self.fs.info(self.url.split("://", 1)[1].split("/", 1)[0])

    def _full(self, key: str) -> str:
        return f"{self._root()}/{check_key(key, self.url)}"

    def _errors(self, what: str, key: str | None = None) -> AbstractContextManager[None]:
        return sdk_errors(self.url, self.credentials_hint, what, key)

    @staticmethod
    def _checksum(info: dict[str, Any]) -> str | None:
        for key in ("ETag", "etag"):
            if info.get(key):
                return "etag:" + str(info[key]).strip('"')
        return f"md5:{info['md5Hash']}" if info.get("md5Hash") else None

    def open(self, key: str) -> BinaryIO:
        full = self._full(key)
        with self._errors("read", key):
            return self.fs.open(full, "rb", block_size=READ_BLOCK, cache_type="readahead")  # type: ignore[no-any-return]

    def info(self, key: str) -> StoredFile:
        full = self._full(key)
        with self._errors("read", key):
            found = self.fs.info(full)
        if found.get("type") != "file":
            raise DataError(f"{key} in {self.url} is a folder, not a file", hint="create it as --type uri_folder")
        return StoredFile(key, int(found["size"]), self._checksum(found))

    def list(self, prefix: str = "") -> list[StoredFile]:
        base = self._full(prefix.rstrip("/")) if prefix else self._root()
        with self._errors("list"):
            found = self.fs.find(base, detail=True)
        root = self._root()
        out = []
        for path, info in found.items():
            path = path.rstrip("/")
            if info.get("type") != "file" or not path.startswith(base + "/"):
                continue  # a folder marker, or the prefix itself being a file
            out.append(StoredFile(check_key(path[len(root) + 1 :], self.url), int(info["size"]), self._checksum(info)))
        return sorted(out, key=lambda f: f.key)

    def exists(self, key: str) -> bool:
        full = self._full(key)
        with self._errors("read", key):
            return bool(self.fs.isfile(full))

    def write(self, key: str, stream: BinaryIO, sha256: str | None = None) -> StoredFile:
        self._writable()
        full = self._full(key)
        with self._errors("write", key):
            out = self.fs.open(full, "wb", autocommit=False)
        try:
            reader = HashingReader(stream, hashing=sha256 is not None)
            while chunk := reader.read(CHUNK):  # a failing source raises its own error
                with self._errors("write", key):
                    out.write(chunk)
            if sha256 is not None and reader.hexdigest() != sha256:
                raise mismatch(key, self.url, sha256, reader.hexdigest())
            with self._errors("write", key):
                out.close()
                out.commit()
        except BaseException:
            with suppress(Exception):
                out.discard()
            out.closed = True  # closing now would start a new upload
            raise
        return StoredFile(key, reader.size)

    def signed_url(self, key: str, expires_s: int) -> str | None:
        full = self._full(key)
        try:
            with self._errors("sign", key):
                return str(self.fs.url(full, expires=int(expires_s)))
        except (DataError, NotImplementedError):
            return None  # the store's SDK cannot sign (e.g. GCS without a service account key)

    def at(self, url: str) -> Datastore:
        other = type(self)(url=url, **self._options)
        other._fs, other._pid = self._fs, self._pid  # the same connection: a file system is not bound to a root
        return other


class S3Datastore(ObjectDatastore):
    """``s3://BUCKET/PREFIX`` on AWS or any S3-compatible server (MinIO, Ceph, moto)."""

    kind = "s3"
    signs_puts = True
    protocols = ("s3", "s3a")
    package = ("s3fs", "s3")
    credentials_hint = (
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, or datastore.profile, or "
        "datastore.credentials_file (an AWS credentials file)"
    )

    def __init__(
        self,
        url: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        credentials_file: str | None = None,
        anon: bool = False,
        connect_timeout_s: float = 10.0,
        retries: int = 2,
    ) -> None:
        check_url_has_no_secret("datastore.endpoint_url", endpoint_url)
        super().__init__(
            url,
            endpoint_url=endpoint_url,
            region=region,
            profile=profile,
            credentials_file=credentials_file,
            anon=anon,
            connect_timeout_s=connect_timeout_s,
            retries=retries,
        )
        self._client: Any = None
        self._client_pid = os.getpid()

    @property
    def client(self) -> Any:
        """botocore's S3 client for the reads (GET, HEAD, LIST, presigning), which starts without
        importing s3fs; made on first use (again in a forked child)."""
        with _CLIENT_LOCK:  # one client, even when the first reads are from several threads
            if self._client is None or self._client_pid != os.getpid():
                from mltrain.workspace.datastores.s3client import new_client

                with self._errors("connect"):
                    self._client = new_client(self._options, self._credentials())
                self._client_pid = os.getpid()
            return self._client

    def _call(self, what: str, key: str | None, method: str, missing_ok: bool = False, **params: Any) -> Any:
        """``client.method(**params)``, failing as a DataError (None for a missing object if ``missing_ok``)."""
        from mltrain.workspace.datastores.s3client import translated

        with self._errors(what, key):
            try:
                return getattr(self.client, method)(**params)
            except Exception as exc:  # noqa: BLE001 - translated, then reported by _errors
                error = translated(exc)
                if missing_ok and isinstance(error, FileNotFoundError):
                    return None
                raise error from None

    def _path(self, url: str) -> str:
        return url.split("://", 1)[1]

    def check_bucket(self) -> None:
        self._call("connect", None, "head_bucket", Bucket=self.url.split("://", 1)[1].split("/", 1)[0])

    def _bucket_key(self, key: str) -> tuple[str, str]:
        bucket, _, path = self._full(key).partition("/")
        return bucket, path

    def _get(self, key: str) -> tuple[BinaryIO, str | None]:
        """One GET of the whole object, streamed (no ranged reads): its body and ETag."""
        from mltrain.workspace.datastores.s3client import Body

        response = self._s3("read", key, "get_object")
        return Body(lambda: self._errors("read", key), response["Body"]), self._checksum(response)  # type: ignore[return-value]

    def open(self, key: str) -> BinaryIO:
        return self._get(key)[0]

    def open_version(self, key: str, checksum: str) -> BinaryIO:
        body, now = self._get(key)
        if now != checksum:
            body.close()
            raise mismatch(key, self.url, checksum, str(now))
        return body

    def info(self, key: str) -> StoredFile:
        found = self._s3("read", key, "head_object", missing_ok=True)
        if found is None:  # HEAD has no body to say whether the key or the bucket is missing: LIST does
            bucket, path = self._bucket_key(key)
            listed = self._call("list", None, "list_objects_v2", Bucket=bucket, Prefix=path + "/", MaxKeys=1)
            if listed.get("KeyCount"):
                raise DataError(f"{key} in {self.url} is a folder, not a file", hint="create it as --type uri_folder")
            raise DataError(f"{key} does not exist in {self.url}", hint="check the URL and that the bucket exists")
        return StoredFile(key, int(found["ContentLength"]), self._checksum(found))

    def exists(self, key: str) -> bool:
        return self._s3("read", key, "head_object", missing_ok=True) is not None

    def list(self, prefix: str = "") -> list[StoredFile]:
        root = self._root()
        bucket, _, path = (self._full(prefix.rstrip("/")) if prefix else root).partition("/")
        out, token = [], None
        while True:
            more = {"ContinuationToken": token} if token else {}
            page = self._call("list", None, "list_objects_v2", Bucket=bucket, Prefix=f"{path}/" if path else "", **more)
            for item in page.get("Contents", ()):
                full = f"{bucket}/{item['Key']}"
                if not full.endswith("/"):  # not a folder marker
                    key = check_key(full[len(root) + 1 :], self.url)
                    out.append(StoredFile(key, int(item["Size"]), self._checksum(item)))
            token = page.get("NextContinuationToken")
            if not token:
                return sorted(out, key=lambda f: f.key)

    def signed_url(self, key: str, expires_s: int) -> str | None:
        try:
            return str(
                self._call(
                    "sign",
                    key,
                    "generate_presigned_url",
                    ClientMethod="get_object",
                    Params=self._source(key),
                    ExpiresIn=int(expires_s),
                )
            )
        except DataError:
            return None

    def at(self, url: str) -> Datastore:
        other = super().at(url)
        other._client, other._client_pid = self._client, self._client_pid  # type: ignore[attr-defined]
        return other

    def _credentials(self) -> dict[str, str]:
        """Explicit keys (``key``, ``secret``, ``token``) from ``credentials_file``, or the ``profile``; empty
        for the SDK's own chain (the environment, its default profile, an instance role)."""
        o = self._options
        if not o["credentials_file"]:
            return {"profile": o["profile"]} if o["profile"] else {}
        found = read_credentials_file(
            o["credentials_file"],
            o["profile"] or "default",
            ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"),
        )
        creds = {"key": found.get("aws_access_key_id", ""), "secret": found.get("aws_secret_access_key", "")}
        return creds | ({"token": found["aws_session_token"]} if found.get("aws_session_token") else {})

    def _s3(self, what: str, key: str, method: str, missing_ok: bool = False, **params: Any) -> Any:
        """One S3 API call (``method`` of the client) on the object ``key``, errors named (see :meth:`_call`)."""
        return self._call(what, key, method, missing_ok=missing_ok, **self._source(key), **params)

    def signed_put(self, key: str, expires_s: int, sha256: str) -> tuple[str, dict[str, str]] | None:
        """A presigned put_object with the content's ChecksumSHA256 signed in: S3 refuses a body that
        does not hash to it (a server that does not check it is covered by :meth:`adopt`)."""
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        try:
            with self._errors("sign", key):
                params = {**self._source(key), "ChecksumSHA256": checksum}
                url = self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=int(expires_s))
        except (DataError, NotImplementedError):
            return None
        return str(url), {"x-amz-checksum-sha256": checksum, "Content-Type": "application/octet-stream"}

    def signed_post(self, prefix: str, expires_s: int, max_bytes: int) -> tuple[str, dict[str, str], str] | None:
        """A presigned POST whose policy holds the key to ``prefix`` and each object's size to ``max_bytes``."""
        bucket, path = self._bucket_key(prefix.rstrip("/"))
        path += "/"
        conditions = [["starts-with", "$key", path], ["content-length-range", 0, int(max_bytes)]]
        try:
            with self._errors("sign", prefix):
                post = self.client.generate_presigned_post(
                    Bucket=bucket, Key=path + "${filename}", Conditions=conditions, ExpiresIn=int(expires_s)
                )
        except (DataError, NotImplementedError):
            return None
        fields = {str(k): str(v) for k, v in post["fields"].items() if k != "key"}
        return str(post["url"]), fields, path

    def adopt(self, staged: str, key: str, sha256: str) -> bool:
        """A server-side copy of ``staged`` that has S3 compute its SHA-256 (no byte read here), compared
        with ``sha256``; when equal, a second copy gives it the name ``key``. ``staged`` goes either way."""
        checked = staged + ".checked"
        try:
            copy = self._s3(
                "check", checked, "copy_object", ChecksumAlgorithm="SHA256", CopySource=self._source(staged)
            )
            got = copy.get("CopyObjectResult", {}).get("ChecksumSHA256")
            ok = got is not None and base64.b64decode(got).hex() == sha256
            if ok and not self.exists(key):
                self._s3("write", key, "copy_object", CopySource=self._source(checked))
            return ok
        finally:
            for done in (staged, checked):
                with suppress(DataError):
                    self.remove(done)

    def remove(self, key: str) -> None:
        self._s3("remove", key, "delete_object")

    def _source(self, key: str) -> dict[str, str]:
        bucket, path = self._bucket_key(key)
        return {"Bucket": bucket, "Key": path}

    def _filesystem(self) -> Any:
        import s3fs

        o = self._options
        config = {
            "connect_timeout": float(o["connect_timeout_s"]),
            "read_timeout": 120,
            "retries": {"max_attempts": int(o["retries"]) + 1, "mode": "standard"},
            "signature_version": "s3v4",
        }
        return s3fs.S3FileSystem(
            anon=bool(o["anon"]),
            endpoint_url=o["endpoint_url"] or None,
            client_kwargs={"region_name": o["region"]} if o["region"] else None,
            config_kwargs=config,
            skip_instance_cache=True,
            use_listings_cache=False,
            **self._credentials(),
        )


class AzureDatastore(ObjectDatastore):
    """``az://CONTAINER/PREFIX`` (or ``abfs://``) on Azure Blob Storage or ADLS Gen2."""

    kind = "azure"
    protocols = ("az", "abfs", "abfss")
    package = ("adlfs", "azure")
    credentials_hint = (
        "set AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN or "
        "AZURE_STORAGE_CONNECTION_STRING, or name a file of KEY=VALUE lines in datastore.credentials_file"
    )

    def __init__(
        self,
        url: str | None = None,
        account_name: str | None = None,
        credentials_file: str | None = None,
        anon: bool = False,
    ) -> None:
        super().__init__(url, account_name=account_name, credentials_file=credentials_file, anon=anon)

    def _filesystem(self) -> Any:
        import adlfs

        o = self._options
        opts: dict[str, Any] = {"account_name": o["account_name"]} if o["account_name"] else {}
        if o["credentials_file"]:
            keys = ("account_name", "account_key", "sas_token", "connection_string")
            opts.update(read_credentials_file(o["credentials_file"], None, keys))
        if o["anon"]:
            opts["anon"] = True
        return adlfs.AzureBlobFileSystem(skip_instance_cache=True, **opts)


class GCSDatastore(ObjectDatastore):
    """``gs://BUCKET/PREFIX`` on Google Cloud Storage."""

    kind = "gcs"
    protocols = ("gs", "gcs")
    package = ("gcsfs", "gcs")
    credentials_hint = (
        "set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or name that file in "
        "datastore.credentials_file"
    )

    def __init__(
        self,
        url: str | None = None,
        project: str | None = None,
        credentials_file: str | None = None,
        anon: bool = False,
    ) -> None:
        super().__init__(url, project=project, credentials_file=credentials_file, anon=anon)

    def _filesystem(self) -> Any:
        import gcsfs

        o = self._options
        token = str(Path(o["credentials_file"]).expanduser()) if o["credentials_file"] else None
        token = "anon" if o["anon"] else token
        return gcsfs.GCSFileSystem(project=o["project"], token=token, skip_instance_cache=True)
