"""In-memory inputs as the split `engine predict` reads from a file (engine.inference.inputs): the standard columns
from texts, pairs, token lists, mappings and DataFrames, by the training data's column names; each input's position
as its line; no fingerprint, so nothing is cached."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from engine.errors import DataError
from engine.inference.inputs import is_one_input, split_of_inputs


def model(text=None, label=None, *, word_level=False, options=True):
    """What split_of_inputs reads of a loaded model: its data format's options and whether its task tags words."""
    values = {k: v for k, v in (("text", text), ("label", label)) if v is not None}
    data = SimpleNamespace(options=SimpleNamespace(**{"text": "text", "label": "label", **values})) if options else None
    return SimpleNamespace(data=data, task=SimpleNamespace(labels_per_word=word_level))


def rows(loaded, inputs, **kwargs):
    return list(split_of_inputs(loaded, inputs, **kwargs).rows)


def test_texts_become_rows_numbered_from_one():
    assert rows(model(), "a text") == [{"text": "a text", "_line": 1}]
    assert rows(model(), ["one", "two"]) == [{"text": "one", "_line": 1}, {"text": "two", "_line": 2}]
    assert rows(model(), (t for t in ["from", "a generator"]))[1] == {"text": "a generator", "_line": 2}
    assert split_of_inputs(model(), ["x"]).fingerprint is None


def test_pairs_are_tuples_or_two_element_lists_for_a_model_trained_on_pairs():
    pairs = model(["premise", "hypothesis"])
    assert rows(pairs, ("a", "b")) == [{"text": "a", "text_pair": "b", "_line": 1}]
    assert rows(pairs, [("a", "b"), ["c", "d"]])[1] == {"text": "c", "text_pair": "d", "_line": 2}
    assert rows(pairs, [{"premise": "a", "hypothesis": "b"}]) == [{"text": "a", "text_pair": "b", "_line": 1}]
    with pytest.raises(DataError, match="inputs, line 2: this model reads pairs of texts"):
        rows(pairs, [("a", "b"), "c"])
    with pytest.raises(DataError, match="inputs, line 1: missing text column 'hypothesis'"):
        rows(pairs, [{"premise": "a"}])


def test_token_lists_are_sentences_for_a_task_that_tags_words():
    tagger = model("tokens", "tags", word_level=True)
    assert rows(tagger, [["paul", "is", "in", "berlin"], "a plain text"]) == [
        {"text": ["paul", "is", "in", "berlin"], "_line": 1}, {"text": "a plain text", "_line": 2}]
    assert rows(tagger, ["two", "texts"]) == [{"text": "two", "_line": 1}, {"text": "texts", "_line": 2}]
    assert rows(tagger, [{"tokens": ["a", "b"], "tags": ["O", "O"]}], labelled=True) == [
        {"text": ["a", "b"], "label": ["O", "O"], "_line": 1}]
    with pytest.raises(DataError, match="inputs, line 1: empty text"):
        rows(tagger, [[]])


def test_mappings_and_dataframes_are_read_by_the_training_columns_or_the_standard_names():
    regression = model("sentence", ["x", "y"])
    table = pd.DataFrame({"sentence": ["a", "b"], "x": [1.5, 2.0], "y": [3, 4], "other": [0, 0]})
    assert rows(regression, table, labelled=True) == [
        {"text": "a", "label": [1.5, 3], "_line": 1}, {"text": "b", "label": [2.0, 4], "_line": 2}]
    assert isinstance(rows(regression, table, labelled=True)[0]["label"][1], int)  # numpy's, made plain
    assert rows(regression, {"text": "standard names"}) == [{"text": "standard names", "_line": 1}]
    with pytest.raises(DataError, match="inputs, line 2: missing label in column 'y'"):
        rows(regression, pd.DataFrame({"sentence": ["a", "b"], "x": [1.0, 2.0], "y": [3.0, None]}), labelled=True)
    with pytest.raises(DataError, match="inputs: no column 'x'; the columns are: 'sentence'"):
        rows(regression, pd.DataFrame({"sentence": ["a"]}), labelled=True)
    assert rows(regression, pd.DataFrame({"sentence": ["a"]})) == [{"text": "a", "_line": 1}]
    assert rows(regression, table.iloc[1]) == [{"text": "b", "_line": 1}]  # a row, not its values as texts


def test_without_the_training_formats_options_both_texts_and_pairs_are_taken():
    unknown = model(options=False)
    assert rows(unknown, [("a", "b"), {"text": "c", "text_pair": "d"}]) == [
        {"text": "a", "text_pair": "b", "_line": 1}, {"text": "c", "text_pair": "d", "_line": 2}]


def test_one_input_is_a_text_a_pair_or_a_mapping():
    assert all(is_one_input(x) for x in ("a", ("a", "b"), {"text": "a"}, pd.Series({"text": "a"})))
    assert not any(is_one_input(x) for x in (["a"], pd.DataFrame({"text": ["a"]})))


@pytest.mark.parametrize(("inputs", "message"), [
    ([b"bytes"], "inputs, line 1: expected a text, a (text, text_pair) tuple or a mapping of columns; got bytes"),
    ([None], "inputs, line 1: expected a text"),
    (["   "], "inputs, line 1: empty text"),
    ([{"text": float("nan")}], "inputs, line 1: missing text column 'text'"),
])
def test_what_does_not_fit_is_named_by_its_position(inputs, message):
    with pytest.raises(DataError) as info:
        rows(model(), inputs)
    assert message in str(info.value)
