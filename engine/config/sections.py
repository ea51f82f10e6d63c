"""The task file's sections that the core defines (model, training, adapter, search) and the task file's shape;
the components' sections (task, data, head, ...) are validated by the options models their plugins declare."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.errors import did_you_mean

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class ConfigSection(BaseModel):
    """A task-file section the core defines: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ModelConfig(ConfigSection):
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


class TrainingConfig(ConfigSection):
    """The loop."""

    epochs: int = Field(3, ge=1, description="Passes over the training data.")
    min_steps: int = Field(
        300, ge=0, description="Train at least this many optimizer steps: a small training set gets more (whole) "
        "epochs (500 rows at batch 32: 19 epochs, not 3). Applies where the task file sets neither epochs nor "
        "max_steps, or sets min_steps itself; not to a streamed split. 0 turns it off. From the defaults study "
        "(docs/benchmarks.md).")
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

    @model_validator(mode="after")
    def _floor_by_default_only(self) -> TrainingConfig:
        # An epoch count the user wrote is kept: the floor is the default's, unless min_steps is written too. The
        # resolved task file then records 0, so a resumed or reloaded run plans the same steps.
        if self.model_fields_set & {"epochs", "max_steps"} and "min_steps" not in self.model_fields_set:
            self.min_steps = 0
        return self

    def planned_epochs(self, steps_per_epoch: int) -> int:
        """Epochs a run of ``steps_per_epoch`` optimizer steps per epoch takes (max_steps aside): ``epochs``, or
        enough whole epochs to reach ``min_steps``."""
        return max(self.epochs, math.ceil(self.min_steps / steps_per_epoch)) if steps_per_epoch else self.epochs

    def effective_monitor(self, task: Any) -> str:
        """The value that picks the best model: ``monitor``, else the task's own (e.g. 'validation.accuracy')."""
        return self.monitor or task.monitor

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


class AdapterConfig(ConfigSection):
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


class Distribution(ConfigSection):
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


class SearchConfig(ConfigSection):
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


#: The sections of task.json that name components, in the order a task file reads: (hook, section, the key that
#: names the component).
COMPONENT_SECTIONS = [("task", "task", "name"), ("load_data", "data", "format"), ("augment", "augment", "name"),
                      ("build_head", "head", "name"), ("freeze", "freeze", "name"), ("optimizer", "optimizer", "name"),
                      ("scheduler", "scheduler", "name"), ("metric", "metrics", "name"),
                      ("callback", "callbacks", "name")]
#: The component sections that hold a list of components.
LIST_SECTIONS = ("augment", "metrics", "callbacks")


class TaskFile(ConfigSection):
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
