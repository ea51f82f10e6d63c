"""The example plugin installed with pip into a fresh virtual environment: `engine plugins` lists it, `engine run`
uses its task, head, metric and callback, `engine predict` reloads the model there and names the missing plugin
where it is not installed, and the plugin's own tests pass on the fixtures engine ships.

A fresh venv has no torch; instead of installing gigabytes, a .pth file in it adds this interpreter's
site-packages (and runs their .pth files, the editable install of engine among them), so engine and its
dependencies import there while the plugin is installed into the venv alone.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import pytest

from engine.testing import labelled_rows, tsv

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin"


def site_dirs() -> list[str]:
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


def clean_env(**extra: str) -> dict[str, str]:
    """No pin, no PYTHONPATH: the subprocess loads what is installed where it runs, as a user's shell would."""
    env = {k: v for k, v in os.environ.items() if k not in ("ENGINE_PLUGINS", "ENGINE_BLOCK_PLUGINS", "PYTHONPATH")}
    # One thread: the tiny model gains nothing from more, and the machine is shared.
    return {**env, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", **extra}


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("venv")
    # pip comes from this interpreter's site-packages, through the .pth: no ensurepip, no network.
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(root / "env")
    python = root / "env" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    lines = [f"import site; site.addsitedir({path!r})" for path in site_dirs()]
    (site / "engine_parent_site.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # Built from a copy: a build leaves build/ and *.egg-info behind in the source folder.
    source = shutil.copytree(EXAMPLE, root / "engine-ordinal", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    # Building with this environment's setuptools needs no network; older ones (before 70.1) cannot build wheels
    # without the `wheel` package, and then pip fetches a build environment of its own.
    isolation = ["--no-build-isolation", "--no-index"] if builds_wheels_here() else []
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                                *isolation, str(source)], env=clean_env(), capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python, source


def builds_wheels_here() -> bool:
    try:
        setuptools = metadata.version("setuptools")
    except metadata.PackageNotFoundError:
        return False
    version = tuple(int(part) for part in setuptools.split(".")[:2] if part.isdigit())
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def engine(python, *args, cwd):
    return subprocess.run([str(python), "-m", "engine", *map(str, args)], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=300)


def test_the_installed_plugin_is_listed_and_runs_predicts_and_is_missed_elsewhere(plugin_venv, tiny_model_dir, tmp_path):
    python, _ = plugin_venv
    listing = engine(python, "plugins", "--hook", "build_head", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    rows = {cells[0]: cells[1:] for cells in (line.split("\t") for line in listing.stdout.splitlines()[1:])}
    assert rows["ordinal"] == ["0.1.0", "entry point", "task, build_head, callback, metric"]
    assert rows["heads"][1:] == ["built-in", "build_head"] and "formats" not in rows

    labels = ["1", "2", "3"]
    (tmp_path / "train.tsv").write_text(tsv(labelled_rows(labels, 24, 1)))
    (tmp_path / "dev.tsv").write_text(tsv(labelled_rows(labels, 9, 2)))
    task = {
        "task": "ordinal", "model": {"name": str(tiny_model_dir)},
        "data": {"train": "train.tsv", "validation": "dev.tsv"},
        "head": {"name": "attention_pooling", "dropout": 0.0}, "metrics": ["qwk", "rank_mae"],
        "callbacks": [{"name": "stop_at_target", "monitor": "validation.rank_mae", "target": 2.0}],
        "training": {"epochs": 3, "batch_size": 8, "seed": 1}, "output_dir": "run",
    }
    (tmp_path / "task.json").write_text(json.dumps(task))
    ran = engine(python, "run", "task.json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert set(json.loads((tmp_path / "run/metrics.json").read_text())["validation"]) == {"loss", "qwk", "rank_mae"}
    history = (tmp_path / "run/history.jsonl").read_text().splitlines()
    assert sum('"evaluate"' in line for line in history) == 1  # stop_at_target: rank_mae <= 2 with 3 levels
    manifest = json.loads((tmp_path / "run/manifest.json").read_text())
    (ordinal,) = [p for p in manifest["plugins"] if p["name"] == "ordinal"]
    assert (ordinal["source"], ordinal["distribution"], ordinal["version"]) == ("entry point", "engine-ordinal", "0.1.0")

    (tmp_path / "in.tsv").write_text("text\nthe film was great\n")
    predicted = engine(python, "predict", "run", "--input", "in.tsv", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["label"] in labels

    if "ordinal" in {ep.name for ep in metadata.entry_points(group="engine.plugins")}:
        pytest.skip("engine-ordinal is installed in this environment too: it cannot stand in for one without it")
    missing = engine(sys.executable, "predict", "run", "--input", "in.tsv", cwd=tmp_path)
    assert missing.returncode != 0
    message = " ".join(missing.stderr.split())
    assert ("this model needs the task 'ordinal', which no loaded plugin declares. plugin 'ordinal' 0.1.0 is not "
            "installed: pip install engine-ordinal") in message
    assert "Traceback" not in missing.stderr


def test_the_plugins_own_tests_pass_on_the_fixtures_engine_ships(plugin_venv):
    python, source = plugin_venv
    result = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=source,
                            env=clean_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
