"""`engine plugins`: each plugin's name, version, source and hooks; --hook filters; --components lists."""

def table(stdout):
    """The rows of the output (tab-separated when, as here, standard output is not a terminal): plugin -> cells."""
    lines = [line.split("\t") for line in stdout.splitlines()]
    assert lines[0][:4] == ["plugin", "version", "source", "hooks"]
    assert all(len(cells) == len(lines[0]) for cells in lines)
    return {cells[0]: cells[1:] for cells in lines[1:]}


def test_output_to_a_file_or_pipe_is_plain_lines_not_a_wide_table(run_engine):
    out = run_engine("plugins", "--components").stdout
    assert not set("│┃━─┏┗") & set(out)
    assert max(len(line.split("\t")[0]) for line in out.splitlines()) < 40  # no padding to a 400-column table
    assert "engine plugins" not in out  # no title: the first line is the header


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



def test_output_cut_short_by_its_reader_ends_quietly(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "ENGINE_PLUGINS": ""}
    head = subprocess.run(f"{sys.executable} -m engine plugins --components | head -1", shell=True, env=env,
                          capture_output=True, text=True)
    assert head.stdout.startswith("plugin\tversion") and "Traceback" not in head.stderr
