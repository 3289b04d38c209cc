"""Errors a user can act on: each names the problem and, in ``hint``, the fix."""

from __future__ import annotations


class MltrainError(Exception):
    """Base of every error mltrain reports to a user without a traceback."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(MltrainError):
    """The composed configuration is invalid."""


class WorkspaceError(MltrainError):
    """The workspace cannot be opened, or a record in it is missing."""


class NotFoundError(WorkspaceError):
    """A run, model, experiment, environment or endpoint does not exist."""


class SnapshotError(MltrainError):
    """The source folder cannot be snapshotted (missing, over the limits)."""


class EnvironmentSpecError(MltrainError):
    """An environment spec cannot be locked or built."""


class ComputeError(MltrainError):
    """The compute target cannot be reached or cannot run the job."""


class RegistryError(MltrainError):
    """A model cannot be registered or loaded."""


class DeployError(MltrainError):
    """A model cannot be deployed, or an endpoint cannot be managed."""


class DataError(MltrainError):
    """A data asset or a datastore cannot be created, read, reached or trusted."""
