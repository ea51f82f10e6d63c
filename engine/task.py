"""What a task is to the engine. The core knows this protocol and no task behind it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from engine.data import Split
    from engine.head import HeadOutput, HeadSpec


@runtime_checkable
class Task(Protocol):
    """A task type, built by a ``task`` hook's factory from its options.

    Construction must be cheap (``engine validate`` builds one to read ``defaults``); import torch inside methods.
    """

    #: Defaults for other task-file sections, under what the user wrote: e.g. ``{"head": "linear",
    #: "metrics": ["accuracy"], "training": {"batch_size": 16}, "optimizer": {"name": "adamw", "lr": 1e-4}}``.
    defaults: dict[str, Any]
    #: Metric that picks the best model when ``training.monitor`` is not set, e.g. ``"validation.accuracy"``.
    monitor: str
    #: ``"max"`` or ``"min"``: the direction in which ``monitor`` improves.
    monitor_mode: str

    def fit(self, train: Split) -> None:
        """Learn what the task needs from the training rows (the label set, target statistics); check them."""

    def check(self, split: Split) -> None:
        """Check a labelled split against what ``fit`` learned (unknown labels, bad targets); raise DataError."""

    def encode(self, split: Split, tokenizer: Any, max_length: int, labelled: bool = True) -> list[dict[str, Any]]:
        """Tokenize rows into features. Each feature has ``"row"`` (its row's index) and ``"length"``."""

    def collate(self, features: list[dict[str, Any]], tokenizer: Any) -> dict[str, torch.Tensor]:
        """Pad a list of features into a batch of tensors (dynamic padding)."""

    def head_spec(self, hidden_size: int) -> HeadSpec:
        """What the head must produce."""

    def outputs(self, batch: dict[str, torch.Tensor], output: HeadOutput) -> list[Any]:
        """One plain (picklable, CPU) value per feature of the batch, in batch order."""

    def predictions(self, split: Split, features: list[dict[str, Any]], outputs: list[Any]) -> list[Any]:
        """One prediction per row of ``split``, from the outputs of its features (windows merge here)."""

    def references(self, split: Split) -> list[Any]:
        """One reference per row of ``split``, comparable with ``predictions``."""

    def format_prediction(self, row: dict[str, Any], prediction: Any) -> dict[str, Any]:
        """The JSON object ``engine predict`` writes for one row."""

    def hf_config(self) -> dict[str, Any]:
        """Keys for the saved model's ``config.json`` (``id2label``, ``problem_type``...), or ``{}``."""

    def state_dict(self) -> dict[str, Any]:
        """What ``fit`` learned, as JSON, saved with the model."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
