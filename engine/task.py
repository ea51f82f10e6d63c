"""What a task is to the engine. The core knows this contract and no task behind it.

A task plugin subclasses ``Task`` and implements what is its own: how rows become features (``encode_batch``),
how features become a batch (``collate``), what the head must produce (``head_spec``), and how head outputs become
predictions (``outputs``, ``predictions``, ``references``). The rest has defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from engine.data.split import Split
    from engine.head import HeadOutput, HeadSpec
    from engine.report.document import Report


@dataclass(frozen=True)
class PublishedScore:
    """A model's published score on a public benchmark, printed beside a run's own when its task file names the
    benchmark (``data.benchmark``): the answer to "is this good?". ``value`` is on the run metric's scale (0.935,
    not 93.5); ``layers`` and ``hidden_size`` give the model's size, so that the nearest size comes first."""

    benchmark: str
    metric: str
    value: float
    model: str
    split: str
    source: str
    layers: int | None = None
    hidden_size: int | None = None


class Task:
    """A task type, built by a ``task`` hook's factory from its options.

    Construction must be cheap (``engine validate`` builds one to read ``defaults``); import torch inside methods.
    A task is sent to the processes that tokenize, so it must pickle (plain attributes do).
    """

    #: Defaults for other task-file sections, under what the user wrote: e.g. ``{"head": "linear",
    #: "metrics": ["accuracy"], "training": {"batch_size": 16}, "optimizer": {"name": "adamw", "lr": 1e-4}}``.
    defaults: dict[str, Any] = {}  # noqa: RUF012 - never mutated here; tasks assign their own
    #: Metric that picks the best model when ``training.monitor`` is not set, e.g. ``"validation.accuracy"``.
    monitor: str = "validation.loss"
    #: ``"max"`` or ``"min"``: the direction in which ``monitor`` improves.
    monitor_mode: str = "min"
    #: True when a row's ``label`` has one tag per word of its ``text`` (tagging): the rows have the ``tokens``
    #: shape, and augmentations that do not declare it (``register(..., shapes=[..., "tokens"])``: they keep the
    #: tags aligned) are refused when the task file is validated.
    labels_per_word: bool = False
    #: Names of the numbers a task predicts (one list of floats per row), as a list: the built-in regression
    #: metrics (``pearson``, ``mse``...) score any task that sets it, per target when there are several.
    targets: list[str] | None = None
    #: The tags of a task that predicts BIO tag sequences (``{"tags": [...]}`` per row), as a list: the built-in
    #: ``entity_*`` and ``token_accuracy`` metrics score any task that sets it.
    tag_names: list[str] | None = None
    #: What ``baseline`` predicts, for the metrics table ("the most frequent label in the training data").
    baseline_name: str = ""
    #: Published scores on public benchmarks (``PublishedScore``), printed beside a run's scores when its task file
    #: names one of their benchmarks in ``data.benchmark``.
    published_scores: tuple[PublishedScore, ...] = ()

    # --- data ----------------------------------------------------------------------------------------------------

    def fit(self, train: Split) -> None:
        """Learn what the task needs from the training rows (the label set, target statistics); check them.

        A streamed training split (``data.streaming``) holds its first ``data.fit_rows`` rows here."""

    def check(self, split: Split) -> None:
        """Check a labelled split against what ``fit`` learned (unknown labels, bad targets); raise DataError."""

    def encode_batch(self, rows: dict[str, list[Any]], tokenizer: Any, max_length: int,
                     labelled: bool = True) -> dict[str, list[Any]]:
        """Tokenize a batch of rows into features, column by column.

        ``rows`` maps each column (``text``, ``text_pair``, ``label``...) to its values, and always has ``_line``
        (``engine.LINE``; None where the source has no lines). Return columns
        of equal length, one value per feature: the model inputs (``input_ids``, ``attention_mask``...), what
        ``collate`` needs (``labels`` when ``labelled``), and optionally ``length`` (default: of ``input_ids``)
        and ``row``. A row may give several features or none: then ``row`` says, for each feature, the position of
        its row in this batch. Raise ``DataError(message, line=rows["_line"][i])``: the engine adds the file.

        Called by the engine on batches of about a thousand rows, in several processes at once, and cached."""
        raise NotImplementedError(f"{type(self).__name__} does not implement encode_batch")

    def collate(self, features: list[dict[str, Any]], tokenizer: Any) -> dict[str, torch.Tensor]:
        """Pad a list of features into a batch of tensors (dynamic padding)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement collate")

    # --- model ---------------------------------------------------------------------------------------------------

    def head_spec(self, hidden_size: int) -> HeadSpec:
        """What the head must produce."""
        raise NotImplementedError(f"{type(self).__name__} does not implement head_spec")

    # --- outputs -------------------------------------------------------------------------------------------------

    def outputs(self, batch: dict[str, torch.Tensor], output: HeadOutput) -> list[Any]:
        """One plain (picklable, CPU) value per feature of the batch, in batch order."""
        raise NotImplementedError(f"{type(self).__name__} does not implement outputs")

    def predictions(self, split: Split, features: Any, outputs: list[Any]) -> list[Any]:
        """One prediction per row of ``split``, from the outputs of its features (windows merge here).

        ``features`` is a sequence of dicts (what ``encode_batch`` returned, with ``row`` as the row's index in
        the split); ``outputs[i]`` belongs to ``features[i]``. Iterate it, or read a column: ``features["row"]``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement predictions")

    def references(self, split: Split) -> list[Any]:
        """One reference per row of ``split``, comparable with ``predictions``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement references")

    def format_prediction(self, row: dict[str, Any], prediction: Any) -> dict[str, Any]:
        """The JSON object ``engine predict`` writes for one row: by default its texts and the prediction."""
        return {**{k: row[k] for k in ("text", "text_pair") if k in row}, "prediction": prediction}

    def baseline(self, train: Split, split: Split) -> list[Any] | None:
        """The score to beat: for each row of ``split``, what a model that ignores the text predicts from
        ``train`` alone (the most frequent label, the mean value, no entity), as ``predictions`` returns them. The
        run scores them with its metrics and prints them beside its own (``baseline`` in manifest.json). ``train``
        is the training split (its first ``data.fit_rows`` rows when it is streamed). Default: None (no
        baseline)."""
        return None

    # --- the run report ------------------------------------------------------------------------------------------

    def report(self, report: Report, split: str, predictions: list[Any], references: list[Any]) -> None:
        """Add this task's sections to the run report (RUN_DIR/report/index.html), once per scored split.

        ``split`` names the split for titles (``"validation (the best model's predictions, 872 rows)"``);
        ``predictions`` and ``references`` are what ``predictions`` and ``references`` returned, one per row, as
        read back from RUN_DIR/predictions/ (JSON: tuples come back as lists). Add with
        ``report.section(title)``, then ``.text(paragraph)``, ``.table(header, rows)``, ``.svg(name, caption,
        markup)`` (a whole ``<svg>`` document, such as ``engine.report.charts`` draws) and ``.figure(name,
        caption)`` (a matplotlib figure to draw on, saved as PNG). Called on a task built from the run's options
        (and ``load_state_dict`` when the model was saved), never fitted again: read what you need from the
        predictions. Default: no sections."""

    # --- saving --------------------------------------------------------------------------------------------------

    def hf_config(self) -> dict[str, Any]:
        """Keys for the saved model's ``config.json`` (``id2label``, ``problem_type``...), or ``{}``."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What ``fit`` learned, as JSON, saved with the model."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
