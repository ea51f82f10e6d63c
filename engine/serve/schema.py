"""The HTTP API's shapes: what ``POST /predict`` takes and gives (text-embeddings-inference's ``/predict``, plus the
records of tasks without scores), ``/info``, and the one error body, ``{"error": ..., "error_type": ...}``, each
error with the status code users expect."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Input = str | list[str] | dict[str, str | list[str]]


class PredictRequest(BaseModel):
    """``POST /predict``'s body."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"inputs": "I loved this film"}, {"inputs": ["I loved this film", "Not for me"], "top_k": 1},
    ]})

    inputs: str | list[Input] = Field(
        description="One text; a pair of texts as [text, text_pair] when the model reads pairs; or a list of "
        "inputs, each a text, a [text] or [text, text_pair] list, a list of tokens (for a model that tags words), or "
        "an object with the training data's columns.")
    top_k: int | None = Field(None, ge=1, description="Only the k best scored labels of each input.")
    raw_scores: bool = Field(False, description="The head's raw outputs (logits) instead of the task's scores; "
                             "with records, added to each record as raw_scores.")
    truncate: bool = Field(True, description="Cut inputs longer than the model's max_length (as engine predict "
                           "does); false: such an input is an error (422).")
    records: bool = Field(False, description="The records engine predict writes (label, rank, entities...) "
                          "instead of the sorted list of labels and scores.")


class Score(BaseModel):
    """One label and its score, in text-embeddings-inference's shape."""

    label: str
    score: float


#: Per input: its labels and scores, best first, for a model whose predictions carry scores; else the record
#: `engine predict` writes. One input gives one of these, a list of inputs a list of them.
Prediction = list[Score] | dict[str, Any]
PredictResponse = Prediction | list[Prediction]


class ErrorBody(BaseModel):
    """Every error: what went wrong, and its kind."""

    error: str
    error_type: str = Field(description="validation (422), empty (400), payload_too_large (413), overloaded "
                            "(429), unavailable (503: loading or draining), backend (500), not_found (404), "
                            "method_not_allowed (405)")


class Info(BaseModel):
    """``GET /info``."""

    task: str
    name: str | None = Field(None, description="The task's name in a multi-task model (engine serve --task NAME); "
                             "null for a one-task model")
    labels: list[str] | None = Field(description="The names of the head's outputs: labels, tags or targets.")
    level: str = Field(description="sequence: one output per input; token: one per token")
    form: str = Field(description="scores: /predict gives each input's labels and scores, best first; record: the "
                      "records engine predict writes")
    reads_pairs: bool | None
    model: str | None
    max_length: int
    engine_version: str
    metrics: dict[str, Any] = Field(description="The run's metrics.json; of a multi-task model, the served task's")
    plugins: dict[str, str]
    settings: dict[str, Any]


class ServeError(Exception):
    """A request answered with an error: its status code, message and kind (``ErrorBody``)."""

    def __init__(self, status: int, message: str, error_type: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.error_type, self.headers = status, message, error_type, headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.message, "error_type": self.error_type}


def invalid(message: str) -> ServeError:
    return ServeError(422, message, "validation")


def empty(message: str) -> ServeError:
    return ServeError(400, message, "empty")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": what} for code, what in (
        (400, "An empty input"), (413, "A body over --max-payload, or more inputs than --max-client-batch"),
        (422, "Wrong types, unknown fields, an input the model cannot read, or one too long with truncate: false"),
        (429, "The queue is full: retry after Retry-After seconds"), (500, "The model failed on this request"),
        (503, "The model is loading, or the server is draining"),
    )
}


def normalize(inputs: str | list[Any], *, pairs: bool | None, word_level: bool, max_client_batch: int
              ) -> tuple[list[Any], bool]:
    """The request's inputs as ``engine.load(...).predict`` takes them (texts, ``(text, text_pair)`` tuples, token
    lists, mappings), and whether it was one input. As in text-embeddings-inference, ``[text, text_pair]`` is one
    pair, and ``[text]`` inside a list one text; a list of two texts is one pair only for a model that reads pairs.
    """
    if isinstance(inputs, str):
        _check_text(inputs, "inputs")
        return [inputs], True
    if not inputs:
        raise empty("inputs: an empty list; give at least one text")
    if pairs and len(inputs) == 2 and all(isinstance(item, str) for item in inputs):
        _check_text(inputs[0], "inputs[0]")
        _check_text(inputs[1], "inputs[1]")
        return [(inputs[0], inputs[1])], True
    if len(inputs) > max_client_batch:
        raise ServeError(413, f"inputs: {len(inputs)} inputs in one request, more than --max-client-batch="
                         f"{max_client_batch}; send them in several requests", "payload_too_large")
    return [_item(item, f"inputs[{i}]", word_level) for i, item in enumerate(inputs)], False


def _item(item: Any, where: str, word_level: bool) -> Any:
    if isinstance(item, str):
        _check_text(item, where)
        return item
    if isinstance(item, dict):
        for key, value in item.items():
            if isinstance(value, str):
                _check_text(value, f"{where}.{key}")
            elif not value:
                raise empty(f"{where}.{key}: an empty list")
        return item
    if not item:
        raise empty(f"{where}: an empty list")
    for i, text in enumerate(item):
        _check_text(text, f"{where}[{i}]")
    if word_level:
        return item
    if len(item) == 1:
        return item[0]
    if len(item) == 2:
        return (item[0], item[1])
    raise invalid(f"{where}: a list of {len(item)} texts; expected a text, [text] or [text, text_pair]")


def _check_text(text: str, where: str) -> None:
    if not text.strip():
        raise empty(f"{where}: an empty text")
