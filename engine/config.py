"""task.json: reading, overriding, validating against the core's sections and the plugins' option models.

Every problem is collected and reported together, each with its JSON path, what was expected and what came.
A component section (``task``, ``data``, ``head``, ...) is a name or an object whose ``name`` (``format`` for
``data``) picks the component and whose other keys are that component's options.
"""

from __future__ import annotations

import copy
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.errors import ConfigError, ConfigIssue, did_you_mean
from engine.registry import KINDS, Component, Registry

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(Section):
    """The pretrained encoder."""

    name: str = Field(DEFAULT_MODEL, description="A short name of a packaged model, a local directory, or a hub id.")
    max_length: int | None = Field(
        None, ge=8, le=8192, description="Longest input in tokens; default: the model's limit, at most 512."
    )
    revision: str | None = Field(None, description="Hub revision, for hub ids.")


# Accelerate's trackers (accelerate.tracking), each with the modules any one of which it can work with.
TRACKERS = {
    "tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",),
    "comet_ml": ("comet_ml",), "aim": ("aim",), "clearml": ("clearml",), "dvclive": ("dvclive",),
    "trackio": ("trackio",), "swanlab": ("swanlab",),
}


class TrainingConfig(Section):
    """The loop."""

    epochs: int = Field(3, ge=1, description="Passes over the training data.")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps, whatever the epochs (the schedule spans them)."
    )
    batch_size: int = Field(32, ge=1, description="Training rows per batch and process.")
    eval_batch_size: int | None = Field(None, ge=1, description="Default: twice batch_size.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Batches whose gradients add up to one optimizer step.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip the gradient norm; null to turn off.")
    seed: int = Field(13, description="Seeds the model's new weights, the batches, dropout and data splits.")
    eval_steps: int | None = Field(None, ge=1, description="Also evaluate every N optimizer steps.")
    monitor: str | None = Field(
        None, description="Metric that selects the best model, e.g. 'validation.accuracy'; default: the task's."
    )
    mode: Literal["auto", "max", "min"] = Field("auto", description="Whether the monitor improves up or down.")
    group_by_length: bool = Field(True, description="Batch examples of similar length together (less padding).")
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = Field(
        "auto", description="Autocast precision (Accelerate's); 'no' trains in fp32. 'auto': bf16 on a GPU that has "
        "it, else fp32. bf16 or fp16 on a CPU without native bf16 is refused: many times slower than fp32.")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch; default: torch's choice.")
    save_steps: int | None = Field(
        None, ge=1, description="Also checkpoint every N optimizer steps (for --resume); every epoch end always is."
    )
    save_minutes: float | None = Field(None, gt=0, description="Also checkpoint when this many minutes have passed.")
    save_total_limit: int = Field(1, ge=1, description="Checkpoints kept: the newest N.")
    find_unused_parameters: bool = Field(
        True, description="Several processes: let DDP skip parameters a step leaves unused (a pooler the head does "
        "not read, layers frozen this epoch). Off saves a little time where every trainable parameter is always used."
    )
    report_to: list[str] = Field(
        [], description="Experiment trackers to log to, through Accelerate: " + ", ".join(f"'{t}'" for t in TRACKERS)
        + ". Each logs the training loss, the learning rate, every evaluation and the resolved task file; "
        "TensorBoard's event files go to RUN_DIR/tensorboard/.")
    report: bool = Field(True, description="Write RUN_DIR/report/index.html (plots and tables) when the run ends.")

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, value: list[str]) -> list[str]:
        import importlib.util

        for name in value:
            if name not in TRACKERS:
                raise ValueError(f"unknown tracker {name!r}{did_you_mean(name, list(TRACKERS))}; expected one of: "
                                 + ", ".join(TRACKERS))
            if not any(importlib.util.find_spec(module) for module in TRACKERS[name]):
                raise ValueError(f"tracker {name!r} needs the {TRACKERS[name][0]} package, which is not installed "
                                 f"(pip install {TRACKERS[name][0]})")
        return list(dict.fromkeys(value))


