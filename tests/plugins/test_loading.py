"""Which plugins load: entry points, the ENGINE_PLUGINS pin, blocking, broken plugins, duplicate names."""

import re
import textwrap

import pytest

from engine.cli.commands import build_parser
from engine.errors import PluginError
from engine.plugins.manager import PluginManager, load_plugins

KAPPA = """
    from engine import hookimpl

    __version__ = "ignored: entry points report their distribution's version"


    def kappa(options, task):
        return lambda predictions, references: {"kappa": 1.0}


    @hookimpl
    def metric(register):
        register("kappa", kappa)
"""

BROKEN = """
    raise RuntimeError("boom: this plugin cannot import")
"""


def test_an_installed_plugin_loads_through_its_entry_point(install_fake, monkeypatch):
    install_fake("engine_kappa", KAPPA, entry_point="kappa", dist="engine-kappa", version="2.3")
    monkeypatch.delenv("ENGINE_PLUGINS")
    manager = load_plugins()
    info = manager.infos["kappa"]
    assert (info.source, info.version, info.distribution, info.hooks) == ("entry point", "2.3", "engine-kappa", ["metric"])
    assert manager.registry().find("metric", "kappa").plugin == "kappa"
    assert manager.infos["heads"].source == "built-in"


@pytest.mark.parametrize("pin, loads", [("", False), ("kappa", True), ("engine-kappa", True), ("other,kappa", True),
                                        ("other", False)])
def test_engine_plugins_pins_which_third_party_plugins_load(install_fake, monkeypatch, pin, loads):
    install_fake("engine_kappa", KAPPA, entry_point="kappa", dist="engine-kappa")
    monkeypatch.setenv("ENGINE_PLUGINS", pin)
    manager = load_plugins()
    assert ("kappa" in manager.infos) is loads
    assert ("kappa" in manager.skipped) is not loads
    assert "linear" in manager.registry().names("build_head")  # built-ins load whatever the pin


def test_the_plugins_flag_overrides_the_environment(install_fake, monkeypatch, tiny_task, run_engine):
    install_fake("engine_kappa", KAPPA, entry_point="kappa")
    monkeypatch.setenv("ENGINE_PLUGINS", "")
    path = tiny_task(metrics=["kappa"])
    assert run_engine("validate", path).exit_code == 2
    assert run_engine("validate", path, "--plugins", "kappa").exit_code == 0


def test_a_pinned_name_that_is_not_installed_is_reported(monkeypatch, tiny_task, run_engine):
    monkeypatch.setenv("ENGINE_PLUGINS", "kapa")
    result = run_engine("validate", tiny_task())
    assert result.exit_code == 0
    assert "'kapa'" in result.stderr and "not installed" in result.stderr


def test_blocking_keeps_out_third_party_plugins_and_built_ins(install_fake, monkeypatch, tiny_task, run_engine):
    install_fake("engine_kappa", KAPPA, entry_point="kappa")
    monkeypatch.setenv("ENGINE_PLUGINS", "kappa")
    monkeypatch.setenv("ENGINE_BLOCK_PLUGINS", "kappa")
    manager = load_plugins(block=["heads"])
    assert "kappa" not in manager.infos and "heads" not in manager.infos
    assert manager.registry().find("build_head", "linear") is None
    result = run_engine("validate", tiny_task(), "--block-plugins", "heads")
    assert result.exit_code == 2 and "unknown head 'linear'" in result.stderr


def test_a_plugin_that_fails_to_import_is_reported_once_and_the_run_goes_on(install_fake, monkeypatch, tiny_task,
                                                                           run_engine):
    install_fake("engine_broken", BROKEN, entry_point="broken")
    install_fake("engine_kappa", KAPPA, entry_point="kappa")
    monkeypatch.setenv("ENGINE_PLUGINS", "broken,kappa")
    path = tiny_task(metrics=["accuracy", "kappa"])
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    warnings = " ".join(result.stderr.split())  # rich wraps long lines
    assert warnings.count("warning:") == 1
    assert "plugin 'broken' failed to load" in warnings and "RuntimeError: boom" in warnings
    assert (path.parent / "runs/tiny/model/engine.json").is_file()


def test_a_task_that_needs_a_plugin_that_failed_names_it_and_its_error(install_fake, monkeypatch, tiny_task,
                                                                       run_engine):
    install_fake("engine_broken", BROKEN, entry_point="broken")
    monkeypatch.setenv("ENGINE_PLUGINS", "broken")
    result = run_engine("validate", tiny_task(head="attention_pooling"))
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "head.name: unknown head 'attention_pooling'" in message
    assert "plugins that failed to load: broken (RuntimeError: boom: this plugin cannot import)" in message


def test_a_plugin_implementing_an_unknown_hook_is_left_out_with_the_hook_named(install_fake, monkeypatch):
    install_fake("engine_typo", """
        from engine import hookimpl

        @hookimpl
        def build_heads(register):
            pass
    """, entry_point="typo")
    monkeypatch.setenv("ENGINE_PLUGINS", "typo")
    manager = load_plugins()
    assert "typo" not in manager.infos
    assert "plugin 'typo'" in manager.failures["typo"] and "build_heads" in manager.failures["typo"]


