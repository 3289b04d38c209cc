"""The errors raised for the parts of the Azure ML SDK that mltrain's stand-in does not provide."""

from __future__ import annotations


class NotSupportedByMltrain(NotImplementedError):
    """A part of the Azure ML SDK that mltrain's stand-in does not provide."""


class UnsupportedAttribute(NotSupportedByMltrain, AttributeError):
    """A method or attribute that is not provided (``hasattr`` is False for it)."""


class UnsupportedImport(NotSupportedByMltrain, ImportError):
    """A name of ``azureml.core`` that is not provided (``from azureml.core import X`` fails with it)."""


def _text(what: str, hint: str) -> str:
    text = f"{what} is not supported by mltrain's azureml stand-in (no azureml-core in this environment)"
    return (
        text
        + "; "
        + (hint or "add azureml-core to the job's environment to use the real SDK, or set job.azureml_compat=false")
    )


def unsupported(what: str, hint: str = "") -> UnsupportedAttribute:
    """The error for the method or attribute ``what`` (e.g. ``Run.log_predictions``)."""
    return UnsupportedAttribute(_text(what, hint))


def unsupported_import(what: str, hint: str = "") -> UnsupportedImport:
    """The error for a name of a module (e.g. ``azureml.core.Dataset``)."""
    return UnsupportedImport(_text(what, hint))
