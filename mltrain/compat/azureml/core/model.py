"""``azureml.core.Model``: registered model versions (read, listed, registered, downloaded and deployed
from a notebook) and what ``Run.register_model`` returns inside a script."""

from __future__ import annotations

import os
from typing import Any

from ._api import mltrain_api
from ._unsupported import unsupported
from .resource_configuration import ResourceConfiguration


class Model:
    """A registered model version: ``Model(ws, name, version=None)`` (the latest when no version)."""

    name: str
    version: int | None
    tags: dict[str, Any]
    properties: dict[str, Any]
    url: str

    class Framework:
        CUSTOM = "Custom"
        MULTI = "Multi"
        ONNX = "Onnx"
        PYTORCH = "PyTorch"
        SCIKITLEARN = "ScikitLearn"
        TENSORFLOW = "TensorFlow"
        XGBOOST = "XGBoost"

    def __init__(
        self,
        workspace: Any,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Azure's name
        tags: Any = None,
        properties: Any = None,
        version: int | None = None,
        run_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        api_ws = getattr(workspace, "_ws", None)
        if api_ws is None:
            mltrain_api("Model(workspace, name)")
            raise TypeError("Model(workspace, name): give the Workspace of Workspace.from_config()")
        if id is not None:
            name, _, ver = id.partition(":")
            version = int(ver) if ver else version
        if not name:
            raise ValueError("Model needs a name (or id='NAME:VERSION')")
        record = api_ws.model(f"{name}:{version}" if version is not None else name)
        self._fill(workspace, record)

    @classmethod
    def _of(cls, workspace: Any, record: Any) -> Model:
        model = object.__new__(cls)
        model._fill(workspace, record)
        return model

    def _fill(self, workspace: Any, record: Any) -> None:
        self.workspace = workspace
        self._record = record
        self.name, self.version = record.name, record.version
        self.id = f"{record.name}:{record.version}"
        self.tags, self.properties = dict(record.tags), dict(record.properties)
        self.description = record.description
        self.model_framework = record.framework
        self.model_framework_version = record.framework_version
        self.resource_configuration = ResourceConfiguration(record.cpu, record.memory_gb)
        self.run_id = record.run_id
        self.created_time = record.created_at
        self.url = record.path

    @classmethod
    def _requested(cls, name: str, path: str, tags: dict[str, Any], properties: dict[str, Any]) -> Model:
        """What ``Run.register_model`` returns in a script: registered when the run completes."""
        model = object.__new__(cls)
        model.name, model.version, model.tags, model.properties = name, None, tags, properties
        model.url = path
        return model

    # -- the registry ---------------------------------------------------------------------------------
    @staticmethod
    def list(
        workspace: Any,
        name: str | None = None,
        tags: Any = None,
        properties: Any = None,
        run_id: str | None = None,
        latest: bool = False,
        **kwargs: Any,
    ) -> list[Model]:
        """Registered versions (of ``name``, with all of ``tags`` as keys or [key, value] pairs, of ``run_id``)."""
        api_ws = getattr(workspace, "_ws", None) or mltrain_api("Model.list").Workspace()
        found = []
        for rec in api_ws.models(name):
            if run_id is not None and rec.run_id != run_id:
                continue
            if tags and not all(_has(rec.tags, t) for t in tags):
                continue
            if properties and not all(_has(rec.properties, p) for p in properties):
                continue
            found.append(Model._of(workspace, rec))
        if latest:
            newest: dict[str, Model] = {}
            for m in found:
                if m.name not in newest or (m.version or 0) > (newest[m.name].version or 0):
                    newest[m.name] = m
            found = list(newest.values())
        return found

    @staticmethod
    def register(
        workspace: Any,
        model_path: str | os.PathLike[str],
        model_name: str,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        resource_configuration: ResourceConfiguration | None = None,
        **kwargs: Any,
    ) -> Model:
        """Register a local file or folder as the next version of ``model_name``."""
        api_ws = getattr(workspace, "_ws", None)
        if api_ws is None:
            raise unsupported(
                "Model.register", "call run.register_model(...) in the training script, or `mltrain models register`"
            )
        if kwargs:
            raise unsupported(f"Model.register({', '.join(kwargs)}=...)")
        record = api_ws.register_model(
            model_name,
            model_path,
            framework=model_framework,
            framework_version=model_framework_version,
            description=description,
            cpu=getattr(resource_configuration, "cpu", None),
            memory_gb=getattr(resource_configuration, "memory_in_gb", None),
            tags={str(k): str(v) for k, v in (tags or {}).items()},
            properties={str(k): str(v) for k, v in (properties or {}).items()},
        )
        return Model._of(workspace, record)

    def download(self, target_dir: str | os.PathLike[str] = ".", exist_ok: bool = False, **kwargs: Any) -> str:
        """The model's files, verified against their hashes, into ``target_dir``; the path of the model."""
        from pathlib import Path

        target = Path(target_dir) / Path(self.url).name
        if target.exists() and not exist_ok:
            raise FileExistsError(f"{target} exists (exist_ok=True replaces it)")
        return str(self.workspace._ws.download_model(self.id, target_dir))

    # -- no-code deployment ---------------------------------------------------------------------------
    @staticmethod
    def deploy(
        workspace: Any,
        name: str,
        models: list[Model],
        inference_config: Any = None,
        deployment_config: Any = None,
        deployment_target: Any = None,
        overwrite: bool = False,
        show_output: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Serve one scikit-learn model as a web service without a scoring script (Azure's no-code
        deployment): mltrain's scoring server on this machine (``mltrain endpoints deploy``)."""
        from .webservice import Webservice

        if inference_config is not None:
            raise unsupported(
                "Model.deploy(inference_config=...)",
                "mltrain serves registered scikit-learn models without a scoring script: leave it out",
            )
        if deployment_target is not None or kwargs:
            raise unsupported(f"Model.deploy({', '.join(kwargs) or 'deployment_target'}=...)")
        if len(models) != 1:
            raise unsupported("Model.deploy with several models", "deploy one model per service")
        options = dict(getattr(deployment_config, "options", {}) or {})
        target = options.pop("target", "local")
        return Webservice._deploy(workspace, name, models[0].id, target, options, show_output)

    @staticmethod
    def get_model_path(*args: Any, **kwargs: Any) -> str:
        raise unsupported("Model.get_model_path", "mltrain serves registered models without a scoring script")

    def serialize(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "version": self.version, "tags": self.tags}

    def __repr__(self) -> str:
        if self.version is None:
            return f"Model(name={self.name!r}, version=None: registered when the run completes)"
        return f"Model(workspace={self.workspace!r}, name={self.name}, id={self.id}, version={self.version})"


def _has(mapping: dict[str, Any], wanted: Any) -> bool:
    if isinstance(wanted, (list, tuple)):
        key, value = wanted[0], wanted[1] if len(wanted) > 1 else None
        return key in mapping and (value is None or str(mapping[key]) == str(value))
    return wanted in mapping


def refuse_datasets(datasets: Any, sample_input: Any, sample_output: Any, kwargs: dict[str, Any]) -> None:
    """``Run.register_model``'s dataset arguments (and unknown ones) are not supported: an error naming them."""
    for arg, given in (("datasets", datasets), ("sample_input_dataset", sample_input)):
        if given:
            raise unsupported(f"Run.register_model({arg}=...)", "leave it out: mltrain records no datasets")
    if sample_output or kwargs:
        raise unsupported(f"Run.register_model({', '.join(kwargs) or 'sample_output_dataset'}=...)")
