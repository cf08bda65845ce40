"""OpenAPI request bodies of the job routes, which read their bodies by hand
(``submission.py``): what FastAPI cannot infer from a signature."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pipelines.webhooks import CALLBACK_FIELD

JOB_FIELDS: dict[str, dict[str, Any]] = {
    CALLBACK_FIELD: {
        "type": "string",
        "format": "uri",
        "description": "http(s) URL that gets one signed POST when the job ends "
        "(Standard Webhooks; same address rules as input.url).",
    },
    "cache": {
        "type": "boolean",
        "default": True,
        "description": "Answer from an earlier identical job of yours when there is one.",
    },
}
"""Fields every job kind takes besides its parameters (not part of the params)."""


def job_request_body(params: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of a job route, which parses its body by hand.

    Multipart: a ``file`` part plus the parameters as text fields (lists comma-separated);
    JSON: an ``input`` object (``upload_id`` or ``url``) plus the parameters.
    """
    fields = params.model_json_schema()["properties"]
    form = {name: _form_field(name, schema) for name, schema in fields.items()}
    multipart = {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}, **form, **JOB_FIELDS},
    }
    source = {
        "type": "object",
        "properties": {"upload_id": {"type": "string"}, "url": {"type": "string"}},
    }
    body = {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "properties": {"input": source, **fields, **JOB_FIELDS},
    }
    content = {"multipart/form-data": {"schema": multipart}, "application/json": {"schema": body}}
    return {"requestBody": {"required": True, "content": content}}


def form_types(*models: type[BaseModel]) -> dict[str, str]:
    """The JSON type (never null) of every field of ``models`` and of `JOB_FIELDS`: how
    a multipart text field of that name is read."""
    types = {name: str(schema["type"]) for name, schema in JOB_FIELDS.items()}
    for model in models:
        for name, schema in model.model_json_schema()["properties"].items():
            types[name] = str(_not_null(schema)["type"])
    return types


def _form_field(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter as a form field: never null; lists become comma-separated text."""
    field = {**_not_null(schema), "description": schema.get("description", name)}
    if field.get("type") == "array":
        field = {"type": "string", "description": f"{field['description']} Comma-separated."}
    return field


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in schema.get("anyOf", [schema]) if s.get("type") != "null")
