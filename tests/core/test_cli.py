"""The CLI answers fast (heavy libraries wait until a command needs them) and prints errors, not tracebacks."""

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "accelerate", "datasets")


def imported_after(code):
    probe = f"import sys\n{code}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def test_help_imports_no_heavy_library():
    assert imported_after("from engine.cli.commands import build_parser\nbuild_parser().format_help()") == ""


def test_help_imports_not_even_pydantic_or_pluggy():
    """`engine --help` answers in about 0.1 s (bench/speed_vs_peers.py): the package's exports load on first use."""
    probe = ("import sys\nfrom engine.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print('loaded:', *(m for m in ('pydantic', 'pluggy', 'rich', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "usage: engine" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "loaded:"


def test_the_package_exports_load_on_first_use():
    probe = ("import engine, sys\nassert 'engine.task' not in sys.modules\n"
             "from engine import *\nimport engine.task, engine.hookspecs\n"
             "assert Task is engine.task.Task and hookimpl is engine.hookspecs.hookimpl\n"
             "assert sorted(dir(engine)) == sorted(engine.__all__)\n"
             "try:\n    engine.nothing\nexcept AttributeError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "module 'engine' has no attribute 'nothing'"


def test_validate_imports_no_heavy_library(tmp_path):
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"task": "classification", "data": {"train": "t.tsv"}, "augment": ["random_swap"],
                                "freeze": "embeddings", "callbacks": ["early_stopping"]}))
    code = f"from engine.cli.commands import main\nassert main(['validate', {str(task)!r}]) == 0"
    assert imported_after(code) == ""


def test_plugins_lists_builtins_with_hooks(run_engine):
    result = run_engine("plugins")
    assert result.exit_code == 0
    assert "classification" in result.stdout and "built-in" in result.stdout and "build_head" in result.stdout
    result = run_engine("plugins", "--hook", "build_head")
    assert "heads" in result.stdout and "classification" not in result.stdout


def test_schema_is_json(run_engine):
    result = run_engine("schema")
    schema = json.loads(result.stdout)
    # A one-task file needs task and data; a multi-task file has tasks instead (docs/multitask.md).
    assert schema["if"] == {"required": ["tasks"]} and schema["else"]["required"] == ["task", "data"]
    assert "tasks" in schema["then"]["properties"]


def test_missing_task_file(run_engine, tmp_path):
    result = run_engine("run", tmp_path / "nope.json")
    assert result.exit_code == 2 and "task file not found" in result.stderr and "Traceback" not in result.stderr


def test_predict_on_a_folder_without_a_model(run_engine, tmp_path):
    result = run_engine("predict", tmp_path, "--input", tmp_path / "x.tsv")
    assert result.exit_code == 1 and "no trained model here" in result.stderr
