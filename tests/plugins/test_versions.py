"""Which engine versions a plugin supports: declared in its module (ENGINE_VERSIONS) or its distribution's
requirements; a plugin for another engine gets one message saying which versions it supports and which this is."""

import textwrap
from pathlib import Path

import pytest

import engine
from engine.deprecation import DEPRECATIONS, MODULES_MOVED_IN, MOVED_MODULES, MOVED_MODULES_REMOVED_IN
from engine.plugins.manager import load_plugins

KAPPA = """
    from engine import hookimpl
    {declaration}

    def kappa(options, task):
        return lambda predictions, references: {{"kappa": 1.0}}

    @hookimpl
    def metric(register):
        register("kappa", kappa)
"""


def plugin(declaration: str = "") -> str:
    return KAPPA.format(declaration=declaration)


@pytest.mark.parametrize("declaration, requires, loads", [
    ("", (), True),  # says nothing: loads
    (f"ENGINE_VERSIONS = '>={engine.__version__}'", (), True),
    ("ENGINE_VERSIONS = '>=0.1,<0.2'", (), False),
    ("", (f"engine>={engine.__version__}",), True),
    ("", ("engine<0.2",), False),
    ("", ("engine>=99; extra == 'docs'",), True),  # an optional extra's requirement does not apply
    ("", ("numpy>=1", "engine>=99"), False),
])
def test_a_plugin_loads_only_on_the_engine_versions_it_supports(install_fake, monkeypatch, declaration, requires,
                                                                loads):
    install_fake("engine_kappa", plugin(declaration), entry_point="kappa", requires=requires)
    monkeypatch.setenv("ENGINE_PLUGINS", "kappa")
    manager = load_plugins()
    assert ("kappa" in manager.infos) is loads
    assert (manager.registry().find("metric", "kappa") is not None) is loads
    if not loads:
        message = manager.failures["kappa"]
        assert message.startswith("plugin 'kappa' supports engine ") and f"this is engine {engine.__version__}" in message


def test_the_message_names_the_range_and_where_it_was_declared(install_fake, monkeypatch):
    install_fake("engine_kappa", plugin(), entry_point="kappa", requires=("engine>=0.9",), version="2.1")
    monkeypatch.setenv("ENGINE_PLUGINS", "kappa")
    assert load_plugins().failures["kappa"] == (
        f"plugin 'kappa' supports engine >=0.9 (its distribution engine-kappa 2.1 requires engine>=0.9); this is "
        f"engine {engine.__version__}. Install a release of the plugin that supports engine {engine.__version__}, "
        "or an engine it supports")


def test_a_distribution_for_another_engine_is_not_even_imported(install_fake, monkeypatch):
    install_fake("engine_future", "from engine import removed_in_this_version", entry_point="future",
                 requires=("engine>=9",))
    monkeypatch.setenv("ENGINE_PLUGINS", "future")
    assert "supports engine >=9" in load_plugins().failures["future"]  # not an ImportError


def test_a_task_file_module_for_another_engine_stops_the_run_with_one_message(tiny_task, run_engine):
    path = tiny_task(plugins=["old_kappa"])
    (path.parent / "old_kappa.py").write_text(textwrap.dedent(plugin("ENGINE_VERSIONS = '<0.2'")))
    result = run_engine("validate", path)
    assert result.exit_code != 0
    assert "plugin 'old_kappa' supports engine <0.2 (its ENGINE_VERSIONS = '<0.2')" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_a_malformed_declaration_is_named(install_fake, monkeypatch):
    install_fake("engine_kappa", plugin("ENGINE_VERSIONS = 'zero point two'"), entry_point="kappa")
    monkeypatch.setenv("ENGINE_PLUGINS", "kappa")
    assert load_plugins().failures["kappa"] == (
        "plugin 'kappa': ENGINE_VERSIONS = 'zero point two' is not a range of engine versions; expected a version "
        "specifier such as '>=0.2,<0.4'")


def test_the_example_plugin_declares_the_versions_it_supports():
    from pathlib import Path

    from packaging.specifiers import SpecifierSet

    source = (Path(__file__).parents[2] / "examples/plugin/src/engine_ordinal/__init__.py").read_text()
    namespace: dict = {}
    exec(next(line for line in source.splitlines() if line.startswith("ENGINE_VERSIONS")), namespace)
    assert engine.__version__ in SpecifierSet(namespace["ENGINE_VERSIONS"])


@pytest.mark.parametrize("key", sorted(DEPRECATIONS))
def test_a_deprecation_lasts_one_minor_version_and_is_removed_in_the_next(key):
    from packaging.version import Version

    deprecation = DEPRECATIONS[key]
    since, removed = Version(deprecation.since), Version(deprecation.removed_in)
    assert (removed.major, removed.minor) == (since.major, since.minor + 1)
    # Failing here means this release must remove the deprecated way (and this entry): its notice has run out.
    assert Version(engine.__version__) < removed, f"{deprecation.what} is due for removal in {removed}"


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_a_moved_module_path_lasts_one_minor_version(old):
    from packaging.version import Version

    since, removed = Version(MODULES_MOVED_IN), Version(MOVED_MODULES_REMOVED_IN)
    assert (removed.major, removed.minor) == (since.major, since.minor + 1)
    # Failing here means this release must delete the module left at the old path (and this entry).
    assert Version(engine.__version__) < removed, f"{old} is due for removal in {removed}"
    assert (Path(engine.__file__).parent / f"{old.removeprefix('engine.')}.py").is_file()
