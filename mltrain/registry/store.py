"""The model registry: register a file or folder (its format checked, its files stored as blobs by
sha256), load a version in this process, download its files. Versions, aliases and archiving are the
workspace's model store (:mod:`mltrain.workspace.models`), which the registry extends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import RegistryError
from mltrain.registry.formats import check_model_file, detect_format
from mltrain.workspace.blobs import BlobStore
from mltrain.workspace.db import Database
from mltrain.workspace.models import ModelFile, ModelStore, ModelVersion
from mltrain.workspace.names import check_name
from mltrain.workspace.paths import check_relpath, safe_join

if TYPE_CHECKING:
    from mltrain.workspace import Workspace


def _files_of(src: Path) -> list[tuple[str, Path]]:
    if src.is_file():
        return [(src.name, src)]
    return sorted((str(p.relative_to(src)).replace(os.sep, "/"), p) for p in src.rglob("*") if p.is_file())


class ModelRegistry(ModelStore):
    """The models of one workspace: its model store, plus registering, loading and downloading."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        super().__init__(db)
        self.blobs = blobs

    @classmethod
    def of(cls, ws: Workspace) -> ModelRegistry:
        """The registry of workspace ``ws``."""
        return cls(ws.db, ws.blobs)

    def register(
        self,
        name: str,
        source: str | os.PathLike[str],
        *,
        format: str | None = None,  # noqa: A002 - the user-facing name
        framework: str | None = None,
        framework_version: str | None = None,
        description: str | None = None,
        cpu: float | None = None,
        memory_gb: float | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        run_id: str | None = None,
        env_hash: str | None = None,
    ) -> ModelVersion:
        """Store the file or folder ``source`` as the next version of ``name``."""
        check_name(name, "model", RegistryError)
        src = Path(source)
        if not src.exists():
            raise RegistryError(
                f"cannot register {name}: {src} does not exist",
                hint="check the model path (relative to the run folder for a run's model)",
            )
        files = _files_of(src)
        found = [check_model_file(p, rel, format if src.is_file() else None) for rel, p in files]
        stored = [ModelFile(rel, *self.blobs.put_file(p)) for rel, p in files]
        if not stored:
            raise RegistryError(f"cannot register {name}: the folder {src} is empty")
        if src.is_file():
            sha = stored[0].sha256
        else:
            manifest = [[f.relpath, f.sha256, f.size] for f in stored]
            sha = self.blobs.put_bytes(json.dumps(manifest, separators=(",", ":")).encode())
        fmt = (found[0] if src.is_file() else None) or detect_format(
            stored[0].relpath if src.is_file() else src.name, format
        )
        return self.add_version(
            name,
            stored,
            path=src.name,
            sha256=sha,
            format=fmt,
            framework=framework,
            framework_version=framework_version,
            description=description,
            cpu=cpu,
            memory_gb=memory_gb,
            tags=tags,
            properties=properties,
            run_id=run_id,
            env_hash=env_hash,
        )

    def load(self, ref: str, trusted: list[str] | tuple[str, ...] | None = None) -> Any:
        """The estimator of ``ref`` loaded in this process, after checking the stored file's sha256.

        joblib files are unpickled (load only models you trust); skops files load only when every
        type they hold is trusted by skops or named in ``trusted`` (RegistryError lists the others).
        """
        from mltrain.registry.loading import load_version

        return load_version(self.blobs, self.get(ref), trusted)

    def download(self, ref: str, dest: str | os.PathLike[str]) -> Path:
        """Write the model's file(s) under ``dest``, each checked against its sha256; return the path."""
        mv = self.get(ref)
        root = Path(dest)
        single = len(mv.files) == 1 and mv.files[0].relpath == mv.path
        target = safe_join(root, mv.path)
        outs = [target if single else safe_join(target, check_relpath(f.relpath)) for f in mv.files]
        for f, out in zip(mv.files, outs, strict=True):
            self.blobs.copy_to(f.sha256, out)
        return target
