"""Datastores: where data lives, behind one small interface (:class:`base.Datastore`).

Built in: ``workspace`` (the workspace's content-addressed blob store, the default), ``folder`` (a local
or shared folder), ``s3``/``azure``/``gcs`` (object storage through fsspec) and ``https`` (read-only).
A datastore is chosen by name from the ``datastore`` config group (``conf/datastore/NAME.yaml``, a
project's own ``conf/`` first) and recorded with each data version as its options, which never hold
a credential (:func:`check_no_secrets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import ConfigError

if TYPE_CHECKING:
    from mltrain.workspace.datastores.base import Datastore
    from mltrain.workspace.datastores.objects import ObjectDatastore

DEFAULT = "workspace"
WORKSPACE_TARGET = "mltrain.workspace.datastores.folder.WorkspaceDatastore"
# URI scheme -> the datastore (conf/datastore/NAME.yaml) whose options read it when none is named
SCHEME_DATASTORES = {
    "s3": "s3",
    "s3a": "s3",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "gs": "gcs",
    "gcs": "gcs",
    "http": "https",
    "https": "https",
}
SECRET_WORDS = ("secret", "password", "passphrase", "token", "account_key", "access_key", "private_key", "sas")
SECRET_NAMES = ("key", "sig", "connection_string", "credentials", "credential")


def secret_options(node: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The options of ``node`` (nested ones too) whose name says they hold a credential; options naming a
    file that holds one (``*_file``, ``*_path``) are fine."""
    found = []
    for key, value in node.items():
        name = str(key).lower()
        if isinstance(value, Mapping):
            found += secret_options(value, f"{prefix}{key}.")
        elif not name.endswith(("_file", "_path")) and (name in SECRET_NAMES or any(w in name for w in SECRET_WORDS)):
            found.append(f"{prefix}{key}")
    return found


def check_no_secrets(node: Mapping[str, Any], name: str) -> None:
    """Refuse a datastore config that carries a credential: it would be recorded with every version."""
    found = secret_options(node)
    if found:
        raise ConfigError(
            f"datastore {name}: {', '.join(found)} would hold a credential, and a datastore's options are "
            "recorded in the workspace",
            hint="give credentials through the environment, a profile, or a file named by credentials_file",
        )


def workspace_node() -> dict[str, Any]:
    """The config node of the default datastore (the workspace's blob store)."""
    return {"_target_": WORKSPACE_TARGET, "root": None}


def artifact_store(url: str) -> ObjectDatastore:
    """The object datastore of an artifact root URI (its options from the environment only), or a
    ConfigError naming the schemes there are."""
    from mltrain.workspace.datastores.objects import AzureDatastore, GCSDatastore, S3Datastore

    scheme = url.split("://", 1)[0].lower()
    for kind in (S3Datastore, AzureDatastore, GCSDatastore):
        if scheme in kind.protocols:
            bucket = url.split("://", 1)[1].strip("/")
            if not bucket:
                raise ConfigError(
                    f"the artifact root {url!r} names no bucket",
                    hint=f"write {scheme}://BUCKET/PREFIX in MLTRAIN_ARTIFACT_ROOT or workspace.artifact_root",
                )
            try:
                return kind(url=url)
            except ConfigError as exc:
                raise ConfigError(f"the artifact root: {exc.message}", hint=exc.hint) from None
    raise ConfigError(
        f"the artifact root {url!r} has the scheme {scheme}://, which mltrain cannot store blobs in",
        hint="use a folder, or s3://BUCKET/PREFIX, az://CONTAINER/PREFIX or gs://BUCKET/PREFIX "
        "(MLTRAIN_ARTIFACT_ROOT or workspace.artifact_root)",
    )


def open_datastore(node: Mapping[str, Any], artifact_root: Path | str, name: str = "datastore") -> Datastore:
    """The datastore a config node (or a version's recorded options) describes; the workspace store
    without a ``root`` is this workspace's artifact root (a folder, or an object store URI whose blobs
    have the same layout)."""
    from mltrain.plugin import instantiate_plugin
    from mltrain.workspace.datastores.base import Datastore

    check_no_secrets(node, name)
    options = dict(node)
    if options.get("_target_") == WORKSPACE_TARGET:  # the default: no plugin machinery needed
        from mltrain.workspace.datastores.folder import WorkspaceDatastore

        unknown = sorted(set(options) - {"_target_", "root"})
        if unknown:
            raise ConfigError(f"datastore {name}: the workspace datastore has no option {', '.join(unknown)}")
        if options.get("root") is None and isinstance(artifact_root, str):
            return artifact_store(artifact_root)
        return WorkspaceDatastore(options.get("root") or str(artifact_root))
    return instantiate_plugin(options, "datastore", Datastore)
