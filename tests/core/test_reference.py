"""docs/reference.md is generated from the models and the parser: it must be the generator's output (regenerate
with `python -m engine.cli.reference docs/reference.md`), and every key and argument must say what it does."""

import re
from pathlib import Path

from engine.cli.reference import built_in_reference, type_name

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def test_the_reference_is_up_to_date():
    assert REFERENCE.read_text(encoding="utf-8") == built_in_reference(), (
        "docs/reference.md is stale: run `python -m engine.cli.reference docs/reference.md`")


def test_every_key_and_argument_is_described():
    undescribed = [line for line in built_in_reference().splitlines()
                   if line.startswith("| `") and re.search(r"\|\s*\|$", line)]
    assert not undescribed, "give these a description (Field(description=...) or help=...):\n" + "\n".join(undescribed)


def test_the_reference_covers_every_section_component_and_command():
    text = built_in_reference()
    for section in ("model", "training", "data", "head", "optimizer", "callbacks", "metrics"):
        assert f"## `{section}`" in text
    for component in ("classification", "tagging", "regression", "crf", "adamw", "early_stopping", "entity_f1"):
        assert f"### `{component}`" in text
    for command in ("run", "validate", "predict", "evaluate", "schema", "plugins", "cache"):
        assert f"### `engine {command}`" in text
    assert "| `--dry-run` |" in text
    assert "| `validation_split` | `float \\| null` | `null` |" in text


def test_types_read_as_json_types():
    from typing import Literal

    assert type_name(int | None) == "int | null"
    assert type_name(list[str]) == "list[str]"
    assert type_name(Literal["max", "min"]) == "'max' | 'min'"
