"""task.json validation: every problem at once, each with its JSON path, what was expected and what came."""

import json
from pathlib import Path

import pytest

from engine.config.resolve import apply_overrides, read_task_file, resolve
from engine.errors import ConfigError


@pytest.fixture
def registry(plugin_manager):
    return plugin_manager.registry()


def minimal(**extra):
    return {"task": "classification", "data": {"train": "train.tsv"}, **extra}


def issues_of(raw, registry):
    with pytest.raises(ConfigError) as info:
        resolve(raw, registry)
    return {issue.path: issue.message for issue in info.value.issues}


def test_minimal_task_gets_the_tasks_defaults(registry, tmp_path):
    resolved = resolve(minimal(), registry, source=tmp_path / "task.json")
    assert resolved.data.name == "tsv"  # from the file extension
    assert resolved.head.name == "linear"
    assert [m.name for m in resolved.metrics][:2] == ["accuracy", "f1_macro"]
    assert resolved.optimizer.name == "adamw" and resolved.optimizer.options.lr == 1e-4
    assert resolved.output_dir == tmp_path / "runs" / "task"
    assert "history" in [c.name for c in resolved.callbacks]


def test_all_problems_are_reported_together_with_paths(registry):
    raw = minimal(
        trainig={"epochs": 1},
        training={"epochs": "many", "batch_size": 0},
        head={"name": "lineer"},
        optimizer={"name": "adamw", "lr": -1, "weight_decai": 0.1},
        metrics=["acuracy"],
    )
    issues = issues_of(raw, registry)
    assert "did you mean 'training'" in issues["trainig"]
    assert "valid integer" in issues["training.epochs"] and '"many"' in issues["training.epochs"]
    assert "greater than or equal to 1" in issues["training.batch_size"] and "got 0" in issues["training.batch_size"]


def test_component_problems_name_the_path_and_suggest(registry):
    raw = minimal(head={"name": "lineer"}, optimizer={"name": "adamw", "lr": -1, "weight_decai": 0.1}, metrics=["acuracy"])
    issues = issues_of(raw, registry)
    assert "unknown head 'lineer' (did you mean 'linear'?)" in issues["head.name"]
    assert "greater than 0" in issues["optimizer.lr"] and "got -1" in issues["optimizer.lr"]
    assert "did you mean 'weight_decay'" in issues["optimizer.weight_decai"]
    assert "did you mean 'accuracy'" in issues["metrics.0.name"]


def test_unknown_task_lists_the_known_ones(registry):
    issues = issues_of({"task": "clasification", "data": {"train": "a.tsv"}}, registry)
    assert "did you mean 'classification'" in issues["task.name"]


def test_data_format_that_cannot_be_inferred_is_reported(registry):
    issues = issues_of({"task": "classification", "data": {"train": "train.xyz"}}, registry)
    assert "data.format" in issues


def test_user_values_win_over_task_defaults(registry):
    resolved = resolve(minimal(metrics=["f1_micro"], optimizer={"name": "adamw", "lr": 3e-5}), registry)
    assert [m.name for m in resolved.metrics] == ["f1_micro"]
    assert resolved.optimizer.options.lr == 3e-5


def test_overriding_a_key_of_a_default_component_keeps_the_component(registry):
    raw = apply_overrides(minimal(), ["head.dropout=0.2", "optimizer.lr=0.001", "scheduler.warmup_ratio=0.1"])
    resolved = resolve(raw, registry)
    assert (resolved.head.name, resolved.head.options.dropout) == ("linear", 0.2)  # the task's default head
    assert (resolved.optimizer.name, resolved.optimizer.options.lr) == ("adamw", 0.001)  # the core's default
    assert (resolved.scheduler.name, resolved.scheduler.options.warmup_ratio) == ("linear", 0.1)
    raw = apply_overrides(minimal(head="mlp"), ["head.dropout=0.3"])  # a head the file names stays
    assert (resolve(raw, registry).head.name, resolve(raw, registry).head.options.dropout) == ("mlp", 0.3)


def test_overrides_set_nested_values_as_json_or_strings():
    raw = apply_overrides(minimal(training={"epochs": 3}, head="linear"),
                          ["training.epochs=1", "head.dropout=0.2", "output_dir=runs/x", "data.text=[\"a\",\"b\"]"])
    assert raw["training"]["epochs"] == 1
    assert raw["head"] == {"name": "linear", "dropout": 0.2}
    assert raw["output_dir"] == "runs/x"
    assert raw["data"]["text"] == ["a", "b"]


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides(minimal(), ["training.epochs"])


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "task.json"
    path.write_text('{\n  "task": "classification",\n  "data": {"train": "a.tsv",}\n}\n')
    with pytest.raises(ConfigError) as info:
        read_task_file(path)
    assert "line 3" in str(info.value) and str(path) in str(info.value)


def test_resolved_task_round_trips(registry, tmp_path):
    resolved = resolve(minimal(augment=[{"name": "random_swap", "p": 0.2}]), registry, source=tmp_path / "t.json")
    again = resolve(json.loads(json.dumps(resolved.to_dict())), registry, source=tmp_path / "t.json")
    assert again.to_dict() == resolved.to_dict()


