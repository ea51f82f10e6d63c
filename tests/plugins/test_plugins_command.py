"""`engine plugins`: each plugin's name, version, source and hooks; --hook filters; --components lists."""

def table(stdout):
    """The rows of rich's table: plugin name -> the other cells."""
    return {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in stdout.splitlines() if line.startswith("│")}


LOCAL = """
from engine import hookimpl

__version__ = "0.2"


@hookimpl
def build_head(register):
    register("local_head", lambda options, spec: None)


@hookimpl
def freeze(register):
    register("local_freeze", lambda options: None)
"""

INSTALLED = """
from engine import hookimpl


@hookimpl
def metric(register):
    register("installed_metric", lambda options, task: None)
"""


def test_plugins_shows_every_source_with_version_and_hooks(install_fake, monkeypatch, write_task, run_engine):
    install_fake("engine_installed", INSTALLED, entry_point="installed", dist="engine-installed", version="1.4.2")
    monkeypatch.setenv("ENGINE_PLUGINS", "installed")
    path = write_task({"task": "classification", "data": {"train": "t.tsv"}, "plugins": ["local_plugin"]},
                      {"local_plugin.py": LOCAL})
    result = run_engine("plugins", path)
    assert result.exit_code == 0, result.stderr
    rows = table(result.stdout)
    assert rows["installed"] == ["1.4.2", "entry point", "metric"]
    assert rows["local_plugin"] == ["0.2", "task file", "build_head, freeze"]
    assert rows["classification"][1:] == ["built-in", "task, metric"]


def test_hook_filters_to_the_plugins_implementing_it(write_task, run_engine):
    path = write_task({"task": "classification", "data": {"train": "t.tsv"}, "plugins": ["local_plugin"]},
                      {"local_plugin.py": LOCAL})
    rows = table(run_engine("plugins", path, "--hook", "build_head").stdout)
    assert {"heads", "local_plugin"} <= set(rows) and "classification" not in rows
    assert all("build_head" in cells[2] for cells in rows.values())
    rows = table(run_engine("plugins", "--hook", "freeze").stdout)
    assert "freezing" in rows and "heads" not in rows and "local_plugin" not in rows


def test_components_lists_what_each_plugin_declares(run_engine):
    rows = table(run_engine("plugins", "--hook", "build_head", "--components").stdout)
    assert rows["heads"][-1] == "head:linear, head:mlp"


def test_an_unknown_hook_is_an_error_with_a_suggestion(run_engine):
    result = run_engine("plugins", "--hook", "build_heads")
    assert result.exit_code == 1
    assert "unknown hook 'build_heads' (did you mean 'build_head'?)" in " ".join(result.stderr.split())

