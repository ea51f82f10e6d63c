"""Every hook is documented (its docstring and docs/plugins.md, which must agree) and exercised by a plugin that is
not built in. Parametrized over the hookspecs, so a new hook fails here until it is both."""

import dataclasses
import inspect
import re
import types
from collections import defaultdict
from pathlib import Path

import pytest

from engine import hookspecs
from engine.registry import FACTORY_ARGUMENTS, KINDS, factory_signature
from engine.testing import labelled_rows

HERE = Path(__file__).resolve().parent
GUIDE = HERE.parents[1] / "docs" / "plugins.md"
EXAMPLE_SRC = HERE.parents[1] / "examples" / "plugin" / "src"
HOOKS = [name for name, function in vars(hookspecs).items() if hasattr(function, f"{hookspecs.PROJECT}_spec")]


def guide_sections() -> dict[str, tuple[list[str], str]]:
    """docs/plugins.md's hook sections: name -> (parameters, text)."""
    text = GUIDE.read_text(encoding="utf-8")
    hooks_part = text.split("\n## Hooks\n", 1)[1].split("\n## ", 1)[0]
    sections = {}
    for match in re.finditer(r"^### `(\w+)\(([^)]*)\)`\n(.*?)(?=^### |\Z)", hooks_part, re.S | re.M):
        sections[match[1]] = ([p.strip() for p in match[2].split(",") if p.strip()], match[3])
    return sections


def docstring_factory(hook: str) -> str:
    match = re.search(r"^factory: ``(.+)``$", inspect.getdoc(getattr(hookspecs, hook)), re.M)
    assert match, f"{hook}: its docstring has no 'factory: ``factory(...) -> ...``' line"
    return match[1]


def test_the_guide_has_one_section_per_hook_with_its_parameters():
    documented = {name: params for name, (params, _) in guide_sections().items()}
    specified = {hook: list(inspect.signature(getattr(hookspecs, hook)).parameters) for hook in HOOKS}
    assert documented == specified


def test_the_registry_knows_every_hook():
    assert set(KINDS) == set(HOOKS) == set(FACTORY_ARGUMENTS)


@pytest.mark.parametrize("hook", HOOKS)
def test_registration_checks_factories_against_the_signature_the_docstring_gives(hook):
    documented = re.sub(r": [^,)]+", "", docstring_factory(hook).split(" -> ")[0])  # without annotations
    assert factory_signature(hook) == documented


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_docstring_gives_arguments_factory_return_and_firstresult(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook))
    for parameter in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert re.search(rf"^{parameter}: ", doc, re.M), f"{hook}: argument {parameter!r} undocumented"
    assert docstring_factory(hook).startswith("factory(options")
    assert re.search(r"^returns: ", doc, re.M) and re.search(r"^firstresult: (yes|no)", doc, re.M)


@pytest.mark.parametrize("hook", HOOKS)
def test_the_guides_section_matches_the_docstring_and_its_example_works(hook, plugin_manager):
    _, text = guide_sections()[hook]
    assert f"factory: `{docstring_factory(hook)}`" in text
    examples = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(examples) == 1, f"{hook}: expected one example plugin in its section"
    module = types.ModuleType(f"guide_{hook}")
    exec(compile(examples[0], f"docs/plugins.md ({hook})", "exec"), module.__dict__)
    plugin_manager.add_module(f"guide_{hook}", module)
    declared = [c for by_name in plugin_manager.registry().components.values() for c in by_name.values()
                if c.plugin == f"guide_{hook}"]
    assert [c.hook for c in declared] == [hook]



def test_the_guides_report_example_writes_its_section(tmp_path):
    """The `Task.report` snippet under `task` (fenced `py`: a method, not a plugin) runs and fills its section."""
    from engine import Report

    _, text = guide_sections()["task"]
    [snippet] = re.findall(r"```py\n(def report.*?)```", text, re.S)
    namespace: dict = {}
    exec(compile(snippet, "docs/plugins.md (Task.report)", "exec"), namespace)
    report = Report(tmp_path / "report", "run")
    predictions = [{"label": "1"}, {"label": "1"}, {"label": "3"}]
    namespace["report"](None, report, "validation", predictions, [{"label": "1"}] * 3)
    page = report.write().read_text(encoding="utf-8")
    assert "Answer positions: validation" in page and (tmp_path / "report" / "answer_positions.png").is_file()
    assert re.search(r"<td>1</td>\s*<td>2</td>", page)  # choice 1 picked twice


# --- a run in which every stage comes from a plugin that is not built in -----------------------------------------


