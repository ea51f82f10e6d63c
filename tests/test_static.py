"""Static checks, part of the test command so CI runs them: ruff (lint) over the repository, mypy (types) over the
engine, the built-in plugins and the example third-party plugin, which type-checks against engine's public API
(py.typed). Zero findings; the configuration is in pyproject.toml."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=600, check=False)


def test_ruff_finds_nothing():
    result = run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("mypy_cache"))


def test_mypy_finds_nothing_in_the_engine_and_its_plugins(mypy_cache):
    result = run("mypy", "--cache-dir", mypy_cache)  # the files pyproject.toml names
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_third_party_plugin_type_checks_against_the_public_api(mypy_cache):
    result = run("mypy", "--cache-dir", mypy_cache, "examples/plugin/src/engine_ordinal")
    assert result.returncode == 0, result.stdout + result.stderr
