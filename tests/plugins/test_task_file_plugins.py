"""A user's own module named in task.json ("plugins": [...]), without packaging; and reloading its model later."""

import json
import sys

import pytest

from engine.testing import engine_process

MY_HEADS = '''
"""A head of one's own, in a file next to the task file."""
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from engine import hookimpl
from engine.head import HeadOutput

__version__ = "0.3"


class FirstTokenOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scale: float = Field(1.0, gt=0)


class FirstTokenHead(nn.Module):
    def __init__(self, options, spec):
        super().__init__()
        self.spec, self.scale = spec, options.scale
        self.out = nn.Linear(spec.hidden_size, spec.num_outputs)

    def forward(self, output, batch):
        logits = self.out(output.last_hidden_state[:, 0]) * self.scale
        labels = batch.get("labels")
        return HeadOutput(logits=logits, loss=self.spec.loss(logits, labels) if labels is not None else None)


@hookimpl
def build_head(register):
    register("first_token", FirstTokenHead, options=FirstTokenOptions)
'''


def test_a_module_next_to_the_task_file_declares_a_head_a_run_uses(tiny_task, run_engine):
    path = tiny_task(head={"name": "first_token", "scale": 2.0}, plugins=["my_heads"])
    (path.parent / "my_heads.py").write_text(MY_HEADS)
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    run_dir = path.parent / "runs/tiny"
    engine_json = json.loads((run_dir / "model/engine.json").read_text())
    assert engine_json["head"] == {"name": "first_token", "scale": 2.0}
    assert engine_json["plugins"]["my_heads"] == "0.3"
    (plugin,) = [p for p in json.loads((run_dir / "manifest.json").read_text())["plugins"] if p["name"] == "my_heads"]
    assert plugin["source"] == "task file" and plugin["path"] == str(path.parent / "my_heads.py")


def test_a_module_missing_from_the_task_folder_and_the_import_path_is_a_clear_error(tiny_task, run_engine):
    path = tiny_task(plugins=["my_headz"])
    result = run_engine("validate", path)
    assert result.exit_code != 0
    message = " ".join(result.stderr.split())
    assert f"plugin module 'my_headz' named in the task file was not found next to the task file ({path.parent})" in message


def test_a_module_that_raises_on_import_stops_the_task_that_names_it(tiny_task, run_engine):
    path = tiny_task(plugins=["my_heads"])
    (path.parent / "my_heads.py").write_text("import json\nraise ImportError('needs scipy')\n")
    result = run_engine("validate", path)
    assert result.exit_code != 0
    assert "plugin module 'my_heads' (from the task file) failed to import: ImportError: needs scipy" in " ".join(result.stderr.split())


def test_each_task_file_gets_the_module_next_to_it(write_task, tmp_path, plugin_manager, tiny_model_dir):
    from engine.plugins.manager import load_plugins

    declared = []
    for folder, head in (("one", "head_one"), ("two", "head_two")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "local_heads.py").write_text(
            f"from engine import hookimpl\n@hookimpl\ndef build_head(register):\n    register({head!r}, lambda o, s: None)\n")
        declared.append(load_plugins(["local_heads"], tmp_path / folder).registry().names("build_head"))
    assert "head_one" in declared[0] and "head_two" in declared[1] and "head_one" not in declared[1]


def test_blocking_applies_to_task_file_modules(tiny_task, run_engine, monkeypatch):
    path = tiny_task(plugins=["my_heads"])
    (path.parent / "my_heads.py").write_text(MY_HEADS)
    monkeypatch.setenv("ENGINE_BLOCK_PLUGINS", "my_heads")
    assert run_engine("validate", path).exit_code == 0
    from engine.plugins.manager import load_plugins

    assert "my_heads" in load_plugins(["my_heads"], path.parent).skipped


# --- a saved model with a custom head, reloaded in a fresh process -----------------------------------------------


def predict(run_dir, input_file, cwd, *flags):
    """`engine predict` in a fresh interpreter, as a user runs it later (not from the task's folder)."""
    return engine_process("predict", run_dir, "--input", input_file, *flags, cwd=cwd,
                          env={"OMP_NUM_THREADS": "1", "PYTHONPATH": ""}, timeout=120)


@pytest.fixture
def trained_with_my_heads(tiny_task, run_engine, tmp_path):
    path = tiny_task(head={"name": "first_token", "scale": 2.0}, plugins=["my_heads"])
    (path.parent / "my_heads.py").write_text(MY_HEADS)
    assert run_engine("run", path).exit_code == 0
    (tmp_path / "in.tsv").write_text("text\nthe movie was great\nthe food was awful\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return path.parent / "runs/tiny", tmp_path / "in.tsv", elsewhere


def test_a_run_directory_runs_no_code_it_points_to_unless_trusted(trained_with_my_heads, tmp_path):
    run_dir, input_file, elsewhere = trained_with_my_heads
    module = run_dir.parents[1] / "my_heads.py"
    marker = tmp_path / "imported"
    module.write_text(module.read_text() + f"\nopen({str(marker)!r}, 'w').close()\n")
    result = predict(run_dir, input_file, elsewhere)
    assert result.returncode != 0 and not marker.exists()  # refused, and nothing of the module ran
    message = " ".join(result.stderr.split())
    assert f"plugin 'my_heads' 0.3 is a module the training task file named, recorded at {module}" in message
    assert "unless you pass --trust-plugins" in message and "Traceback" not in result.stderr
    assert predict(run_dir, input_file, elsewhere, "--trust-plugins").returncode == 0 and marker.exists()


def test_predict_in_a_fresh_process_reloads_the_task_file_module(trained_with_my_heads, run_engine):
    run_dir, input_file, elsewhere = trained_with_my_heads
    result = predict(run_dir, input_file, elsewhere, "--trust-plugins")
    assert result.returncode == 0, result.stderr
    fresh = [json.loads(line) for line in result.stdout.splitlines()]
    in_process = run_engine("predict", run_dir, "--input", input_file)
    assert fresh == [json.loads(line) for line in in_process.stdout.splitlines()]
    assert [row["text"] for row in fresh] == ["the movie was great", "the food was awful"]


def test_predict_without_the_module_names_it_and_where_it_was(trained_with_my_heads):
    run_dir, input_file, elsewhere = trained_with_my_heads
    module = run_dir.parents[1] / "my_heads.py"
    module.rename(module.with_name("moved.py"))
    result = predict(run_dir, input_file, elsewhere, "--trust-plugins")
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "this model needs the head 'first_token', which no loaded plugin declares" in message
    assert f"plugin 'my_heads' 0.3 is a module the training task file named (it was {module})" in message
    assert "Traceback" not in result.stderr


def test_a_model_folder_copied_on_its_own_finds_the_module_on_the_import_path(trained_with_my_heads, run_engine,
                                                                              tmp_path, monkeypatch):
    import shutil

    run_dir, input_file, elsewhere = trained_with_my_heads
    copied = shutil.copytree(run_dir / "model", tmp_path / "shipped" / "model")  # no manifest.json beside it
    module = run_dir.parents[1] / "my_heads.py"
    (elsewhere / "my_heads.py").write_text(module.read_text())
    module.unlink()
    monkeypatch.delitem(sys.modules, "my_heads")
    assert run_engine("predict", copied, "--input", input_file).exit_code != 0
    monkeypatch.syspath_prepend(str(elsewhere))
    result = run_engine("predict", copied, "--input", input_file)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
