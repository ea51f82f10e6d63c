"""Components the plugins declared, by hook and name."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard

from pydantic import BaseModel

from engine.errors import ConfigError, ConfigIssue, PluginError, did_you_mean

# The hooks through which components are declared, and what a task file calls a component of each.
KINDS: dict[str, str] = {
    "task": "task",
    "load_data": "data format",
    "augment": "augmentation",
    "build_head": "head",
    "freeze": "freezing strategy",
    "optimizer": "optimizer",
    "scheduler": "scheduler",
    "callback": "callback",
    "metric": "metric",
}


# What the engine passes each hook's factories, positionally, after the validated options (engine.hookspecs).
FACTORY_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "task": (),
    "load_data": ("base_dir",),
    "augment": (),
    "build_head": ("spec",),
    "freeze": (),
    "optimizer": ("model",),
    "scheduler": ("optimizer", "num_training_steps"),
    "callback": (),
    "metric": ("task",),
}


def factory_signature(hook: str) -> str:
    return f"factory({', '.join(('options', *FACTORY_ARGUMENTS[hook]))})"


def check_factory(factory: Callable[..., Any], hook: str) -> str | None:
    """Why ``factory`` cannot be called the way the engine calls factories of ``hook`` (None: it can)."""
    import inspect

    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to read (some builtins): trust it
        return None
    try:
        signature.bind(*(None for _ in range(1 + len(FACTORY_ARGUMENTS[hook]))))
    except TypeError as exc:
        return f"{getattr(factory, '__qualname__', factory)}{signature} does not accept that ({exc})"
    return None


#: What a ``metric`` factory returns: predictions and references of a whole split in, named values out.
Metric = Callable[[list[Any], list[Any]], dict[str, float]]
#: What an ``augment`` factory returns: a chunk of training rows and its seeded generator in, rows out. It may carry
#: an attribute ``fingerprint`` (a string: what else identifies its output, such as a digest of a model folder's
#: files), which joins the cache key of the augmented split.
Augmentation = Callable[[list[dict[str, Any]], random.Random], list[dict[str, Any]]]

#: The text shapes an augmentation may handle (``register(..., shapes=[...])``): ``single`` (``row["text"]`` a
#: string), ``pair`` (``text`` and ``text_pair`` strings), ``tokens`` (``text`` a list of words and ``label`` one tag
#: per word, as a task with ``labels_per_word`` has: the augmentation keeps the tags aligned).
SHAPES = ("single", "pair", "tokens")
#: What an augmentation that declares no shapes (a plugin written for 0.2) handles: plain texts, as in 0.2.
DEFAULT_SHAPES = ("single", "pair")


class Register(Protocol):
    """The callable every hook receives; see ``engine.hookspecs``."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        options: type[BaseModel] | None = None,
        description: str | None = None,
        higher_is_better: bool | None = None,
        produces: list[str] | None = None,
        shapes: Sequence[str] | None = None,
        tasks: Sequence[str] | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class Component:
    """One named thing a plugin offers for one hook."""

    hook: str
    name: str
    factory: Callable[..., Any]
    options: type[BaseModel] | None
    description: str
    plugin: str
    #: Metrics: whether the values improve upwards (None: not declared).
    higher_is_better: bool | None = None
    #: Metrics: the names (fnmatch patterns) of the values computed, e.g. ``["pearson", "pearson_*"]`` (None: not
    #: declared, so a monitor naming another value cannot be checked before the run).
    produces: tuple[str, ...] | None = None
    #: Augmentations: the text shapes handled (``SHAPES``), as declared (None: not declared; see ``text_shapes``).
    shapes: tuple[str, ...] | None = None
    #: Augmentations: the task names supported (None: any task).
    tasks: tuple[str, ...] | None = None

    @property
    def text_shapes(self) -> tuple[str, ...]:
        """The shapes an augmentation handles: as declared, else ``DEFAULT_SHAPES`` (what a 0.2 plugin's did)."""
        return self.shapes if self.shapes is not None else DEFAULT_SHAPES

    def produce(self, value_name: str) -> bool:
        from fnmatch import fnmatchcase

        return self.produces is not None and any(fnmatchcase(value_name, p) for p in self.produces)

    def build(self, options: BaseModel | None, *args: Any, **kwargs: Any) -> Any:
        return self.factory(options, *args, **kwargs)


