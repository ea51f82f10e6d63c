"""docs/reference.md, generated: every task-file key (the core's sections and each built-in component's options)
with its type, default and description, and every command with its arguments.

Regenerate with ``python -m engine.cli.reference docs/reference.md``; tests/core/test_reference.py fails when the file
is stale. Built from the models themselves, so the reference cannot drift from what ``engine validate`` accepts.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from engine.config.multitask import NAME, TASK_KEYS, SamplerConfig, TaskEntry
from engine.config.sections import (
    COMPONENT_SECTIONS,
    LIST_SECTIONS,
    AdapterConfig,
    Distribution,
    ModelConfig,
    SearchConfig,
    TrainingConfig,
)
from engine.registry import KINDS, Registry


def type_name(annotation: Any) -> str:
    """``int | None``, ``list[str]``, ``'max' | 'min'``: a field's type as a task-file author reads it."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]" if args else getattr(origin, "__name__", "")
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def fields_table(model: type[BaseModel], skip: tuple[str, ...] = (),
                 descriptions: dict[str, str] | None = None) -> list[str]:
    """One row per field; ``descriptions`` stand in for fields that have none of their own."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        if info.default is PydanticUndefined and info.default_factory is None:
            default = "required"
        else:
            value = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
            default = f"`{value!r}`".replace("None", "null").replace("True", "true").replace("False", "false")
        rows.append(f"| `{info.alias or name}` | `{_cell(type_name(info.annotation))}` | {_cell(default)} | "
                    f"{_cell(info.description or (descriptions or {}).get(name, ''))} |")
    return rows


def commands_section(parser: argparse.ArgumentParser) -> list[str]:
    lines = ["## Commands", "", "Global: `engine [--debug] COMMAND ...` (`--debug` shows tracebacks)."]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in subparsers._choices_actions}
    for name, sub in subparsers.choices.items():
        lines += ["", f"### `engine {name}`", "", helps.get(name) or "", "", "| argument | meaning |", "|---|---|"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = ", ".join(action.option_strings) or action.dest.upper()
            if action.option_strings and action.nargs != 0:
                flag += f" {action.metavar or action.dest.upper()}"
            meaning = action.help or ""
            if action.option_strings and action.default not in (None, False, "", []):
                meaning += f" (default: {action.default})"
            lines.append(f"| `{_cell(flag)}` | {_cell(meaning)} |")
    return lines


def reference(registry: Registry, parser: argparse.ArgumentParser) -> str:
    lines = [
        "# Reference",
        "",
        "Generated from the task-file models, the built-in plugins' options and the command line by",
        "`python -m engine.cli.reference docs/reference.md`; a test fails when it is out of date. Installed plugins",
        "add components of their own: `engine plugins --components` lists them and `engine schema` gives their",
        "options.",
        "",
        "## task.json",
        "",
        "| key | what |",
        "|---|---|",
        "| `task` | the task type (required, unless `tasks`): a name, or an object with `name` and the task's "
        "options |",
        "| `model` | the pretrained encoder (below) |",
        "| `data` | the data format and files (required, unless `tasks`): an object with `format` and its "
        "options |",
    ]
    for hook, key, _ in COMPONENT_SECTIONS[2:]:
        many = key in LIST_SECTIONS
        lines.append(f"| `{key}` | {'a list of ' + plural(KINDS[hook]) if many else 'the ' + KINDS[hook]}: "
                     "names, or objects with `name` and options |")
    lines += ["| `adapter` | a small adapter (LoRA, DoRA, IA3) trained inside a frozen encoder, through peft (below); "
              "default: none, the encoder trains as `freeze` says |",
              "| `training` | the loop (below) |",
              "| `search` | `engine tune`'s hyperparameter search (below); `engine run` ignores it |",
              "| `output_dir` | the run directory, relative to the task file's folder |",
              "| `plugins` | plugin modules to import, next to the task file or on the import path |",
              "| `tasks` | several tasks on one encoder, instead of `task`, `data`, `head`, `metrics` and `augment` "
              "(below) |",
              "", "## `model`", "", *fields_table(ModelConfig), "", "## `training`", "", *fields_table(TrainingConfig),
              "", *sampler_section(),
              "", "## `adapter`", "", AdapterConfig.__doc__ or "", "", *fields_table(AdapterConfig),
              "", "## `search`", "", SearchConfig.__doc__ or "", "", *fields_table(SearchConfig),
              "", "### A range in `search.space`", "", Distribution.__doc__ or "", "", *fields_table(Distribution),
              "", *tasks_section()]
    for hook, section, key in COMPONENT_SECTIONS:
        lines += ["", f"## `{section}`: {plural(KINDS[hook])}"]
        for name, component in sorted(registry.components[hook].items()):
            lines += ["", f"### `{name}`", "", f"{component.description} (plugin `{component.plugin}`)"]
            if hook == "metric" and component.produces:
                direction = {True: "higher is better", False: "lower is better"}.get(
                    component.higher_is_better, "direction not declared")  # type: ignore[arg-type]
                lines[-1] += f"; computes {', '.join(f'`{p}`' for p in component.produces)}, {direction}"
            if component.options is not None and any(f != key for f in component.options.model_fields):
                lines += ["", *fields_table(component.options, skip=(key,))]
    lines += ["", *commands_section(parser)]
    return "\n".join(lines) + "\n"


def tasks_section() -> list[str]:
    own = ", ".join(f"`{key}`" for key in TASK_KEYS)
    return [
        "## `tasks`", "",
        f"A multi-task file ([multitask.md](multitask.md)) has `tasks` instead of the top-level {own}: an object of "
        f"`NAME: {{{', '.join(TaskEntry.model_fields)}}}`, one entry a task. An entry's own sections take what they "
        "take at the top of a one-task file (`task` and `data` required) and its `weight` is a number above 0; the "
        "other sections are shared, and `search` is refused. NAME "
        f"(`{NAME.pattern}`: a letter, then letters, digits, `_` and `-`) names the task's metrics "
        "(`validation.NAME.METRIC`), its folder in `model/heads/` and its predictions.", "",
        *fields_table(TaskEntry, skip=TASK_KEYS),
    ]


def sampler_section() -> list[str]:
    return [
        "### `training.sampler`", "",
        "Multi-task files only ([multitask.md](multitask.md#batches-and-the-sampler)): the task each batch comes "
        'from. A name (`"uniform"`), or an object with `name` and options (`{"name": "temperature", "T": 2}`).', "",
        *fields_table(SamplerConfig, descriptions={"name": "'proportional': a task's chance is its share of the "
                                                   "batches; 'uniform': the same for every task; 'temperature': "
                                                   "its batches^(1/T) over the sum over the tasks."}),
    ]


def built_in_reference() -> str:
    from engine.cli.commands import build_parser
    from engine.plugins.manager import PluginManager

    manager = PluginManager(only=())  # the built-ins alone, whatever else is installed
    manager.load_entry_points()
    return reference(manager.registry(), build_parser())


def plural(noun: str) -> str:
    """``strategy`` -> ``strategies``, ``head`` -> ``heads``."""
    return noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"


def main(argv: list[str]) -> int:
    """``python -m engine.cli.reference [FILE]``: write the reference to FILE, or to standard output."""
    text = built_in_reference()
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
