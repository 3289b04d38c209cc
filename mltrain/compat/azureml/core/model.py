"""``azureml.core.Model``: the framework names and what ``Run.register_model`` returns."""

from __future__ import annotations

from typing import Any

from ._unsupported import unsupported


class Model:
    """A model registered by the run when it completes (mltrain registers it then)."""

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise unsupported("Model(workspace, name)", "read registered models with `mltrain models show NAME`")

    @classmethod
    def _requested(cls, name: str, path: str, tags: dict[str, Any], properties: dict[str, Any]) -> Model:
        model = object.__new__(cls)
        model.name, model.version, model.tags, model.properties = name, None, tags, properties
        model.url = path
        return model

    @staticmethod
    def register(*args: Any, **kwargs: Any) -> Model:
        raise unsupported(
            "Model.register", "call run.register_model(...) in the training script, or `mltrain models register`"
        )

    @staticmethod
    def get_model_path(*args: Any, **kwargs: Any) -> str:
        raise unsupported("Model.get_model_path", "mltrain serves registered models without a scoring script")

    def __repr__(self) -> str:
        return f"Model(name={self.name!r}, version=None: registered when the run completes)"