@dataclass
class Registry:
    """Everything declared, checked for duplicates as it is added."""

    components: dict[str, dict[str, Component]] = field(default_factory=lambda: {hook: {} for hook in KINDS})

    def add(self, component: Component) -> None:
        taken = self.components[component.hook].get(component.name)
        if taken is not None:
            raise PluginError(
                f"{KINDS[component.hook]} {component.name!r} is declared twice: by plugin {taken.plugin!r} and by "
                f"plugin {component.plugin!r}. Block one of them (--block-plugins NAME or ENGINE_BLOCK_PLUGINS)."
            )
        self.components[component.hook][component.name] = component

    def names(self, hook: str) -> list[str]:
        return sorted(self.components[hook])

    def find(self, hook: str, name: str) -> Component | None:
        return self.components[hook].get(name)

    def unknown(self, hook: str, name: object, path: str) -> ConfigIssue:
        """The issue to report when a task file names a component nobody declared."""
        known = self.names(hook)
        hint = did_you_mean(name, known) if isinstance(name, str) else ""
        listing = ", ".join(repr(n) for n in known) or "none (is a plugin missing?)"
        return ConfigIssue(path, f"unknown {KINDS[hook]} {name!r}{hint}; expected one of: {listing}")

    def get(self, hook: str, name: str) -> Component:
        """The component, or a ConfigError listing the known ones (for code that looks one up by name)."""
        component = self.find(hook, name)
        if component is None:
            raise ConfigError([self.unknown(hook, name, KINDS[hook])])
        return component


def make_register(registry: Registry, hook: str, plugin: str) -> Register:
    """A ``register`` callable that records each declaration under ``plugin``."""

    def register(
        name: str,
        factory: Callable[..., Any],
        *,
        options: type[BaseModel] | None = None,
        description: str | None = None,
        higher_is_better: bool | None = None,
        produces: list[str] | None = None,
        shapes: Sequence[str] | None = None,
        tasks: Sequence[str] | None = None,
    ) -> None:
        problem = (_component_problem(name, factory, hook, options)
                   or _metric_problem(name, hook, higher_is_better, produces)
                   or _augmentation_problem(name, hook, shapes, tasks))
        if problem is not None:
            shown = f"register({name!r}, ...)" if isinstance(name, str) and name else "register()"
            raise PluginError(f"plugin {plugin!r}, hook {hook!r}: {problem.replace('register(...)', shown)}")
        doc = (getattr(factory, "__doc__", None) or "").strip().splitlines()
        registry.add(Component(hook, name, factory, options, description or (doc[0] if doc else ""), plugin,
                               higher_is_better, _names(produces), _names(shapes), _names(tasks)))

    return register


def _names(values: Sequence[str] | None) -> tuple[str, ...] | None:
    return tuple(values) if values is not None else None


def _is_names(values: object) -> TypeGuard[Sequence[str]]:
    """A list (or tuple) of non-empty strings: not one string, which would read as its letters."""
    return isinstance(values, (list, tuple)) and all(isinstance(v, str) and v for v in values)


def _component_problem(name: object, factory: Any, hook: str, options: object) -> str | None:
    """What is wrong with what every declaration gives: its name, its factory, its options model."""
    if not isinstance(name, str) or not name:
        return f"register() expects a non-empty name, got {name!r}"
    if not callable(factory):
        return f"register(...) expects a callable factory, got {type(factory).__name__}"
    mismatch = check_factory(factory, hook)
    if mismatch is not None:
        return (f"register(...): the engine calls a {KINDS[hook]}'s factory as {factory_signature(hook)}; "
                f"{mismatch}. See engine.hookspecs.{hook}.")
    if options is not None and not (isinstance(options, type) and issubclass(options, BaseModel)):
        return f"register({name!r}, options=...) expects a pydantic BaseModel subclass, got {options!r}"
    return None


def _metric_problem(name: str, hook: str, higher_is_better: bool | None,
                    produces: Sequence[str] | None) -> str | None:
    if (higher_is_better is not None or produces is not None) and hook != "metric":
        return "register(...): higher_is_better and produces describe metrics; the metric hook takes them"
    if produces is not None and (isinstance(produces, str) or not all(isinstance(p, str) for p in produces)):
        return f"register({name!r}, produces=...) expects a list of names or patterns, got {produces!r}"
    return None


def _augmentation_problem(name: str, hook: str, shapes: object, tasks: object) -> str | None:
    """Shapes and tasks say what an augmentation can rewrite; ``engine validate`` checks them against the task file,
    so a wrong value must fail when the plugin loads, not pass as 'supports nothing'."""
    if (shapes is not None or tasks is not None) and hook != "augment":
        return "register(...): shapes and tasks describe augmentations; the augment hook takes them"
    if shapes is not None and not (_is_names(shapes) and shapes and set(shapes) <= set(SHAPES)):
        return (f"register({name!r}, shapes=...) expects a non-empty list of {', '.join(map(repr, SHAPES))}, "
                f"got {shapes!r}")
    if tasks is not None and not (_is_names(tasks) and tasks):
        return f"register({name!r}, tasks=...) expects a non-empty list of task names, got {tasks!r}"
    return None
