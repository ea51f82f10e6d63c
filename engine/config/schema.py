"""JSON Schema of task files: the core's sections, and each component section as the plugins declared it; a file is
one task (``task``, ``data``...) or several (``tasks``, docs/multitask.md)."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from engine.config.multitask import NAME, TASK_KEYS, SamplerConfig, TaskEntry
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


def _sampler_schema(defs: dict[str, Any]) -> dict[str, Any]:
    defs["SamplerConfig"] = _core_schema(SamplerConfig, defs)
    names = list(typing.get_args(SamplerConfig.model_fields["name"].annotation))
    return {"description": "Multi-task files only (docs/multitask.md): which task each batch comes from, by name "
                           "or as an object with 'name' and options.",
            "anyOf": [{"enum": names}, {"$ref": "#/$defs/SamplerConfig"}]}


def _task_entry_schema(defs: dict[str, Any]) -> dict[str, Any]:
    """``tasks``: each entry's own sections are the one-task file's sections (``#/properties/data``...)."""
    entry = _core_schema(TaskEntry, defs)
    entry["properties"] = {key: {"$ref": f"#/properties/{key}"} if key in TASK_KEYS else entry["properties"][key]
                           for key in TaskEntry.model_fields}
    entry["required"] = ["task", "data"]
    defs["TaskEntry"] = entry
    return {
        "type": "object",
        "description": "Several tasks on one encoder, by name (it names the task's metrics, head folder and "
                       "predictions): instead of the top-level task, data, head, metrics and augment.",
        "minProperties": 1,
        "propertyNames": {"pattern": NAME.pattern},
        "additionalProperties": {"$ref": "#/$defs/TaskEntry"},
    }


def task_schema(registry: Registry) -> dict[str, Any]:
    """The schema of a task file, its sections in the order of ``TaskFile``: one task (``task`` and ``data``
    required), or, when the file has ``tasks``, several, whose entries point at the one-task file's sections."""
    defs: dict[str, Any] = {}
    adapter_names = list(typing.get_args(AdapterConfig.model_fields["name"].annotation))
    training = _core_schema(TrainingConfig, defs)
    training["properties"]["sampler"] = _sampler_schema(defs)
    properties: dict[str, Any] = {
        "model": _core_schema(ModelConfig, defs),
        "adapter": {"anyOf": [_core_schema(AdapterConfig, defs), {"enum": adapter_names}, {"type": "null"}]},
        "training": training,
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
        "description": "One task (task, data...), or several on one encoder (tasks: docs/multitask.md).",
        "type": "object",
        "properties": {name: properties[name] for name in TaskFile.model_fields},
        "if": {"required": ["tasks"]},
        "then": {  # engine/config/multitask.py refuses these beside tasks; tune searches one task only
            "properties": {"tasks": _task_entry_schema(defs), **dict.fromkeys((*TASK_KEYS, "search"), False)},
        },
        "else": {"required": ["task", "data"], "properties": {"training": {"properties": {"sampler": False}}}},
        "unevaluatedProperties": False,  # additionalProperties would refuse tasks, known to "then" alone
        **({"$defs": defs} if defs else {}),
    }
