"""``POST /predict`` gives the records `engine predict` writes and ``engine.load(...).predict(...)`` gives, for
classification, tagging with a CRF, regression on pairs and the example plugin's ordinal task: the same labels and
tags, scores within 1e-5, whatever else is in the batch (each input alone, batched with the others, beside a long
input, in reverse order); and, for tasks whose records carry scores, text-embeddings-inference's sorted shape."""

from __future__ import annotations

import asyncio
import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import engine

TOLERANCE = 1e-5
RUNS = ["classification_run", "tagging_run", "regression_run", "ordinal_run"]
LONG = " ".join(["the good film was very long and"] * 12)


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


def inputs_and_file(name: str, folder: Path) -> tuple[list[Any], Path]:
    """Each run's validation rows as JSON inputs (texts, [text, text_pair] pairs, token lists), and as a file
    `engine predict` reads."""
    if name == "tagging_run":
        blocks = [block for block in (folder / "dev.conll").read_text().split("\n\n") if block.strip()]
        sentences = [[line.split("\t")[0] for line in block.splitlines()] for block in blocks]
        file = folder / "dev-tokens.jsonl"
        file.write_text("".join(json.dumps({"tokens": tokens}) + "\n" for tokens in sentences))
        return sentences, file
    table = pd.read_csv(folder / "dev.tsv", sep="\t", dtype=str)
    if name == "regression_run":
        return [[a, b] for a, b in zip(table["sentence1"], table["sentence2"])], folder / "dev.tsv"
    return list(table["sentence" if name == "classification_run" else "text"]), folder / "dev.tsv"


def long_input(name: str) -> Any:
    return LONG.split() if name == "tagging_run" else [LONG, LONG] if name == "regression_run" else LONG


def one(name: str, item: Any) -> dict[str, Any]:
    """The body asking for one input's record: a text or a pair is one input; a token list goes in a list."""
    return {"inputs": [item] if name == "tagging_run" else item, "records": True}


def batches_with_several_requests(metrics: str) -> int:
    alone = int(re.search(r'engine_batch_requests_bucket\{le="1"\} (\d+)', metrics).group(1))
    return int(re.search(r"engine_batch_requests_count (\d+)", metrics).group(1)) - alone


@pytest.mark.parametrize("run", RUNS)
def test_post_predict_gives_the_records_of_engine_predict_whatever_else_is_in_the_batch(run, request, run_engine, serve):
    trained = request.getfixturevalue(run)
    inputs, file = inputs_and_file(run, trained.folder)
    result = run_engine("predict", trained.run_dir, "--input", file)
    assert result.exit_code == 0, result.stderr
    expected = [json.loads(line) for line in result.stdout.splitlines()]
    predictor = engine.load(trained.run_dir)
    same(predictor.predict([tuple(x) if run == "regression_run" else x for x in inputs]), expected, "engine.load")

    async def scenario() -> None:
        async with serve(predictor, max_wait_ms=30) as client:
            async def post(body: dict[str, Any]) -> Any:
                response = await client.post("/predict", json=body)
                assert response.status_code == 200, response.text
                return response.json()

            # Every input in a request of its own, all at once, with long inputs among them: they share batches.
            answers = await asyncio.gather(*(post(one(run, item)) for item in [long_input(run), *inputs,
                                                                               long_input(run)]))
            alone = [answer[0] if run == "tagging_run" else answer for answer in answers[1:-1]]
            same(alone, expected, "one input a request, batched together")
            same(await post({"inputs": inputs, "records": True}), expected, "one request")
            reverse = await post({"inputs": [long_input(run), *reversed(inputs)], "records": True})
            same(reverse[1:][::-1], expected, "reversed, beside a long input")
            assert batches_with_several_requests((await client.get("/metrics")).text) > 0

            if (await client.get("/info")).json()["form"] == "scores":
                ranked = await post({"inputs": inputs})
                for scores, record in zip(ranked, expected):
                    assert [s["label"] for s in scores] == sorted(record["scores"], key=lambda k: -record["scores"][k])
                    same({s["label"]: s["score"] for s in scores}, record["scores"], "sorted scores")
                    if run == "classification_run":
                        assert scores[0]["label"] == record["label"]

    asyncio.run(scenario())


