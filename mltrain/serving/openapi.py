"""The OpenAPI 3 document (``GET /swagger.json``), generated from the model like Azure's inference-schema."""

from __future__ import annotations

from typing import Any

from mltrain.serving.config import ServingConfig
from mltrain.serving.model import ModelSpec


def _row_schemas(spec: ModelSpec) -> list[dict[str, Any]]:
    # true/false count as 1/0; null is a missing value, only for models that accept them
    numeric: dict[str, Any] = {"type": "number", "nullable": True} if spec.allow_nan else {"type": "number"}
    number: dict[str, Any] = {"anyOf": [numeric, {"type": "boolean"}]}
    array: dict[str, Any] = {"type": "array", "items": number, "description": "one row: feature values in order"}
    if spec.n_features is not None:
        array["minItems"] = array["maxItems"] = spec.n_features
    if spec.feature_names:
        array["description"] = f"one row: values of {', '.join(spec.feature_names)} in this order"
        obj = {
            "type": "object",
            "description": "one row: feature name -> value (any order; all names required)",
            "properties": {name: number for name in spec.feature_names},
            "required": list(spec.feature_names),
            "additionalProperties": False,
        }
        return [array, obj]
    return [array]


def _output_schema(spec: ModelSpec, method: str) -> dict[str, Any]:
    width, json_type = spec.outputs.get(method, (None, "number"))
    value: dict[str, Any] = {"type": json_type}
    if method == "predict" and spec.classes is not None:
        value["enum"] = spec.classes
    if width is None:
        return {"type": "array", "items": value, "description": f"{method}: one value per input row"}
    described = f"{method}: one list of {width} values per input row"
    if method == "predict_proba" and spec.classes is not None:
        described += f", columns in the order of classes_ {spec.classes}"
    return {
        "type": "array",
        "items": {"type": "array", "items": value, "minItems": width, "maxItems": width},
        "description": described,
    }


def _unique(schemas: Any) -> list[dict[str, Any]]:
    """The distinct schemas (two methods may return the same shape, e.g. predict_proba and decision_function)."""
    out: list[dict[str, Any]] = []
    for schema in schemas:
        shape = {k: v for k, v in schema.items() if k != "description"}
        same = next((o for o in out if {k: v for k, v in o.items() if k != "description"} == shape), None)
        if same is None:
            out.append(schema)
        else:
            same["description"] += "; " + schema["description"]
    return out


def build_openapi(config: ServingConfig, spec: ModelSpec) -> dict[str, Any]:
    rows = _row_schemas(spec)
    example_row: Any = [0.0] * (spec.n_features or 1)
    if spec.feature_names:
        example_row = dict.fromkeys(spec.feature_names, 0.0)
    version = config.model_version or "unversioned"
    methods = list(spec.methods)
    error = {"$ref": "#/components/schemas/Error"}
    json_error = {"application/json": {"schema": error}}
    # every row of one request in the same form: a list of lists, or a list of objects
    forms = [{"type": "array", "minItems": 1, "items": row} for row in rows]
    data = forms[0] if len(forms) == 1 else {"oneOf": forms}
    request = {
        "type": "object",
        "required": ["data"],
        "additionalProperties": False,
        "properties": {
            "data": data,
            "method": {"type": "string", "enum": methods, "default": "predict"},
        },
        "example": {"data": [example_row]},
    }
    response = {
        "type": "object",
        "required": ["predictions"],
        "properties": {
            "predictions": (
                _output_schema(spec, methods[0])
                if len(methods) == 1
                else {"anyOf": _unique(_output_schema(spec, m) for m in methods), "description": "depends on method"}
            )
        },
    }
    security = [{"bearer": []}] if config.auth else []
    auth_errors: dict[str, Any] = {}
    if config.auth:
        auth_errors = {
            "400": {"description": "More than one Authorization header", "content": json_error},
            "401": {"description": "Missing or invalid key", "content": json_error},
        }
    health = {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": f"{config.name}",
            "description": f"Scoring endpoint for model {config.model_name}:{version} ({spec.model_type})",
            "version": version,
        },
        "paths": {
            "/score": {
                "post": {
                    "summary": "Score rows with the model",
                    "operationId": "score",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "Predictions, one per row",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScoreResponse"}}},
                        },
                        **auth_errors,
                        "400": {
                            "description": "Bad input, or more than one Authorization header",
                            "content": json_error,
                        },
                        "413": {"description": "Body too large", "content": json_error},
                        "415": {"description": "Content-Type is not application/json", "content": json_error},
                        "422": {"description": "The model could not score the input", "content": json_error},
                    },
                }
            },
            "/health/live": {"get": {"summary": "The process is up", "responses": health}},
            "/health/ready": {"get": {"summary": "The model is loaded", "responses": health}},
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (all workers)",
                    "security": security,
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **auth_errors,
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "ScoreRequest": request,
                "ScoreResponse": response,
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "x-mltrain": {
            "endpoint": config.name,
            "model_name": config.model_name,
            "model_version": config.model_version,
            "model_sha256": config.model_sha256,
            "model_format": config.model_format,
            "model_type": spec.model_type,
            "methods": methods,
            "n_features": spec.n_features,
            "feature_names": list(spec.feature_names) if spec.feature_names else None,
            "classes": spec.classes,
            "accepts_missing_values": spec.allow_nan,
            "max_body_bytes": config.max_body_bytes,
        },
    }
    return doc