def test_a_plugin_whose_hook_raises_is_left_out_with_the_hook_named(install_fake, monkeypatch):
    install_fake("engine_raises", """
        from engine import hookimpl

        def kappa(options, task):
            pass

        @hookimpl
        def metric(register):
            register("half_declared", kappa)
            raise ValueError("no config file")
    """, entry_point="raises")
    monkeypatch.setenv("ENGINE_PLUGINS", "raises")
    manager = load_plugins()
    assert manager.failures["raises"] == "plugin 'raises', hook 'metric' raised ValueError: no config file"
    assert manager.registry().find("metric", "half_declared") is None  # nothing of it, not half
    assert "accuracy" in manager.registry().names("metric")


def test_two_plugins_declaring_one_name_is_an_error_naming_both(install_fake, monkeypatch):
    install_fake("engine_kappa", KAPPA, entry_point="kappa")
    install_fake("engine_kappa_too", KAPPA, entry_point="kappa_too")
    monkeypatch.setenv("ENGINE_PLUGINS", "kappa,kappa_too")
    with pytest.raises(PluginError, match="metric 'kappa' is declared twice: by plugin 'kappa' and by plugin 'kappa_too'") as info:
        load_plugins()
    # The remedy it names is a flag the CLI has.
    flag = re.search(r"\((--[\w-]+) NAME", str(info.value)).group(1)
    run_help = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert re.search(re.escape(flag) + r"\b(?!-)", run_help), f"{flag} is not an option of engine run"


def test_declaring_a_built_in_name_is_an_error_until_one_is_blocked(plugin_manager):
    import types

    module = types.ModuleType("engine_accuracy")
    exec("from engine import hookimpl\n@hookimpl\ndef metric(register):\n    register('accuracy', lambda o, t: None)",
         module.__dict__)
    plugin_manager.add_module("my_accuracy", module)
    with pytest.raises(PluginError, match=r"by plugin 'classification' and by plugin 'my_accuracy'.*Block one"):
        plugin_manager.registry()
    replaced = PluginManager(block=["classification"])
    replaced.load_entry_points()
    replaced.add_module("my_accuracy", module)
    assert replaced.registry().find("metric", "accuracy").plugin == "my_accuracy"


@pytest.mark.parametrize("call, expected", [
    ("register('', f)", "register() expects a non-empty name, got ''"),
    ("register('x', 3)", "register('x', ...) expects a callable factory, got int"),
    ("register('x', f, options=dict)", "register('x', options=...) expects a pydantic BaseModel subclass"),
])
def test_register_says_which_plugin_and_hook_called_it_wrongly(plugin_manager, call, expected):
    import types

    module = types.ModuleType("engine_wrong")
    exec(f"from engine import hookimpl\nf = lambda o: None\n@hookimpl\ndef augment(register):\n    {call}",
         module.__dict__)
    plugin_manager.add_module("wrong", module)
    with pytest.raises(PluginError) as info:
        plugin_manager.registry()
    assert str(info.value).startswith("plugin 'wrong', hook 'augment': ") and expected in str(info.value)


POOL_WITHOUT_SPEC = """
    from engine import hookimpl

    def pool(options):  # a head factory also gets the HeadSpec
        return None

    @hookimpl
    def build_head(register):
        register("pool", pool)
"""


def test_a_factory_the_engine_cannot_call_is_refused_at_load_naming_plugin_hook_and_signature(install_fake,
                                                                                              monkeypatch):
    install_fake("engine_pool", POOL_WITHOUT_SPEC, entry_point="pool")
    monkeypatch.setenv("ENGINE_PLUGINS", "pool")
    manager = load_plugins()  # loading, not a run, finds it
    assert manager.failures["pool"] == (
        "plugin 'pool', hook 'build_head': register('pool', ...): the engine calls a head's factory as "
        "factory(options, spec); pool(options) does not accept that (too many positional arguments). "
        "See engine.hookspecs.build_head.")
    assert manager.registry().find("build_head", "pool") is None and "linear" in manager.registry().names("build_head")


@pytest.mark.parametrize("factory", [
    "def f(options, spec): pass",
    "def f(options, spec, dropout=0.1): pass",
    "def f(*args): pass",
    "class f:\n    def __init__(self, options, spec): pass",
    "import functools\ndef g(scale, options, spec): pass\nf = functools.partial(g, 2.0)",
])
def test_factories_the_engine_can_call_are_accepted(plugin_manager, factory):
    import types

    module = types.ModuleType("engine_heads")
    exec(f"from engine import hookimpl\n{factory}\n@hookimpl\ndef build_head(register):\n    register('mine', f)",
         module.__dict__)
    plugin_manager.add_module("heads_ok", module)
    assert plugin_manager.registry().find("build_head", "mine").plugin == "heads_ok"


def test_a_task_file_module_with_a_wrong_factory_stops_before_the_run(tiny_task, run_engine):
    path = tiny_task(plugins=["my_pool"])
    (path.parent / "my_pool.py").write_text(textwrap.dedent(POOL_WITHOUT_SPEC))
    result = run_engine("validate", path)
    assert result.exit_code != 0
    assert "plugin 'my_pool', hook 'build_head'" in result.stderr and "factory(options, spec)" in result.stderr


def test_an_installed_plugin_also_named_in_a_task_file_loads_once(install_fake, monkeypatch, tmp_path):
    install_fake("engine_kappa", KAPPA, entry_point="kappa")
    monkeypatch.setenv("ENGINE_PLUGINS", "kappa")
    manager = load_plugins(["engine_kappa"], tmp_path)
    assert [n for n, i in manager.infos.items() if i.module == "engine_kappa"] == ["kappa"]
    assert manager.registry().find("metric", "kappa").plugin == "kappa"
