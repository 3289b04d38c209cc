"""Load a model file safely and describe what the server needs to know about it.

Loading verifies the file's sha256 first. joblib files are loaded with ``joblib.load`` (pickle: only for
models you trust); skops files load only when every type they contain is trusted by skops or listed in
the config's ``trusted_types``. The description (methods, feature count and names, classes, NaN support,
output shapes) drives request validation and the OpenAPI document.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mltrain.serving.config import ServingConfig
from mltrain.serving.errors import ServingError
from mltrain.serving.formats import sniff_format

log = logging.getLogger("mltrain.serving")

METHODS = ("predict", "predict_proba", "decision_function")
FEATURE_NAMES_WARNING = "X does not have valid feature names"


@dataclass
class ModelSpec:
    """What the request path needs: bound methods and the expected input."""

    model: Any
    model_type: str
    methods: dict[str, Callable[[Any], Any]]
    n_features: int | None
    feature_names: tuple[str, ...] | None
    classes: list[Any] | None
    allow_nan: bool
    # method -> (output columns or None for 1-D output, JSON type of the values), learnt at warm-up
    outputs: dict[str, tuple[int | None, str]] = field(default_factory=dict)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(config: ServingConfig) -> None:
    """Refuse a missing model file or one whose sha256 differs from the config's."""
    path = config.model_path
    if not os.path.isfile(path):
        raise ServingError(f"model file not found: {path}", "check model_path in the server config")
    actual = sha256_file(path)
    if actual != config.model_sha256:
        raise ServingError(
            f"model file {path} failed verification: its sha256 is {actual}, the config expects "
            f"{config.model_sha256}; the file was changed or replaced after registration",
            "redeploy from the registry so the file and its recorded sha256 match",
        )


def _load_skops(path: str, trusted_types: tuple[str, ...]) -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise ServingError(
            "the model is in skops format but skops is not installed in the server environment",
            "install skops in the model's environment (pip install skops)",
        ) from None
    try:
        untrusted = list(sio.get_untrusted_types(file=path))
    except Exception as exc:
        raise ServingError(f"cannot read skops model file {path}: {type(exc).__name__}: {exc}") from None
    refused = [t for t in untrusted if t not in trusted_types]
    if refused:
        listing = ", ".join(refused)
        raise ServingError(
            f"model file {path} contains types that are not trusted: {listing}",
            "review these types; if you trust them, add them to trusted_types in the deployment config, "
            f"e.g. trusted_types: {refused!r}",
        )
    return sio.load(path, trusted=untrusted)


def check_format(config: ServingConfig) -> None:
    """Refuse a file whose content is not in the format its record names (e.g. a pickle recorded as skops)."""
    found = sniff_format(config.model_path)
    if found != config.model_format:
        what = f"a {found} file" if found else "neither a joblib nor a skops file"
        raise ServingError(
            f"model file {config.model_path} is {what}, but its record says {config.model_format}: refusing to load it",
            "register the file again with the format its content has (mltrain models register --format)",
        )


def load_model(config: ServingConfig) -> Any:
    """Verify and load the model object (raises :class:`ServingError` with a hint on any refusal)."""
    verify_file(config)
    check_format(config)
    path = config.model_path
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if config.model_format == "skops":
                model = _load_skops(path, config.trusted_types)
            else:
                import joblib

                model = joblib.load(path)
    except ServingError:
        raise
    except ModuleNotFoundError as exc:
        raise ServingError(
            f"cannot load model file {path}: module {exc.name!r} is not importable in the server environment",
            "add the package (or the module defining the model's custom code) to the model's environment",
        ) from None
    except Exception as exc:
        raise ServingError(f"cannot load model file {path}: {type(exc).__name__}: {exc}") from None
    for w in caught:
        log.warning("loading %s: %s: %s", os.path.basename(path), w.category.__name__, w.message)
    return model


def _type_name(model: Any) -> str:
    cls = type(model)
    name = f"{cls.__module__}.{cls.__qualname__}"
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        inner = ", ".join(type(step).__name__ for _, step in steps)
        name = f"{name}({inner})"
    return name


def _allow_nan(model: Any) -> bool:
    try:
        from sklearn.utils import get_tags  # scikit-learn >= 1.6

        return bool(get_tags(model).input_tags.allow_nan)
    except Exception:
        pass
    try:
        return bool(model._get_tags().get("allow_nan", False))
    except Exception:
        return False


def _json_type(kind: str) -> str:
    return {"b": "boolean", "i": "integer", "u": "integer", "f": "number"}.get(kind, "string")


def describe(model: Any) -> ModelSpec:
    """Introspect a fitted estimator; only the three scoring methods it actually has are exposed."""
    methods = {}
    for name in METHODS:
        try:
            fn = getattr(model, name, None)
        except Exception:  # available_if raises AttributeError; be lenient with others too
            fn = None
        if callable(fn):
            methods[name] = fn
    if "predict" not in methods and not methods:
        raise ServingError(
            f"the model ({_type_name(model)}) has none of the methods {', '.join(METHODS)}",
            "deploy a fitted scikit-learn estimator or pipeline",
        )
    names = getattr(model, "feature_names_in_", None)
    feature_names = tuple(str(n) for n in names) if names is not None else None
    n_features = getattr(model, "n_features_in_", None)
    n_features = int(n_features) if n_features is not None else (len(feature_names) if feature_names else None)
    classes = getattr(model, "classes_", None)
    return ModelSpec(
        model=model,
        model_type=_type_name(model),
        methods=methods,
        n_features=n_features,
        feature_names=feature_names,
        classes=classes.tolist() if hasattr(classes, "tolist") else (list(classes) if classes is not None else None),
        allow_nan=_allow_nan(model),
    )


def warm_up(spec: ModelSpec) -> None:
    """Call each method once on a row of zeros so the first request is not slow; record output shapes."""
    if spec.n_features is None:
        return
    import numpy as np

    row = np.zeros((1, spec.n_features))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=FEATURE_NAMES_WARNING)
        for name, fn in spec.methods.items():
            try:
                out = np.asarray(fn(row))
            except Exception as exc:
                log.warning("warm-up: %s on a row of zeros failed: %s: %s", name, type(exc).__name__, exc)
                continue
            width = int(out.shape[1]) if out.ndim == 2 else None
            spec.outputs[name] = (width, _json_type(out.dtype.kind))


def suppress_feature_name_warnings() -> None:
    """Rows arrive as arrays, so scikit-learn would warn on every request of a model fit on a DataFrame."""
    warnings.filterwarnings("ignore", message=FEATURE_NAMES_WARNING, category=UserWarning)