#: Options that only LoRA and DoRA take (IA3 scales activations: no rank, no alpha, no dropout).
LORA_ONLY = ("r", "alpha", "dropout")


class AdapterConfig(Section):
    """Train a small adapter inside the encoder instead of the encoder itself (peft)."""

    name: Literal["lora", "dora", "ia3"] = Field(
        description="'lora' (low-rank updates), 'dora' (LoRA with weights split into magnitude and direction), "
        "'ia3' (learned scales of keys, values and feed-forward activations).")
    r: int = Field(8, ge=1, description="LoRA/DoRA: rank of the update matrices.")
    alpha: float = Field(16, gt=0, description="LoRA/DoRA: scale of the update (the update is multiplied by "
                                               "alpha / r).")
    dropout: float = Field(0.1, ge=0, lt=1, description="LoRA/DoRA: dropout on the adapter's input.")
    target_modules: list[str] | str | None = Field(
        None, description="Modules to adapt: names (or name suffixes) of linear layers, a regular expression, or "
        "'all-linear'. Default: peft's choice for the architecture (BERT: LoRA on query and value; IA3 on key, value "
        "and the feed-forward output), else every linear layer.")
    peft: dict[str, Any] = Field(
        {}, description="Further keyword arguments of peft's config class (LoraConfig, IA3Config), e.g. "
        "{\"use_rslora\": true}.")

    @model_validator(mode="after")
    def _options_of_the_method(self) -> AdapterConfig:
        if self.name == "ia3":
            given = [key for key in LORA_ONLY if key in self.model_fields_set]
            if given:
                raise ValueError(f"IA3 takes no {', '.join(given)} (those are LoRA's); remove them or use 'lora'")
        return self


class Distribution(Section):
    """One hyperparameter's range: exactly one of the keys."""

    loguniform: tuple[float, float] | None = Field(
        None, description="[low, high]: any value between, sampled on a log scale (learning rates).")
    uniform: tuple[float, float] | None = Field(None, description="[low, high]: any value between.")
    integer: tuple[int, int] | None = Field(None, alias="int",
                                            description="[low, high]: an integer between, both included.")
    choice: list[Any] | None = Field(None, min_length=1, description="[a, b, ...]: one of these JSON values.")

    @model_validator(mode="after")
    def _one_kind(self) -> Distribution:
        given = [key for key in DISTRIBUTIONS if self.value_of(key) is not None]
        if len(given) != 1:
            raise ValueError(f"expected exactly one of {', '.join(DISTRIBUTIONS)}, got {', '.join(given) or 'none'}")
        kind = given[0]
        if kind != "choice":
            low, high = self.value_of(kind)
            if not low < high:
                raise ValueError(f"{kind}: expected [low, high] with low < high, got [{low}, {high}]")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform: expected low > 0, got {low}")
        return self

    def value_of(self, kind: str) -> Any:
        return getattr(self, DISTRIBUTIONS[kind])

    @property
    def kind(self) -> str:
        """"loguniform", "uniform", "int" or "choice"."""
        return next(key for key in DISTRIBUTIONS if self.value_of(key) is not None)

    def candidates(self) -> list[Any]:
        """Values that stand for the whole range when the file is validated: the ends, or every choice."""
        return list(self.value_of(self.kind))


#: A distribution's key in the task file -> its field.
DISTRIBUTIONS = {"loguniform": "loguniform", "uniform": "uniform", "int": "integer", "choice": "choice"}


