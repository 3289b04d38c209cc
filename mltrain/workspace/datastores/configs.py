"""Typed configs of the built-in datastores (the ``datastore`` config group).

Each dataclass is stored in Hydra's ConfigStore as ``datastore/<name>_schema`` and extended by
``conf/datastore/<name>.yaml``, so an unknown option or a wrong type fails at composition, naming
the valid keys. None of them has a field for a credential: credentials come from the environment,
a profile or the file ``credentials_file`` names.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

PACKAGE = "mltrain.workspace.datastores"


@dataclass
class DatastoreConfig:
    _target_: str = f"{PACKAGE}.folder.WorkspaceDatastore"


@dataclass
class WorkspaceDatastoreConfig(DatastoreConfig):
    """The workspace's own content-addressed blob store (its artifact root): the default."""

    _target_: str = f"{PACKAGE}.folder.WorkspaceDatastore"
    root: str | None = None  # null: the workspace's artifact root (where it is when the data is read)


@dataclass
class FolderDatastoreConfig(DatastoreConfig):
    """A local or shared (NFS, SMB) folder; data is stored in it by sha256 under blobs/sha256/."""

    _target_: str = f"{PACKAGE}.folder.FolderDatastore"
    path: str = MISSING  # the folder


@dataclass
class S3DatastoreConfig(DatastoreConfig):
    """s3:// on AWS or any S3-compatible server (MinIO, Ceph); needs `pip install 'mltrain[s3]'`."""

    _target_: str = f"{PACKAGE}.objects.S3Datastore"
    url: str | None = None  # s3://BUCKET/PREFIX where local data is stored; null: read s3:// URIs only
    endpoint_url: str | None = None  # e.g. http://minio:9000; null: AWS_ENDPOINT_URL or AWS itself
    region: str | None = None  # null: AWS_DEFAULT_REGION or the profile's
    profile: str | None = None  # a profile of the AWS config and credentials files
    credentials_file: str | None = None  # an AWS credentials file (INI) to read the profile from
    anon: bool = False  # unsigned requests (public buckets)
    connect_timeout_s: float = 10.0  # per connection attempt
    retries: int = 2  # retries of a failed request


@dataclass
class AzureDatastoreConfig(DatastoreConfig):
    """az:// or abfs:// on Azure Blob Storage / ADLS Gen2; needs `pip install 'mltrain[azure]'`."""

    _target_: str = f"{PACKAGE}.objects.AzureDatastore"
    url: str | None = None  # az://CONTAINER/PREFIX where local data is stored; null: read URIs only
    account_name: str | None = None  # null: AZURE_STORAGE_ACCOUNT_NAME
    credentials_file: str | None = None  # KEY=VALUE lines: account_key, sas_token or connection_string
    anon: bool = False  # anonymous access (public containers)


@dataclass
class GCSDatastoreConfig(DatastoreConfig):
    """gs:// on Google Cloud Storage; needs `pip install 'mltrain[gcs]'`."""

    _target_: str = f"{PACKAGE}.objects.GCSDatastore"
    url: str | None = None  # gs://BUCKET/PREFIX where local data is stored; null: read URIs only
    project: str | None = None  # null: the credentials' project
    credentials_file: str | None = None  # a service account key file; null: GOOGLE_APPLICATION_CREDENTIALS
    anon: bool = False  # anonymous access (public buckets)


@dataclass
class HttpsDatastoreConfig(DatastoreConfig):
    """https:// files, read-only (public files; single files only: a web server lists no folder)."""

    _target_: str = f"{PACKAGE}.web.HttpsDatastore"
    url: str | None = None  # null: the URL given to `mltrain data create`
    timeout_s: float = 30.0  # per request


# ConfigStore name (in group ``datastore``) → schema; conf/datastore/NAME.yaml lists NAME_schema in its defaults
DATASTORE_SCHEMAS: dict[str, type[DatastoreConfig]] = {
    "workspace_schema": WorkspaceDatastoreConfig,
    "folder_schema": FolderDatastoreConfig,
    "s3_schema": S3DatastoreConfig,
    "azure_schema": AzureDatastoreConfig,
    "gcs_schema": GCSDatastoreConfig,
    "https_schema": HttpsDatastoreConfig,
}
