"""``engine.load(...).predict(...)`` gives the records `engine predict` writes, and ``.evaluate(...)`` the metrics
`engine evaluate` gives, for classification, tagging with a CRF, regression on pairs and the example plugin's
ordinal task: the same labels and tags, scores within 1e-5, whatever else is in the batch; from texts, pairs,
token lists, mappings, DataFrames and files."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import engine
from engine import console

TOLERANCE = 1e-5
RUNS = ["classification_run", "tagging_run", "regression_run", "ordinal_run"]
LONG = " ".join(["the good film was very long and"] * 12)  # a row much longer than the others: padding everywhere


def same(ours: Any, theirs: Any, where: str = "") -> None:
    """Equal records: the same keys, strings and lists; numbers within TOLERANCE."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and set(ours) == set(theirs), f"{where}: {ours} != {theirs}"
        for key in theirs:
            same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), f"{where}: {ours} != {theirs}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            same(a, b, f"{where}[{i}]")
    elif isinstance(theirs, float) and not isinstance(ours, bool):
        assert math.isclose(ours, theirs, abs_tol=TOLERANCE), f"{where}: {ours} != {theirs}"
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


def cli_predict(run_engine, run_dir: Path, file: Path, *flags: str) -> list[dict]:
    result = run_engine("predict", run_dir, "--input", file, *flags)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def cli_evaluate(run_engine, run_dir: Path, file: Path) -> dict[str, float]:
    out = file.parent / "cli-metrics.json"
    result = run_engine("evaluate", run_dir, "--data", file, "--output", out)
    assert result.exit_code == 0, result.stderr
    return json.loads(out.read_text())


def conll_sentences(path: Path) -> list[tuple[list[str], list[str]]]:
    blocks = [block for block in path.read_text().split("\n\n") if block.strip()]
    return [tuple(map(list, zip(*(line.split("\t") for line in block.splitlines())))) for block in blocks]


def inputs_and_file(name: str, folder: Path) -> tuple[list[Any], Path]:
    """Each run's validation rows as the Python API takes them, and as a file `engine predict` reads."""
    if name == "tagging_run":
        sentences = [tokens for tokens, _ in conll_sentences(folder / "dev.conll")]
        file = folder / "dev-tokens.jsonl"
        file.write_text("".join(json.dumps({"tokens": tokens}) + "\n" for tokens in sentences))
        return sentences, file
    table = pd.read_csv(folder / "dev.tsv", sep="\t", dtype=str)
    if name == "regression_run":
        return list(zip(table["sentence1"], table["sentence2"])), folder / "dev.tsv"
    return list(table["sentence" if name == "classification_run" else "text"]), folder / "dev.tsv"


def alone(predictor: engine.Predictor, item: Any) -> dict:
    """One input predicted on its own: a text or a pair gives one record; a token list goes in a list of one."""
    return predictor.predict(item) if isinstance(item, (str, tuple)) else predictor.predict([item])[0]


@pytest.mark.parametrize("run", RUNS)
def test_predict_gives_the_records_of_engine_predict_whatever_else_is_in_the_batch(run, request, run_engine):
    trained = request.getfixturevalue(run)
    inputs, file = inputs_and_file(run, trained.folder)
    expected = cli_predict(run_engine, trained.run_dir, file)
    predictor = engine.load(trained.run_dir)
    same(predictor.predict(inputs), expected, "batch")
    same([alone(predictor, item) for item in inputs[:5]], expected[:5], "alone")
    same(predictor.predict(list(reversed(inputs)), batch_size=3)[::-1], expected, "reversed, batches of 3")
    long = [LONG.split()] if run == "tagging_run" else [(LONG, LONG)] if run == "regression_run" else [LONG]
    same(predictor.predict(long + inputs)[1:], expected, "beside a long row")
    same(predictor.predict(file), expected, "the file")


@pytest.mark.parametrize("run", RUNS)
def test_evaluate_gives_the_metrics_of_engine_evaluate(run, request, run_engine):
    trained = request.getfixturevalue(run)
    file = trained.folder / ("dev.conll" if run == "tagging_run" else "dev.tsv")
    expected = cli_evaluate(run_engine, trained.run_dir, file)
    predictor = engine.load(trained.run_dir)
    same(predictor.evaluate(file), expected, "the file")
    if run == "tagging_run":  # the columns a JSONL file of the training format would have: tokens, tags
        rows = [{"tokens": tokens, "tags": tags} for tokens, tags in conll_sentences(file)]
        same(predictor.evaluate(rows), expected, "mappings")
    else:
        same(predictor.evaluate(pd.read_csv(file, sep="\t")), expected, "a DataFrame")


def test_a_dataframe_with_the_training_columns_predicts_as_the_file_does(classification_run, regression_run,
                                                                         run_engine):
    for trained in (classification_run, regression_run):
        file = trained.folder / "dev.tsv"
        table = pd.read_csv(file, sep="\t")
        expected = cli_predict(run_engine, trained.run_dir, file)
        predictor = engine.load(trained.run_dir)
        same(predictor.predict(table), expected, "DataFrame")
        same(predictor.predict(table.drop(columns=table.columns[-1])), expected, "without its labels")
        same(predictor.predict(table.to_dict("records")), expected, "records")
        same(predictor.predict(table.to_dict("records")[0]), expected[0], "one mapping")