class SearchConfig(Section):
    """`engine tune`: a hyperparameter search (Optuna) over values of this task file."""

    space: dict[str, Distribution] = Field(
        min_length=1, description="Dotted task-file keys, as --set takes them (\"optimizer.lr\", "
        "\"training.batch_size\", \"freeze\"), each with its range.")
    trials: int = Field(20, ge=1, description="Trials to finish (completed or pruned), however many processes share "
                                              "the study.")
    sampler: Literal["tpe", "random"] = Field(
        "tpe", description="'tpe' (Optuna's default: models good and bad trials after the first few) or 'random'.")
    pruner: Literal["median", "none"] = Field(
        "median", description="'median' stops a trial whose monitored metric, at an evaluation, is worse than the "
        "median of earlier trials at the same point; 'none' runs every trial to the end.")
    startup_trials: int | None = Field(
        None, ge=0, description="Trials sampled at random, and never pruned, before TPE and the pruner take over; "
        "default: a quarter of trials, between 2 and 10.")
    storage: str | None = Field(
        None, description="Optuna storage URL (e.g. postgresql://... for several machines); default: "
        "sqlite:///OUTPUT_DIR/study.db. Processes that share it share the study.")
    study_name: str | None = Field(None, description="The study's name in the storage; default: output_dir's name.")
    seed: int | None = Field(None, description="Seeds the sampler; default: training.seed.")


class TaskFile(Section):
    """The shape of task.json before components are resolved."""

    task: Any
    model: ModelConfig = ModelConfig()
    data: Any
    augment: list[Any] = []
    head: Any = None
    freeze: Any = "none"
    adapter: AdapterConfig | None = None
    optimizer: Any = "adamw"
    scheduler: Any = "linear"
    training: TrainingConfig = TrainingConfig()
    metrics: list[Any] | None = None
    callbacks: list[Any] = []
    output_dir: str | None = None
    plugins: list[str] = []
    search: SearchConfig | None = None

    @field_validator("adapter", mode="before")
    @classmethod
    def _adapter_by_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


@dataclass
class Choice:
    """A resolved component section: the component and its validated options."""

    component: Component
    options: BaseModel | None
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return self.component.name

    def build(self, *args: Any, **kwargs: Any) -> Any:
        return self.component.build(self.options, *args, **kwargs)

    @property
    def filled(self) -> dict[str, Any]:
        """The section as written, with every option's default filled in (how task.json records it)."""
        if self.options is None:
            return dict(self.raw)
        defaults = self.options.model_dump(mode="json")
        return {**self.raw, **{k: v for k, v in defaults.items() if k not in self.raw}}


@dataclass
class ResolvedTask:
    """A validated task file: the core's sections, the chosen components, where it came from."""

    source: Path | None
    base_dir: Path
    raw: dict[str, Any]
    task: Choice
    task_object: Any
    model: ModelConfig
    data: Choice
    augment: list[Choice]
    head: Choice
    freeze: Choice
    optimizer: Choice
    scheduler: Choice
    training: TrainingConfig
    metrics: list[Choice]
    callbacks: list[Choice]
    output_dir: Path
    plugins: list[str] = field(default_factory=list)
    #: Whether each monitored value (``training.monitor``, callbacks' monitors) improves up ("max") or down ("min").
    directions: dict[str, str] = field(default_factory=dict)
    #: The ``adapter`` section (peft), or None: the encoder trains as the freezing strategy says.
    adapter: AdapterConfig | None = None
    #: The ``search`` section, for ``engine tune`` (``engine run`` trains the file as written and ignores it).
    search: SearchConfig | None = None
    #: The task file as written (with --set applied), before the task's defaults: what a search trial starts from.
    raw_as_written: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The task file as run: every default filled in, loadable by ``engine run`` again."""
        return {
            "task": self.task.filled,
            "model": self.model.model_dump(),
            "data": self.data.filled,
            "augment": [c.filled for c in self.augment],
            "head": self.head.filled,
            "freeze": self.freeze.filled,
            "adapter": self.adapter.model_dump() if self.adapter else None,
            "optimizer": self.optimizer.filled,
            "scheduler": self.scheduler.filled,
            "training": self.training.model_dump(),
            "metrics": [c.filled for c in self.metrics],
            "callbacks": [c.filled for c in self.callbacks],
            "output_dir": str(self.output_dir),
            "plugins": self.plugins,
            **({"search": self.search.model_dump(mode="json", by_alias=True, exclude_none=True)}
               if self.search else {}),
        }


# --- reading -----------------------------------------------------------------------------------------------------


def read_task_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue("", "task file not found")], path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue("", f"cannot read the task file: {exc}")], path) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        issue = ConfigIssue("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
        raise ConfigError([issue], path) from None
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue("", f"expected a JSON object at the top, got {type(raw).__name__}")], path)
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set a.b=value`` overrides; the value is JSON when it parses as JSON, else a string."""
    raw = copy.deepcopy(raw)
    issues = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            issues.append(ConfigIssue(key, f"--set expects KEY=VALUE such as training.epochs=1, got {item!r}"))
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        node: Any = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict):
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = {"name": node[part]} if isinstance(node.get(part), str) else {}
                node = node[part]
            else:
                issues.append(ConfigIssue(".".join(parts[: i + 1]), f"cannot set {key!r}: not an object"))
                break
        else:
            last = parts[-1]
            if isinstance(node, list) and last.isdigit() and int(last) < len(node):
                node[int(last)] = value
            elif isinstance(node, dict):
                node[last] = value
            else:
                issues.append(ConfigIssue(key, f"cannot set {key!r}: not an object"))
    if issues:
        raise ConfigError(issues)
    return raw


