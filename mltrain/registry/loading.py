"""Loading a registered model in this process: the stored file is checked against its sha256, then
loaded with joblib, or with skops trusting only skops' defaults and the types the caller names.

The loading itself is the scoring server's (:func:`mltrain.serving.model.load_model`): one loader
for the registry and for deployments.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mltrain.errors import RegistryError
from mltrain.registry.formats import MODEL_EXTENSIONS, detect_format

if TYPE_CHECKING:
    from mltrain.workspace.blobs import BlobStore
    from mltrain.workspace.models import ModelFile, ModelVersion


def model_file(mv: ModelVersion) -> tuple[ModelFile, str]:
    """The file of ``mv`` that holds the estimator (its files entry) and its format.

    A model registered from a file has one; a folder must hold exactly one file with a model
    extension (.joblib, .pkl, .pickle, .skops).
    """
    if len(mv.files) == 1 and mv.files[0].relpath == mv.path:
        return mv.files[0], mv.format
    candidates = [f for f in mv.files if PurePosixPath(f.relpath).suffix.lower() in MODEL_EXTENSIONS]
    if len(candidates) != 1:
        listed = ", ".join(f.relpath for f in (candidates or mv.files)[:10])
        raise RegistryError(
            f"model {mv.ref} is a folder with {len(candidates) or 'no'} model files ({listed}): "
            "which one holds the estimator is ambiguous",
            hint="register the model file itself (mltrain models register NAME --path FOLDER/model.joblib)",
        )
    entry = candidates[0]
    return entry, detect_format(entry.relpath, "skops" if mv.format == "skops" else None)


def load_version(blobs: BlobStore, mv: ModelVersion, trusted: list[str] | tuple[str, ...] | None = None) -> Any:
    """The estimator of ``mv``, read from the workspace's blob store after checking its sha256."""
    from mltrain.serving.config import parse_config
    from mltrain.serving.errors import ServingError
    from mltrain.serving.model import load_model

    entry, fmt = model_file(mv)
    path = blobs.local_file(entry.sha256)  # checked by the loader (model_sha256)
    config = {
        "model_path": str(Path(path).absolute()),
        "model_sha256": entry.sha256,
        "model_format": fmt,
        "model_name": mv.name,
        "trusted_types": list(trusted or []),
    }
    try:
        return load_model(parse_config(config))
    except ServingError as exc:
        message = exc.message.replace(str(path), f"{mv.ref} ({entry.relpath})")
        hint = exc.hint
        if "not trusted" in message:
            hint = "review the listed types; if you trust them, pass them as trusted=[...] to ModelRegistry.load"
        raise RegistryError(message, hint=hint) from None