def test_schema_includes_plugin_components(registry):
    from engine.config.schema import task_schema

    schema = task_schema(registry)
    heads = [v["properties"]["name"]["const"] for v in schema["properties"]["head"]["anyOf"] if "properties" in v]
    assert "linear" in heads and "mlp" in heads
    tsv = next(v for v in schema["properties"]["data"]["anyOf"] if v.get("properties", {}).get("format", {}).get("const") == "tsv")
    assert "text" in tsv["properties"] and "encoding" in tsv["properties"]


def test_schema_takes_every_section_a_task_file_may_have(registry):
    from engine.config.schema import task_schema
    from engine.config.sections import TaskFile

    jsonschema = pytest.importorskip("jsonschema")
    schema = task_schema(registry)
    assert list(schema["properties"]) == list(TaskFile.model_fields)
    tune = json.loads((Path(__file__).parents[2] / "examples" / "sentiment" / "tune.json").read_text())
    jsonschema.validate(tune, schema)  # its search section: ranges of the nested Distribution model
    for adapter in ("lora", {"name": "dora", "r": 4}, None):
        jsonschema.validate({**tune, "adapter": adapter}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**tune, "adapter": "lorax"}, schema)


# --- monitors: checked before any model loads, with one rule for their direction ----------------------------------


def test_early_stopping_on_a_loss_waits_while_the_loss_falls(registry):
    from engine.callbacks import TrainerState

    raw = minimal(data={"train": "t.tsv", "validation": "v.tsv"},
                  callbacks=[{"name": "early_stopping", "monitor": "validation.loss", "patience": 1}])
    resolved = resolve(raw, registry)
    assert resolved.directions == {"validation.accuracy": "max", "validation.loss": "min"}
    stopping = next(c for c in resolved.callbacks if c.name == "early_stopping").build()
    state = TrainerState(run_dir=None, epochs=5, steps_per_epoch=1, directions=resolved.directions)
    for loss in (0.9, 0.7, 0.5):
        stopping.on_evaluate(state, {"validation.loss": loss, "validation.accuracy": 0.5})
        assert not state.should_stop
    stopping.on_evaluate(state, {"validation.loss": 0.6, "validation.accuracy": 0.5})
    assert state.should_stop


@pytest.mark.parametrize(("monitor", "direction"), [("validation.mse", "min"), ("validation.rmse_score", "min"),
                                                    ("validation.pearson", "max"), ("validation.r2", "max")])
def test_a_monitors_direction_is_what_its_metric_declares(registry, monitor, direction):
    raw = {"task": "regression", "data": {"train": "t.tsv", "validation": "v.tsv"}, "training": {"monitor": monitor}}
    assert resolve(raw, registry).directions[monitor] == direction


@pytest.mark.parametrize(("training", "callback", "path", "message"), [
    ({"monitor": "test.accuracy"}, {}, "training.monitor", "expected 'validation.accuracy'"),
    ({"monitor": "validation.acuracy"}, {}, "training.monitor", "no metric computes 'acuracy' (did you mean 'accuracy'?)"),
    ({}, {"monitor": "validation.f1"}, "callbacks.0.monitor", "no metric computes 'f1'"),
    ({"monitor": "accuracy"}, {}, "training.monitor", "expected SPLIT.METRIC"),
])
def test_a_monitor_the_run_would_not_compute_fails_validation(registry, training, callback, path, message):
    raw = minimal(data={"train": "t.tsv", "validation": "v.tsv"}, training=training,
                  callbacks=[{"name": "early_stopping", **callback}])
    assert message in issues_of(raw, registry)[path]


def test_the_tasks_default_monitor_must_be_computed_too(registry):
    raw = minimal(data={"train": "t.tsv", "validation": "v.tsv"}, metrics=["f1_macro"])
    assert "no metric computes 'accuracy'" in issues_of(raw, registry)["training.monitor"]


def test_a_metric_that_declares_no_direction_needs_a_mode(plugin_manager, tmp_path):
    from engine.registry import make_register

    registry = plugin_manager.registry()
    make_register(registry, "metric", "outside")("kappa", lambda options, task: None)  # no declarations: as in 0.1
    raw = minimal(data={"train": "t.tsv", "validation": "v.tsv"}, metrics=["kappa"],
                  training={"monitor": "validation.kappa"})
    assert "cannot tell whether 'validation.kappa' improves up or down" in issues_of(raw, registry)["training.mode"]
    raw["training"]["mode"] = "max"
    assert resolve(raw, registry).directions["validation.kappa"] == "max"


# --- augmentations: the text shapes and tasks they declare (register(..., shapes=, tasks=)) ----------------------


def with_augmentations(registry, **declared):
    """``registry`` with augmentations declared by an outside plugin: name -> register()'s keyword arguments."""
    from engine.registry import make_register

    register = make_register(registry, "augment", "outside")
    for name, keywords in declared.items():
        register(name, lambda options: lambda rows, rng: rows, **keywords)
    return registry