# --- validating --------------------------------------------------------------------------------------------------


def pydantic_issues(error: ValidationError, prefix: str, model: type[BaseModel] | None = None) -> list[ConfigIssue]:
    """Turn pydantic's errors into issues with JSON paths, the value that came, and 'did you mean'."""
    issues = []
    for err in error.errors():
        path = ".".join([prefix, *map(str, err["loc"])]).strip(".")
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            fields = _fields_at(model, err["loc"][:-1]) if model else []
            allowed = f"; allowed keys: {', '.join(fields)}" if fields else ""
            issues.append(ConfigIssue(path, f"unknown key{did_you_mean(key, fields)}{allowed}"))
            continue
        got = err.get("input")
        came = "" if err["type"] == "missing" else f"; got {json.dumps(got) if _jsonable(got) else repr(got)}"
        issues.append(ConfigIssue(path, f"{err['msg'][0].lower()}{err['msg'][1:]}{came}"))
    return issues


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _fields_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        if model is None:
            return []
        info = model.model_fields.get(str(part))
        annotation = getattr(info, "annotation", None)
        candidates = [annotation, *typing.get_args(annotation)]  # a section that may be null: `X | None`
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return list(model.model_fields) if model else []


def resolve_choice(
    registry: Registry, hook: str, value: Any, path: str, issues: list[ConfigIssue], key: str = "name",
    note: str = "",
) -> Choice | None:
    """Validate one component section: ``"name"`` or ``{"name": ..., **options}``."""
    if isinstance(value, str):
        value = {key: value}
    if not isinstance(value, dict):
        issues.append(ConfigIssue(path, f"expected a {KINDS[hook]} name or an object with {key!r}, "
                                        f"got {json.dumps(value)}"))
        return None
    name = value.get(key)
    if name is None:
        issues.append(ConfigIssue(f"{path}.{key}",
                                  f"missing: which {KINDS[hook]}? one of: {', '.join(registry.names(hook))}"))
        return None
    component = registry.find(hook, name) if isinstance(name, str) else None
    if component is None:
        issue = registry.unknown(hook, name, f"{path}.{key}")
        issues.append(ConfigIssue(issue.path, issue.message + note))
        return None
    options_raw = {k: v for k, v in value.items() if k != key}
    options = None
    if component.options is not None:
        try:
            options = component.options.model_validate(options_raw)
        except ValidationError as exc:
            issues.extend(pydantic_issues(exc, path, component.options))
            return None
    elif options_raw:
        issues.append(ConfigIssue(path, f"{KINDS[hook]} {name!r} takes no options, got {', '.join(options_raw)}"))
        return None
    return Choice(component, options, value)


def _merge(defaults: Any, user: Any) -> Any:
    """The user's value over a task's default; objects merge key by key when they name the same component."""
    if user is None:
        return copy.deepcopy(defaults)
    if isinstance(defaults, dict) and isinstance(user, dict):
        if "name" in defaults and "name" in user and defaults["name"] != user["name"]:
            return user
        merged = copy.deepcopy(defaults)
        merged.update(user)
        return merged
    if isinstance(defaults, dict) and isinstance(user, str) and defaults.get("name") == user:
        return copy.deepcopy(defaults)
    return user