def test_tagging_takes_texts_and_gives_entities_with_character_offsets(tagging_run, run_engine):
    texts = ["john lives in  new york", "mary was in paris", "the film"]
    file = tagging_run.folder / "texts.txt"
    file.write_text("\n".join(texts) + "\n")
    expected = cli_predict(run_engine, tagging_run.run_dir, file)
    predictor = engine.load(tagging_run.run_dir)
    same(predictor.predict(texts), expected)
    record = predictor.predict(texts[0])
    same(record, expected[0])
    assert record["tokens"] == ["john", "lives", "in", "new", "york"]
    for entity in record["entities"]:
        assert texts[0][entity["start_char"]:entity["end_char"]] == entity["text"]
    assert predictor.predict([["new", "york"], "new york"])[0]["text"] == "new york"


def test_int8_predictions_are_those_of_engine_predict_quantize_int8(classification_run, run_engine):
    file = classification_run.folder / "dev.tsv"
    expected = cli_predict(run_engine, classification_run.run_dir, file, "--quantize", "int8")
    predictor = engine.load(classification_run.run_dir, quantize="int8")
    same(predictor.predict(list(pd.read_csv(file, sep="\t")["sentence"])), expected)
    with pytest.raises(engine.EngineError, match="quantize: expected None or 'int8', got 'int4'"):
        engine.load(classification_run.run_dir, quantize="int4")


def test_predicting_reads_no_model_again_and_writes_nothing_to_the_data_cache(classification_run, monkeypatch):
    predictor = engine.load(classification_run.run_dir)

    def refuse(*args, **kwargs):
        raise AssertionError("loaded or placed the model again")

    monkeypatch.setattr("engine.api.predictor.load_model", refuse)
    monkeypatch.setattr("engine.inference.loop.place_model", refuse)
    monkeypatch.setattr("engine.model.saved.load_backbone", refuse)
    cache = Path(os.environ["ENGINE_CACHE"])
    before = sorted(cache.rglob("*"))
    predictor.predict("the film was great")
    predictor.predict(["a", "b b", "c c c"] * 30)
    predictor.predict(pd.DataFrame({"sentence": ["good film", "bad food"]}))
    predictor.evaluate([{"sentence": "good film", "label": "good"}])
    assert sorted(cache.rglob("*")) == before


def test_predict_prints_nothing_unless_verbose(classification_run, capsys):
    quiet = engine.load(classification_run.run_dir)
    capsys.readouterr()
    quiet.predict(["the film was great"] * 3)
    assert capsys.readouterr().err == ""
    assert console.console.quiet is False  # as it was before the call
    engine.load(classification_run.run_dir, verbose=True).predict(["the film was great"] * 3)
    assert "3 rows tokenized" in capsys.readouterr().err


@pytest.mark.parametrize(("inputs", "message"), [
    (3, "expected a text, a (text, text_pair) tuple, a mapping of columns, a list of these or a pandas DataFrame; got "
        "int"),
    ([], "no inputs: give at least one text"),
    (["good", ""], "inputs, line 2: empty text"),
    ([("a pair", "of texts")], "inputs, line 1: this model reads one text at a time, not pairs"),
    ([{"text_a": "x"}], "inputs, line 1: missing text column 'sentence'; the input has: 'text_a'"),
    ([["three", "token", "list"]], "inputs, line 1: expected a text, a (text, text_pair) tuple or a mapping of "
                                   "columns; got list ['three', 'token', 'list']"),
    (pd.DataFrame({"sentense": ["x"]}), "inputs: no column 'sentence' (did you mean 'sentense'?); the columns are: "
                                        "'sentense'"),
    (Path("no-such-file.tsv"), "no such file"),
])
def test_bad_inputs_are_engine_errors_that_say_what_is_wrong(classification_run, inputs, message):
    predictor = engine.load(classification_run.run_dir)
    with pytest.raises(engine.EngineError) as info:
        predictor.predict(inputs)
    assert message in str(info.value)


def test_bad_inputs_for_pairs_and_scoring_say_what_is_expected(regression_run):
    predictor = engine.load(regression_run.run_dir)
    with pytest.raises(engine.DataError, match=r"inputs, line 1: this model reads pairs of texts \(trained on the "
                       r"columns 'sentence1' and 'sentence2'\): give \(text, text_pair\) tuples"):
        predictor.predict("one text")
    with pytest.raises(engine.DataError, match="inputs, line 2: missing label in column 'score'"):
        predictor.evaluate([{"sentence1": "a", "sentence2": "b", "score": 1.0}, {"sentence1": "a", "sentence2": "b"}])
    with pytest.raises(engine.DataError, match="inputs, line 1: to score, each input needs its label"):
        predictor.evaluate([("a", "b")])
    with pytest.raises(engine.DataError, match="inputs, line 1: target is not a number: 'high'"):
        predictor.evaluate([{"sentence1": "a", "sentence2": "b", "score": "high"}])


def test_a_model_folder_that_is_not_one_is_an_engine_error(tmp_path):
    with pytest.raises(engine.EngineError, match="no such run directory"):
        engine.load(tmp_path / "nothing")
