"""JSON Schema of task files: the core's sections, and each component section as the plugins declared it."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from engine.config.sections import (
    COMPONENT_SECTIONS,
    LIST_SECTIONS,
    AdapterConfig,
    ModelConfig,
    SearchConfig,
    TaskFile,
    TrainingConfig,
)
from engine.registry import KINDS, Registry


def _component_schema(registry: Registry, hook: str, key: str = "name") -> dict[str, Any]:
    variants: list[dict[str, Any]] = []
    for name, component in sorted(registry.components[hook].items()):
        options = component.options.model_json_schema() if component.options else {"properties": {}}
        properties = {k: v for k, v in options.get("properties", {}).items() if k != key}
        obj = {
            "type": "object",
            "description": component.description,
            "properties": {key: {"const": name}, **properties},
            "required": [key],
            "additionalProperties": False,
        }
        if "$defs" in options:
            obj["$defs"] = options["$defs"]
        variants.append(obj)
        variants.append({"const": name, "description": component.description})
    return {"description": f"a {KINDS[hook]}: its name, or an object with {key!r} and its options", "anyOf": variants}


def _core_schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    """A core section's schema; the models it nests go to the document's ``$defs``, where its references point."""
    schema = model.model_json_schema()
    defs.update(schema.pop("$defs", {}))
    return schema


def task_schema(registry: Registry) -> dict[str, Any]:
    """The schema of a task file, its sections in the order of ``TaskFile``."""
    defs: dict[str, Any] = {}
    adapter_names = list(typing.get_args(AdapterConfig.model_fields["name"].annotation))
    properties: dict[str, Any] = {
        "model": _core_schema(ModelConfig, defs),
        "adapter": {"anyOf": [_core_schema(AdapterConfig, defs), {"enum": adapter_names}, {"type": "null"}]},
        "training": _core_schema(TrainingConfig, defs),
        "output_dir": {"type": "string", "description": "Run directory; relative to the task file's folder."},
        "plugins": {"type": "array", "items": {"type": "string"}, "description": "Plugin modules to import."},
        "search": {"anyOf": [_core_schema(SearchConfig, defs), {"type": "null"}]},
    }
    for hook, section, key in COMPONENT_SECTIONS:
        component = _component_schema(registry, hook, key)
        properties[section] = {"type": "array", "items": component} if section in LIST_SECTIONS else component
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "engine task file",
        "type": "object",
        "required": ["task", "data"],
        "additionalProperties": False,
        "properties": {name: properties[name] for name in TaskFile.model_fields},
        **({"$defs": defs} if defs else {}),
    }