def resolve(raw: dict[str, Any], registry: Registry, source: Path | None = None, base_dir: Path | None = None,
            failure_note: str = "") -> ResolvedTask:
    """Validate a task file (already read and overridden) against the core's sections and the components."""
    base_dir = base_dir or (source.parent if source else Path.cwd())
    issues: list[ConfigIssue] = []
    as_written = raw

    task_choice = (resolve_choice(registry, "task", raw.get("task"), "task", issues, note=failure_note)
                   if "task" in raw else None)
    if "task" not in raw:
        issues.append(ConfigIssue("task", f"missing: which task? one of: {', '.join(registry.names('task'))}"))
    task_object = task_choice.build() if task_choice else None

    # A task's defaults (a head, metrics, a learning rate that suits it) sit under what the user wrote.
    defaults: dict[str, Any] = dict(getattr(task_object, "defaults", {}) or {})
    raw = dict(raw)
    for key, value in defaults.items():
        user = raw.get(key)
        raw[key] = _merge(value, user if key in raw else None)

    # `--set head.dropout=0.2` on a task file that leaves the head to the task (or the optimizer to the core) makes
    # an object without a name: it names the default component.
    for key in ("head", "freeze", "optimizer", "scheduler"):
        fallback = defaults.get(key, TaskFile.model_fields[key].default)
        name = fallback.get("name") if isinstance(fallback, dict) else fallback
        if isinstance(raw.get(key), dict) and "name" not in raw[key] and isinstance(name, str):
            raw[key] = {"name": name, **raw[key]}

    try:
        shape: TaskFile | None = TaskFile.model_validate(raw)
    except ValidationError as exc:
        issues.extend(i for i in pydantic_issues(exc, "", TaskFile) if i.path != "task" or "task" in raw)
        shape = None

    def section(key: str) -> Any:
        # Components are checked even when the core's sections have problems, so every problem shows at once.
        if shape is not None:
            return getattr(shape, key)
        value = raw.get(key, TaskFile.model_fields[key].default)
        return value if not (key in ("augment", "callbacks", "metrics") and not isinstance(value, list)) else []

    if raw.get("data") is None:
        issues.append(ConfigIssue("data", "missing: where is the training data? e.g. {\"train\": \"train.tsv\"}"))
        data_choice = None
    else:
        data_raw = raw["data"]
        if isinstance(data_raw, dict) and "format" not in data_raw:
            data_raw = {**data_raw, "format": infer_format(data_raw, registry)}
        data_choice = resolve_choice(registry, "load_data", data_raw, "data", issues, key="format", note=failure_note)

    augment = [resolve_choice(registry, "augment", v, f"augment.{i}", issues, note=failure_note)
               for i, v in enumerate(section('augment'))]
    if getattr(task_object, "labels_per_word", False):
        for i, choice in enumerate(augment):
            if choice is not None:
                task_name = task_choice.name if task_choice else ""
                issues.append(ConfigIssue(f"augment.{i}", f"{choice.name!r} rewrites texts word by word, and the "
                                          f"{task_name} task has one tag per word: the tags would no longer match "
                                          "their words. Augmentations are not supported for it"))
    if section('head') is None:
        # A task whose own section is invalid was never built, so its default head is unknown, not missing.
        if task_object is not None:
            issues.append(ConfigIssue("head", "missing, and the task has no default head"))
        head = None
    else:
        head = resolve_choice(registry, "build_head", section('head'), "head", issues, note=failure_note)
    freeze = resolve_choice(registry, "freeze", section('freeze'), "freeze", issues, note=failure_note)
    optimizer = resolve_choice(registry, "optimizer", section('optimizer'), "optimizer", issues, note=failure_note)
    if optimizer is not None and raw.get("adapter") is not None:
        written = as_written.get("optimizer")
        if not (isinstance(written, dict) and "lr" in written):
            optimizer = adapter_learning_rate(optimizer, registry, issues)
    scheduler = resolve_choice(registry, "scheduler", section('scheduler'), "scheduler", issues, note=failure_note)
    metrics = [resolve_choice(registry, "metric", v, f"metrics.{i}", issues, note=failure_note)
               for i, v in enumerate(section('metrics') or [])]
    callbacks = [resolve_choice(registry, "callback", v, f"callbacks.{i}", issues, note=failure_note)
                 for i, v in enumerate(section('callbacks'))]

    # The history log is what makes a run inspectable afterwards: always on.
    if registry.find("callback", "history") and not any(c and c.name == "history" for c in callbacks):
        callbacks.append(resolve_choice(registry, "callback", "history", "callbacks", issues))
    directions: dict[str, str] = {}
    if shape is not None and task_object is not None and not issues:
        directions = check_monitors(shape.training, [c for c in callbacks if c], [c for c in metrics if c],
                                    task_object, data_choice, issues)

    streaming = data_choice is not None and getattr(data_choice.options, "streaming", False)
    if streaming and shape and not shape.training.max_steps:
        issues.append(ConfigIssue("training.max_steps", "missing: a streamed training split (data.streaming) has no "
                                  "known length, so the run needs a number of steps"))

    if shape is not None and shape.search is not None and not issues:
        issues.extend(check_search(shape.search, as_written, registry, source, base_dir))

    if issues:
        raise ConfigError(issues, source)
    assert shape and task_choice and data_choice and head and freeze and optimizer and scheduler
    output_dir = Path(shape.output_dir) if shape.output_dir else Path("runs") / (source.stem if source else "run")
    if not output_dir.is_absolute():
        output_dir = base_dir / output_dir
    return ResolvedTask(
        source=source, base_dir=base_dir, raw=raw, task=task_choice, task_object=task_object, model=shape.model,
        data=data_choice, augment=[c for c in augment if c], head=head, freeze=freeze, optimizer=optimizer,
        scheduler=scheduler, training=shape.training, metrics=[c for c in metrics if c],
        callbacks=[c for c in callbacks if c], output_dir=output_dir, plugins=shape.plugins, directions=directions,
        adapter=shape.adapter, search=shape.search, raw_as_written=as_written,
    )


