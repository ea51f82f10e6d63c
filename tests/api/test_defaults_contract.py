"""A run directory predicts as it was trained when a later engine changes its defaults (a new default pooling, a new
way of labelling subwords): its task.json records every resolved value, and loading it reads those values, not the
defaults of the engine that loads it. Each test first shows the new default took hold (a fresh file gets it), so
that it cannot pass for want of a change."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

import engine
from engine.config.resolve import resolve
from engine_builtins.heads import LinearOptions
from engine_builtins.tagging.options import TaggingOptions


@contextmanager
def default(model: type[BaseModel], name: str, value: Any) -> Iterator[None]:
    """``model``'s ``name`` defaults to ``value`` inside the block, as in a later engine."""
    field = model.model_fields[name]
    old = field.default
    field.default = value
    model.model_rebuild(force=True)
    try:
        yield
    finally:
        field.default = old
        model.model_rebuild(force=True)


def test_a_classifier_predicts_the_same_after_the_default_pooling_changes(classification_run, plugin_manager):
    texts = ["john was good", "a bad film was long", "great"]
    before = engine.load(classification_run.run_dir).predict(texts)
    with default(LinearOptions, "pooling", "mean"):
        fresh = resolve({"task": "classification", "data": {"train": "train.tsv"}}, plugin_manager.registry())
        assert fresh.head.options.pooling == "mean"
        predictor = engine.load(classification_run.run_dir)
        assert predictor.loaded.model.head.pooling == "pooler"  # as task.json recorded it
        assert predictor.predict(texts) == before  # the same weights, inputs and process: the same records


def test_a_run_saved_before_0_3_predicts_the_same_too(classification_run, tmp_path):
    # engine 0.2 wrote into model/engine.json only what the task file said ({"name": "linear"}); the run's task.json
    # has every value, and loading fills the rest from it.
    run_dir = shutil.copytree(classification_run.run_dir, tmp_path / "run")
    engine_json = run_dir / "model" / "engine.json"
    meta = json.loads(engine_json.read_text())
    assert meta["head"]["pooling"] == "pooler"  # written whole now
    meta["head"], meta["task"] = {"name": "linear"}, {"name": "classification"}
    engine_json.write_text(json.dumps(meta))
    texts = ["john was good", "a bad film was long", "great"]
    before = engine.load(run_dir).predict(texts)
    with default(LinearOptions, "pooling", "mean"):
        predictor = engine.load(run_dir)
        assert predictor.loaded.model.head.pooling == "pooler"
        assert predictor.predict(texts) == before
        # A model folder without its run directory has nothing to fill from: the engine's defaults of the day.
        shutil.move(run_dir / "model", tmp_path / "bare")
        assert engine.load(tmp_path / "bare").loaded.model.head.pooling == "mean"


def test_a_tagger_predicts_the_same_after_the_default_subword_labelling_changes(tagging_run, plugin_manager):
    texts = ["john lives in paris", "mary and paul were in berlin with john"]
    before = engine.load(tagging_run.run_dir).predict(texts)
    with default(TaggingOptions, "label_subwords", "last"):  # read from the last subword: other predictions
        fresh = resolve({"task": "tagging", "data": {"format": "conll", "train": "t.conll"}},
                        plugin_manager.registry())
        assert fresh.task.options.label_subwords == "last"
        assert engine.load(tagging_run.run_dir).predict(texts) == before