def test_the_sorted_scores_are_text_embeddings_inference_s_shape(classification_run, serve):
    predictor = engine.load(classification_run.run_dir)
    record = predictor.predict("a good film")

    async def scenario() -> None:
        async with serve(predictor) as client:
            one_text = (await client.post("/predict", json={"inputs": "a good film"})).json()
            assert [set(s) for s in one_text] == [{"label", "score"}] * 3
            assert [s["score"] for s in one_text] == sorted(record["scores"].values(), reverse=True)
            several = (await client.post("/predict", json={"inputs": ["a good film", ["a good film"]],
                                                             "top_k": 2})).json()
            assert several == [one_text[:2], one_text[:2]]
            raw = (await client.post("/predict", json={"inputs": "a good film", "raw_scores": True})).json()
            logits = {s["label"]: s["score"] for s in raw}
            softmax = {k: math.exp(v) / sum(map(math.exp, logits.values())) for k, v in logits.items()}
            same(softmax, record["scores"], "softmax of the raw scores")
            with_raw = (await client.post("/predict", json={"inputs": "a good film", "records": True,
                                                              "raw_scores": True})).json()
            assert with_raw["raw_scores"] == pytest.approx(logits, abs=TOLERANCE)

    asyncio.run(scenario())


def test_a_model_of_pairs_reads_text_text_pair_as_one_pair_and_regression_gives_records(regression_run, serve):
    predictor = engine.load(regression_run.run_dir)
    expected = predictor.predict([("john was here", "in paris"), ("a film", "berlin")])

    async def scenario() -> None:
        async with serve(predictor) as client:
            pair = (await client.post("/predict", json={"inputs": ["john was here", "in paris"]})).json()
            same(pair, expected[0])
            both = (await client.post("/predict", json={"inputs": [["john was here", "in paris"],
                                                                    {"sentence1": "a film", "sentence2": "berlin"}]}))
            same(both.json(), expected)
            info = (await client.get("/info")).json()
            assert (info["form"], info["reads_pairs"], info["labels"]) == ("record", True, ["value"])

    asyncio.run(scenario())


def test_tagging_takes_texts_and_token_lists(tagging_run, serve):
    predictor = engine.load(tagging_run.run_dir)
    expected = predictor.predict(["john lives in new york", ["mary", "was", "in", "paris"]])

    async def scenario() -> None:
        async with serve(predictor) as client:
            text = (await client.post("/predict", json={"inputs": "john lives in new york"})).json()
            same(text, expected[0])
            both = (await client.post("/predict", json={"inputs": ["john lives in new york",
                                                                    ["mary", "was", "in", "paris"]]})).json()
            same(both, expected)
            info = (await client.get("/info")).json()
            assert (info["form"], info["level"]) == ("record", "token")

    asyncio.run(scenario())


def test_quantized_serving_gives_engine_predict_quantize_int8(classification_run, run_engine, serve):
    file = classification_run.folder / "dev.tsv"
    result = run_engine("predict", classification_run.run_dir, "--input", file, "--quantize", "int8")
    expected = [json.loads(line) for line in result.stdout.splitlines()]
    predictor = engine.load(classification_run.run_dir, quantize="int8")
    texts = list(pd.read_csv(file, sep="\t", dtype=str)["sentence"])

    async def scenario() -> None:
        async with serve(predictor) as client:
            same((await client.post("/predict", json={"inputs": texts, "records": True})).json(), expected)

    asyncio.run(scenario())


def test_the_batch_budget_and_streams_default_by_device_and_info_gives_those_in_force(classification_run, serve):
    # A CPU's batches are kept small (their time and memory grow with their tokens), a GPU's large; a given budget
    # wins on both; /info says which budget the server runs with, not the unset option. Likewise the streams: two
    # on a CPU with two threads or more, else one.
    from engine.serve.settings import DEFAULT_BATCH_TOKENS, ServeSettings

    settings = ServeSettings(classification_run.run_dir)
    assert settings.batch_tokens(torch.device("cpu")) == DEFAULT_BATCH_TOKENS["cpu"] == 1024
    assert settings.batch_tokens("cuda:1") == settings.batch_tokens("mps") == DEFAULT_BATCH_TOKENS["accelerator"]
    assert ServeSettings(classification_run.run_dir, max_batch_tokens=300).batch_tokens("cpu") == 300
    assert settings.batch_tokens("cpu", streams=2) == 512  # the device's budget, shared by the streams
    assert ServeSettings(classification_run.run_dir, max_batch_tokens=300).batch_tokens("cpu", streams=2) == 300
    assert settings.model_streams(torch.device("cpu"), 2) == settings.model_streams("cpu", 16) == 2
    assert settings.model_streams("cpu", 1) == settings.model_streams("cuda:0", 16) == 1
    assert ServeSettings(classification_run.run_dir, streams=3).model_streams("cuda", 1) == 3
    predictor = engine.load(classification_run.run_dir)

    async def scenario() -> None:
        async with serve(predictor) as client:
            settings = (await client.get("/info")).json()["settings"]
            assert settings["streams"] == (2 if torch.get_num_threads() >= 2 else 1)
            assert settings["max_batch_tokens"] == 1024 // settings["streams"]
        async with serve(predictor, max_batch_tokens=300, streams=1) as client:
            settings = (await client.get("/info")).json()["settings"]
            assert (settings["max_batch_tokens"], settings["streams"]) == (300, 1)

    asyncio.run(scenario())
