"""``azureml.core.Experiment``: runs grouped by name; ``submit`` starts a ScriptRunConfig or a
HyperDriveConfig as an mltrain run or sweep."""

from __future__ import annotations

from typing import Any

from ._unsupported import unsupported


class Experiment:
    """``Experiment(ws, name)`` (in a script, ``run.experiment`` is one with its name alone)."""

    def __init__(self, workspace: Any = None, name: str | None = None, **kwargs: Any) -> None:
        if name is None and isinstance(workspace, str):  # the in-script form: Experiment(name)
            workspace, name = None, workspace
        if not name:
            raise ValueError("Experiment needs a name")
        self._workspace = workspace
        self.name = name

    @property
    def workspace(self) -> Any:
        if self._workspace is None:
            raise unsupported("Experiment.workspace", "the workspace is mltrain's own (`mltrain runs list`)")
        return self._workspace

    def submit(self, config: Any, tags: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """Start ``config`` (a ScriptRunConfig or a HyperDriveConfig) in this experiment; its run."""
        if kwargs:
            raise unsupported(f"Experiment.submit({', '.join(kwargs)}=...)", "give the config (and tags)")
        submit = getattr(config, "_submit", None)  # ScriptRunConfig, HyperDriveConfig
        if submit is None:
            raise unsupported(
                f"Experiment.submit({type(config).__name__})", "submit a ScriptRunConfig or a HyperDriveConfig"
            )
        handle = submit(self)
        if tags:
            handle._run.set_tags(tags)
        return handle

    def get_runs(self, **kwargs: Any) -> Any:
        """The experiment's runs (sweep children included), newest first."""
        from .script_run import ScriptRun

        ws = self.workspace
        for rec in ws._ws.runs(experiment=self.name, limit=None):
            yield ScriptRun(self, ws._ws.run(rec.id))

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r})"
