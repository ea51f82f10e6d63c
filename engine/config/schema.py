"""JSON Schema of task files: the core's sections, and each component section as the plugins declared it."""

from __future__ import annotations

from typing import Any

from engine.config.sections import ModelConfig, TrainingConfig
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


def task_schema(registry: Registry) -> dict[str, Any]:
    component = lambda hook, key="name": _component_schema(registry, hook, key)  # noqa: E731
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "engine task file",
        "type": "object",
        "required": ["task", "data"],
        "additionalProperties": False,
        "properties": {
            "task": component("task"),
            "model": ModelConfig.model_json_schema(),
            "data": component("load_data", "format"),
            "augment": {"type": "array", "items": component("augment")},
            "head": component("build_head"),
            "freeze": component("freeze"),
            "optimizer": component("optimizer"),
            "scheduler": component("scheduler"),
            "training": TrainingConfig.model_json_schema(),
            "metrics": {"type": "array", "items": component("metric")},
            "callbacks": {"type": "array", "items": component("callback")},
            "output_dir": {"type": "string", "description": "Run directory; relative to the task file's folder."},
            "plugins": {"type": "array", "items": {"type": "string"}, "description": "Plugin modules to import."},
        },
    }