@pytest.fixture(scope="module")
def every_hook_run(tiny_model_dir, tmp_path_factory):
    """Run the example plugin's task and head with every_hook_plugin's other stages; record which plugin's factory
    the engine called for each hook."""
    from engine.config.resolve import resolve
    from engine.plugins.manager import load_plugins
    from engine.training.recipe import run

    folder = tmp_path_factory.mktemp("every-hook")
    for split, n, seed in (("train", 24, 1), ("validation", 9, 2)):
        rows = labelled_rows(["1", "2", "3"], n, seed)
        (folder / f"{split}.txt").write_text("".join(f"{label}|{text}\n" for text, label in rows))
    raw = {
        "task": "ordinal",
        "model": {"name": str(tiny_model_dir)},
        "data": {"format": "pipe", "train": "train.txt", "validation": "validation.txt"},
        "augment": ["shout_copy"],
        "head": "attention_pooling",
        "freeze": "warm_head",
        "optimizer": {"name": "plain_sgd", "lr": 0.05},
        "scheduler": {"name": "halving", "every": 2},
        "training": {"epochs": 2, "batch_size": 8, "seed": 3},
        "metrics": ["qwk", "row_count"],
        "callbacks": ["event_log"],
        "plugins": ["engine_ordinal", "every_hook_plugin"],
        "output_dir": "runs/every",
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXAMPLE_SRC))
        patch.syspath_prepend(str(HERE))
        manager = load_plugins(raw["plugins"], folder)
        import every_hook_plugin

        every_hook_plugin.SEEN.clear()
        resolved = resolve(raw, manager.registry(), source=folder / "task.json")
        called = defaultdict(set)

        def record(choice):
            component = choice.component

            def factory(*args, **kwargs):
                called[component.hook].add(component.plugin)
                return component.factory(*args, **kwargs)

            choice.component = dataclasses.replace(component, factory=factory)

        for choice in (resolved.task, resolved.data, resolved.head, resolved.freeze, resolved.optimizer,
                       resolved.scheduler, *resolved.augment, *resolved.metrics, *resolved.callbacks):
            record(choice)
        resolved.task_object = resolved.task.build()  # the one resolve built did not go through the recorder
        result = run(resolved, manager)
    sources = {name: info.source for name, info in manager.infos.items()}
    return {hook: {sources[p] for p in plugins} for hook, plugins in called.items()}, result, dict(every_hook_plugin.SEEN)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_plugin_that_is_not_built_in(hook, every_hook_run):
    sources, _, _ = every_hook_run
    assert sources.get(hook, set()) - {"built-in"}, f"no test runs a {KINDS[hook]} from a plugin that is not built in"


def test_the_engine_calls_each_component_as_its_hook_promises(every_hook_run):
    _, result, seen = every_hook_run
    assert seen["load_data"] == [("train", 24), ("validation", 9)]
    assert seen["augment"] == [24]  # the training rows only, once
    # once for every epoch before training (which parameters ever train), then at every epoch's start
    assert seen["freeze"] == [(0, False), (1, True), (0, False), (1, True)]
    assert seen["optimizer"] == ["EngineModel"]
    steps_per_epoch = 6  # 48 rows after augmentation, batches of 8
    assert seen["scheduler"] == [2 * steps_per_epoch]
    assert seen["lr"][:4] == pytest.approx([0.05, 0.025, 0.025, 0.0125])  # after each step: halved every 2
    events = seen["callback"]
    assert events[0] == "on_train_begin" and events[-1] == "on_train_end"
    epoch = ["on_epoch_begin", *["on_step_end"] * steps_per_epoch, "on_evaluate", "on_epoch_end"]
    assert events[1:-1] == epoch * 2
    assert seen["metric"] == [9, 9]  # the validation rows, at each evaluation
    assert result.metrics["validation"]["row_count"] == 9.0


def test_classification_takes_the_example_plugins_head_and_metric(ordinal_on_path, tiny_task, run_engine):
    path = tiny_task("classification", ["1", "2", "3"], head={"name": "attention_pooling", "dropout": 0.0},
                     metrics=["accuracy", "qwk"], plugins=["engine_ordinal"])
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    import json

    engine_json = json.loads((path.parent / "runs/tiny/model/engine.json").read_text())
    assert engine_json["head"]["name"] == "attention_pooling" and engine_json["plugins"]["engine_ordinal"] == "0.1.0"
    metrics = json.loads((path.parent / "runs/tiny/metrics.json").read_text())["validation"]
    assert set(metrics) >= {"accuracy", "qwk"} and -1 <= metrics["qwk"] <= 1


def test_the_guide_documents_every_export_of_the_public_api():
    import engine

    contract = GUIDE.read_text(encoding="utf-8").split("\n## The contract and its versions\n", 1)[1].split("\n## ")[0]
    missing = [name for name in engine.__all__ if f"`{name}`" not in contract]
    assert not missing, f"exported by engine but not in docs/plugins.md's contract table: {missing}"


def test_the_guide_documents_every_testing_fixture_with_its_arguments():
    import engine.testing

    testing = GUIDE.read_text(encoding="utf-8").split("\n## Testing a plugin\n", 1)[1].split("\n## ")[0]
    fixtures = [name for name, value in vars(engine.testing).items() if hasattr(value, "_fixture_function_marker")
                or type(value).__name__ == "FixtureFunctionDefinition"]
    assert fixtures, "no fixtures found in engine.testing"
    for name in fixtures:
        assert re.search(rf"^\| `{name}` \| ", testing, re.M), f"fixture {name} has no row in the guide's table"
    for name in ("engine_process", "build_tiny_model", "labelled_rows", "tsv"):
        signature = inspect.signature(getattr(engine.testing, name))
        parameters = [p for p in signature.parameters if p not in ("args",)]
        documented = re.search(rf"`{name}\(([^`]*)\)`", testing)
        assert documented, f"{name} is not documented with its arguments"
        assert all(p in documented[1] for p in parameters), f"{name}: documented as ({documented[1]}), has {signature}"