#: An adapter starts from zero and learns at about ten times the encoder's rate (bench/lora.py: LoRA r 8 on SST-2
#: reached 0.565 accuracy at adamw's 1e-4 and 0.862 at 1e-3, where full fine-tuning reached 0.879 at 1e-4).
ADAPTER_LR = 1e-3


def adapter_learning_rate(optimizer: Choice, registry: Registry, issues: list[ConfigIssue]) -> Choice:
    """With an adapter, an optimizer whose learning rate the task file does not set (the optimizer's or the task's
    default) trains at ``ADAPTER_LR`` when that default is lower."""
    lr = getattr(optimizer.options, "lr", None)
    if not isinstance(lr, float) or lr >= ADAPTER_LR:
        return optimizer
    return resolve_choice(registry, "optimizer", {**optimizer.raw, "lr": ADAPTER_LR}, "optimizer", issues) or optimizer


def trial_task(raw: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The task file of one search trial: the search section gone, each parameter set as ``--set`` would."""
    base = {k: v for k, v in raw.items() if k != "search"}
    return apply_overrides(base, [f"{key}={json.dumps(value)}" for key, value in params.items()])


#: Keys a search may not vary: they say where the trials go and what code runs, not how a model trains.
NOT_SEARCHABLE = ("search", "output_dir", "plugins")


def check_search(search: SearchConfig, raw: dict[str, Any], registry: Registry, source: Path | None,
                 base_dir: Path) -> list[ConfigIssue]:
    """Each key of the search space, at each end of its range and with each of its choices, must make a valid task
    file: a search fails now, not at its seventh trial."""
    issues = []
    for key, distribution in search.space.items():
        path = f"search.space.{key}"
        if key.split(".")[0] in NOT_SEARCHABLE:
            issues.append(ConfigIssue(path, f"{key.split('.')[0]!r} cannot be searched; the space takes the "
                                      "settings of a run (e.g. optimizer.lr, training.batch_size, freeze)"))
            continue
        for value in distribution.candidates():
            try:
                resolve(trial_task(raw, {key: value}), registry, source, base_dir)
            except ConfigError as exc:
                issues.extend(ConfigIssue(path, f"with {json.dumps(value)}: {issue}") for issue in exc.issues)
                break
    return issues


def check_monitors(training: TrainingConfig, callbacks: list[Choice], metrics: list[Choice], task: Any,
                   data: Choice | None, issues: list[ConfigIssue]) -> dict[str, str]:
    """Every monitored value (``training.monitor``, or the task's default; a callback's ``monitor``) must be one the
    run computes after each evaluation, with a known direction. Returns each monitor's direction."""
    watched: list[tuple[str, str, str, str, bool]] = [
        ("training.monitor", training.monitor or task.monitor, "training.mode", training.mode,
         training.monitor is not None)]
    for i, choice in enumerate(callbacks):
        monitor = getattr(choice.options, "monitor", None)
        if isinstance(monitor, str):
            mode = getattr(choice.options, "mode", "auto")
            watched.append((f"callbacks.{i}.monitor", monitor, f"callbacks.{i}.mode", mode, True))
    has_validation = getattr(data.options, "validation", "") if data is not None else ""
    if data is not None and getattr(data.options, "validation_split", None):
        has_validation = "held out"
    directions: dict[str, str] = {}
    for path, monitor, mode_path, mode, chosen in watched:
        split, _, name = monitor.partition(".")
        if not name:
            issues.append(ConfigIssue(path, f"expected SPLIT.METRIC such as 'validation.accuracy', got {monitor!r}"))
            continue
        if split != "validation":
            issues.append(ConfigIssue(path, f"{monitor!r}: monitors are read after each evaluation of the validation "
                                      f"split; expected 'validation.{name}'"))
            continue
        if has_validation is None:  # a format with a `validation` key, left empty: nothing to monitor
            if chosen:
                issues.append(ConfigIssue(path, f"{monitor!r}, but data.validation is not set: there is no "
                                          "validation split to monitor"))
            continue
        producers = [m for m in metrics if m.component.produce(name)]
        if name != "loss" and not producers and all(m.component.produces is not None for m in metrics):
            computed = ["loss", *(p for m in metrics for p in m.component.produces or ())]
            default = "" if chosen else f"the task's default, {monitor!r}: "
            issues.append(ConfigIssue(path, f"{default}no metric computes {name!r}{did_you_mean(name, computed)}; "
                                      f"the metrics compute: {', '.join(computed)} "
                                      "(add a metric, or monitor one of these)"))
            continue
        direction = monitor_direction(monitor, mode, producers, task)
        if direction is None:
            issues.append(ConfigIssue(mode_path, f"cannot tell whether {monitor!r} improves up or down: no metric "
                                      "declares it (register(..., higher_is_better=...)); set \"max\" or \"min\""))
            continue
        directions[monitor] = direction
    return directions


def monitor_direction(monitor: str, mode: str, producers: list[Choice], task: Any) -> str | None:
    """The one rule for which way a monitored value improves: the task file's mode when set; else "min" for the loss;
    else what the metric computing it declared; else the task's own direction for its default monitor."""
    if mode != "auto":
        return mode
    if monitor.partition(".")[2] == "loss":
        return "min"
    for choice in producers:
        if choice.component.higher_is_better is not None:
            return "max" if choice.component.higher_is_better else "min"
    return getattr(task, "monitor_mode", None) if monitor == getattr(task, "monitor", None) else None


def infer_format(data: dict[str, Any], registry: Registry) -> str | None:
    """A data section without ``format`` gets the one its training file's extension names, when one does."""
    train = data.get("train")
    if not isinstance(train, str):
        return None
    suffix = Path(train).suffix.lstrip(".").lower()
    if suffix and registry.find("load_data", suffix):
        return suffix
    if Path(train).is_dir() or not suffix:
        return "datasets" if registry.find("load_data", "datasets") else None
    return None
