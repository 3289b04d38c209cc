"""A job's ``job.inputs`` and ``job.outputs`` resolved against the workspace before anything is recorded.

Each input becomes an :class:`~mltrain.compute.data_io.InputSpec`: the files of a recorded version
(``data:NAME[:VERSION|@ALIAS]``), of a URI listed where it is (``s3://...``, ``https://...``) or of a
local path hashed now, with a :class:`DatastoreSource` the compute target reads missing bytes from.
Anything wrong (an unknown asset or version, a store that cannot be reached, a path that does not
exist) is a ConfigError naming the input and the valid choices.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mltrain.compute.data_io import InputFile, InputSpec, OutputSpec
from mltrain.data.configs import InputConfig, datastore_node, parse_io
from mltrain.data.create import FOLDER_TARGET, default_datastore, local_files, reference_manifest, uri_scheme
from mltrain.data.refs import parse_ref, resolve
from mltrain.data.transfer import open_source
from mltrain.errors import ConfigError, DataError, MltrainError
from mltrain.runs.job_data import JobData, JobInput
from mltrain.workspace.blobs import sha256_file
from mltrain.workspace.data import PREFIX, ManifestEntry, manifest_digest
from mltrain.workspace.datastores import DEFAULT, open_datastore
from mltrain.workspace.datastores.base import ContentMismatch, Datastore
from mltrain.workspace.paths import walk_files

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

SIGNED_URL_S = 3600  # how long a node may fetch a file by the signed URL it was handed


def ref_id(location: str, entry: ManifestEntry) -> str:
    """The cache id of a reference's file: its source, path, size and store checksum (the content as recorded)."""
    text = json.dumps([location, entry.relpath, entry.size, entry.checksum], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class DatastoreSource:
    """The bytes of an input's files in a datastore (``key_of`` maps a file to its key there)."""

    def __init__(self, store: Datastore, key_of: Callable[[InputFile], str], what: str) -> None:
        self.store, self.key_of, self.what = store, key_of, what

    def open(self, f: InputFile) -> BinaryIO:
        key = self.key_of(f)
        try:
            return self.store.open(key) if f.checksum is None else self.store.open_version(key, f.checksum)
        except ContentMismatch:
            raise DataError(
                f"{f.relpath} of {self.what} changed at its source since it was recorded",
                hint="`mltrain data check` lists what changed; create a new version (or fix the source)",
            ) from None

    def local_path(self, f: InputFile) -> Path | None:
        return self.store.local_path(self.key_of(f)) if f.checksum is None else None

    def node_hint(self, f: InputFile) -> dict[str, Any] | None:
        url = self.store.signed_url(self.key_of(f), SIGNED_URL_S)
        if url is None:
            return None
        return {
            "url": url,
            "etag": f.checksum[len("etag:") :] if f.checksum and f.checksum.startswith("etag:") else None,
        }


def _files(location: str, entries: list[ManifestEntry]) -> tuple[InputFile, ...]:
    return tuple(
        InputFile(e.relpath, e.size, e.sha256, None if e.sha256 else ref_id(location, e), e.checksum) for e in entries
    )


def _version_input(ws: Workspace, name: str, cfg: InputConfig) -> JobInput:
    version = resolve(ws, cfg.path)
    if cfg.type is not None and cfg.type != version.type:
        raise ConfigError(f"job.inputs.{name}: {version.ref} is a {version.type}, not {cfg.type}")
    if cfg.mode == "direct":
        if version.stored:
            raise ConfigError(
                f"job.inputs.{name}: {version.ref} is stored in datastore {version.datastore}, which a script "
                "cannot read by URI",
                hint=f"use job.inputs.{name}.mode=download or mount",
            )
        spec = InputSpec(name, cfg.mode, version.type, version.source, version.digest)
        return JobInput(spec, version)
    store, key_of_entry = open_source(ws, version)
    location = version.source if version.type == "uri_folder" else version.source.rpartition("/")[0]
    source = DatastoreSource(
        store, lambda f: key_of_entry(ManifestEntry(f.relpath, f.size, f.sha256, f.checksum)), version.ref
    )
    files = _files(location, list(version.manifest))
    return JobInput(InputSpec(name, cfg.mode, version.type, version.ref, version.digest, files, source), version)


def _uri_input(ws: Workspace, name: str, cfg: InputConfig) -> JobInput:
    text = cfg.path
    if cfg.mode == "direct":
        return JobInput(InputSpec(name, cfg.mode, cfg.type or "uri_folder", text, None), None)
    store_name = cfg.datastore or default_datastore(text)
    node = datastore_node(store_name, []) if store_name else {"_target_": FOLDER_TARGET, "path": "/"}
    store = open_datastore(node or {}, ws.settings.artifact_root, str(store_name or "folder"))
    kind, at, entries = reference_manifest(store, text, cfg.type)
    location = text.rstrip("/") if kind == "uri_folder" else text.rstrip("/").rpartition("/")[0]
    source = DatastoreSource(at, lambda f: f.relpath, text)
    spec = InputSpec(name, cfg.mode, kind, text, manifest_digest(entries), _files(location, entries), source)
    return JobInput(spec, None)


def _local_input(name: str, cfg: InputConfig) -> JobInput:
    src = Path(cfg.path).expanduser().absolute()
    if not src.exists():
        raise ConfigError(
            f"job.inputs.{name}.path {cfg.path} does not exist", hint="give a file or folder, a URI or data:NAME"
        )
    kind = "uri_file" if src.is_file() else "uri_folder"
    if cfg.type is not None and cfg.type != kind:
        raise ConfigError(f"job.inputs.{name}.path {src} is not a {cfg.type}", hint=f"it is a {kind}")
    if cfg.mode == "direct":
        return JobInput(InputSpec(name, cfg.mode, kind, str(src), None), None)
    listed = local_files(src)
    if not listed:
        raise ConfigError(f"job.inputs.{name}.path {src} holds no files")
    entries = [ManifestEntry(f.relpath, f.size, sha256_file(f.path)) for f in listed]
    root = src.parent if kind == "uri_file" else src
    store = open_datastore({"_target_": FOLDER_TARGET, "path": str(root)}, Path(root), "folder")
    source = DatastoreSource(store, lambda f: f.relpath, str(src))
    spec = InputSpec(name, cfg.mode, kind, str(src), manifest_digest(entries), _files(str(src), entries), source)
    return JobInput(spec, None)


def resolve_input(ws: Workspace, name: str, cfg: InputConfig) -> JobInput:
    """Input ``name`` of a job, its files listed; ConfigError naming the input when it cannot be."""
    try:
        if cfg.path.startswith(PREFIX):
            return _version_input(ws, name, cfg)
        if uri_scheme(cfg.path) is not None:
            return _uri_input(ws, name, cfg)
        return _local_input(name, cfg)
    except ConfigError:
        raise
    except MltrainError as exc:
        raise ConfigError(f"job.inputs.{name} ({cfg.path}): {exc.message}", hint=exc.hint) from None


def check_job_data(job: Mapping[str, Any]) -> None:
    """The checks of ``job.inputs`` / ``job.outputs`` that need no workspace (names, keys, modes, references)."""
    inputs, _outputs = parse_io(job)
    for name, cfg in inputs.items():
        if cfg.path.startswith(PREFIX):
            try:
                parse_ref(cfg.path)
            except DataError as exc:
                raise ConfigError(f"job.inputs.{name}.path: {exc.message}", hint=exc.hint) from None


def check_data_refs(ws: Workspace, job: Mapping[str, Any]) -> None:
    """Each ``data:`` input of ``job`` names a recorded version (a detached run's check before it is
    recorded: the workspace's records only, no datastore reached); ConfigError naming the valid choices."""
    inputs, _outputs = parse_io(job)
    for name, cfg in inputs.items():
        if cfg.path.startswith(PREFIX):
            try:
                resolve(ws, cfg.path)
            except MltrainError as exc:
                raise ConfigError(f"job.inputs.{name} ({cfg.path}): {exc.message}", hint=exc.hint) from None


def job_data(ws: Workspace, job: Mapping[str, Any]) -> JobData:
    """``job.inputs`` resolved (files listed, stores reached) and ``job.outputs`` checked."""
    inputs, outputs = parse_io(job)
    resolved = tuple(resolve_input(ws, name, cfg) for name, cfg in inputs.items())
    specs = tuple(OutputSpec(name, cfg.asset, cfg.datastore in (None, DEFAULT)) for name, cfg in outputs.items())
    return JobData(resolved, specs, outputs)


def record_inputs(ws: Workspace, run_id: str, data: JobData) -> None:
    """Record on run ``run_id`` what it reads (name, version or URI, digest, mode)."""
    for inp in data.inputs:
        spec = inp.spec
        uri = None if inp.version is not None else spec.uri
        ws.data.link_run(run_id, "input", spec.name, version=inp.version, uri=uri, digest=spec.digest, mode=spec.mode)


def register_outputs(
    ws: Workspace, run_id: str, run_dir: Path, data: JobData, stored: dict[str, tuple[str, int]] | None = None
) -> tuple[list[str], list[str]]:
    """After run ``run_id`` completed: each output folder it wrote (``${outputs.NAME}``) becomes the next
    version of its data asset, with the run as its producer and recorded as the run's output;
    (the new versions as ``data:NAME:VERSION``, the problems). Files its node stored in the artifact root
    itself (``stored``: the run's path -> (sha256, size)) are recorded from there, never read here."""
    from mltrain.data.create import create
    from mltrain.remote.inputs import OUTPUTS_DIR

    made: list[str] = []
    problems: list[str] = []
    for out in data.outputs:
        cfg = (data.output_configs or {})[out.name]
        folder = run_dir / OUTPUTS_DIR / out.name
        prefix = f"{OUTPUTS_DIR}/{out.name}/"
        by_node = {
            r.removeprefix(prefix): b for r, b in (stored or {}).items() if r.startswith(prefix) and out.in_workspace
        }
        local = folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))
        if not local and not by_node:
            problems.append(f"output {out.name}: the script wrote no file to ${{outputs.{out.name}}}: no version made")
            continue
        try:
            node = datastore_node(cfg.datastore, []) if cfg.datastore else None
            if by_node:  # with what came through the driver (collected already)
                by_node.update({rel: ws.blobs.put_file(full) for rel, full in walk_files(folder, root=run_dir)})
            version = create(
                ws,
                out.asset,
                f"{run_dir}/{prefix}" if by_node else folder,
                type="uri_folder",
                description=cfg.description,
                datastore=cfg.datastore,
                datastore_config=node,
                producer_run_id=run_id,
                blobs=by_node or None,
            )
        except MltrainError as exc:
            problems.append(f"output {out.name} ({cfg.path}): {exc.message}")
            continue
        ws.data.link_run(run_id, "output", out.name, version=version)
        made.append(version.ref)
    return made, problems