TAGGING = {"task": "tagging", "data": {"train": "t.conll"}}
PAIRS = minimal(data={"train": "t.tsv", "text": ["premise", "hypothesis"]})


def test_an_augmentation_for_tokens_is_accepted_for_tagging(registry):
    with_augmentations(registry, tag_safe={"shapes": ["tokens"]})
    resolved = resolve({**TAGGING, "augment": ["tag_safe"]}, registry)
    assert [a.name for a in resolved.augment] == ["tag_safe"]


def test_an_augmentation_without_tokens_is_refused_for_tagging_naming_shapes_and_alternatives(registry):
    with_augmentations(registry, tag_safe={"shapes": ["single", "tokens"]}, plain={"shapes": ["single", "pair"]})
    issues = issues_of({**TAGGING, "augment": ["tag_safe", "plain"]}, registry)
    assert list(issues) == ["augment.1"]
    message = issues["augment.1"]
    assert message.startswith("augmentation 'plain' supports the shapes single, pair; the tagging task's rows have "
                              "the shape tokens (words with one tag per word)")
    assert "augmentations that support it: " in message and "tag_safe" in message.split("support it: ")[1]


def test_a_single_text_augmentation_is_refused_for_pairs_and_accepted_for_one_text(registry):
    with_augmentations(registry, one_text={"shapes": ["single"]}, both={"shapes": ["single", "pair"]})
    issues = issues_of({**PAIRS, "augment": ["both", "one_text"]}, registry)
    assert list(issues) == ["augment.1"]
    assert ("augmentation 'one_text' supports the shapes single; the classification task's rows have the shape "
            "pair (a pair of texts)") in issues["augment.1"]
    assert [a.name for a in resolve(minimal(augment=["one_text"]), registry).augment] == ["one_text"]


def test_an_augmentation_restricted_to_tasks_is_refused_for_another(registry):
    with_augmentations(registry, for_regression={"tasks": ["regression"]})
    issues = issues_of(minimal(augment=[{"name": "for_regression"}]), registry)
    assert issues == {"augment.0": "augmentation 'for_regression' supports the tasks regression, not classification"}
    raw = {"task": "regression", "data": {"train": "t.tsv"}, "augment": ["for_regression"]}
    assert [a.name for a in resolve(raw, registry).augment] == ["for_regression"]


def test_a_mismatch_of_shape_and_of_task_is_one_issue_each(registry):
    with_augmentations(registry, narrow={"shapes": ["single"], "tasks": ["regression"]})
    with pytest.raises(ConfigError) as info:
        resolve({**TAGGING, "augment": ["narrow"]}, registry)
    assert [(i.path, i.message.split(";")[0]) for i in info.value.issues] == [
        ("augment.0", "augmentation 'narrow' supports the shapes single"),
        ("augment.0", "augmentation 'narrow' supports the tasks regression, not tagging")]


def test_an_augmentation_registered_as_in_0_2_rewrites_single_texts_and_pairs_but_not_tags(registry):
    with_augmentations(registry, old_style={})
    component = registry.find("augment", "old_style")
    assert (component.shapes, component.tasks, component.text_shapes) == (None, None, ("single", "pair"))
    assert [a.name for a in resolve(minimal(augment=["old_style"]), registry).augment] == ["old_style"]
    assert [a.name for a in resolve({**PAIRS, "augment": ["old_style"]}, registry).augment] == ["old_style"]
    message = issues_of({**TAGGING, "augment": ["old_style"]}, registry)["augment.0"]
    assert "supports the shapes single, pair (it declares no shapes, so it is taken to rewrite plain texts" in message


@pytest.mark.parametrize("hook, keywords, expected", [
    ("metric", {"shapes": ["single"]}, "shapes and tasks describe augmentations; the augment hook takes them"),
    ("build_head", {"tasks": ["tagging"]}, "shapes and tasks describe augmentations; the augment hook takes them"),
    ("augment", {"shapes": ["sentence"]}, "register('x', shapes=...) expects a non-empty list of 'single', 'pair', "
                                          "'tokens', got ['sentence']"),
    ("augment", {"shapes": "single"}, "register('x', shapes=...) expects a non-empty list"),
    ("augment", {"shapes": []}, "register('x', shapes=...) expects a non-empty list"),
    ("augment", {"tasks": "tagging"}, "register('x', tasks=...) expects a non-empty list of task names, got 'tagging'"),
])
def test_shapes_and_tasks_are_checked_when_the_plugin_declares(registry, hook, keywords, expected):
    from engine.errors import PluginError
    from engine.registry import FACTORY_ARGUMENTS, make_register

    factory = eval(f"lambda options{''.join(', a' + str(i) for i in range(len(FACTORY_ARGUMENTS[hook])))}: None")
    with pytest.raises(PluginError) as info:
        make_register(registry, hook, "outside")("x", factory, **keywords)
    assert str(info.value).startswith(f"plugin 'outside', hook {hook!r}: ") and expected in str(info.value)
