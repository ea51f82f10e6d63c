"""`engine run`, `predict` and `evaluate` for tagging on a tiny random BERT: entities out, the CRF saved and reloaded,
long sentences windowed (never cut), the softmax head loadable in transformers, and bad data named by file and line."""

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.cli.commands import main
from engine.inference.loading import load_model
from engine.plugins.manager import PluginManager

PEOPLE, PLACES, COMPANIES = ["john", "paul", "mary"], ["london", "paris", "berlin"], ["google", "apple", "microsoft"]
FILLER = ["the", "a", "good", "bad", "movie", "phone", "food", "was", "is", "very"]


def sentence(rng, length=None):
    tokens, tags = [], []
    while len(tokens) < (length or rng.randint(3, 9)):
        r = rng.random()
        if r < 0.15:
            tokens.append(rng.choice(PEOPLE)), tags.append("B-PER")
        elif r < 0.25:
            tokens.append(rng.choice(PLACES)), tags.append("B-LOC")
        elif r < 0.35:
            tokens.extend(["new", "york"]), tags.extend(["B-LOC", "I-LOC"])
        elif r < 0.45:
            tokens.append(rng.choice(COMPANIES)), tags.append("B-ORG")
        else:
            tokens.append(rng.choice(FILLER)), tags.append("O")
    return tokens, tags


def conll(sentences):
    """CoNLL-2003 layout: four columns, document markers."""
    return "-DOCSTART- -X- -X- O\n\n" + "".join(
        "".join(f"{t} NN B-NP {g}\n" for t, g in zip(tokens, tags)) + "\n" for tokens, tags in sentences
    )


def task_config(model_dir, **changes):
    config = {"task": "tagging", "model": {"name": str(model_dir)},
              "data": {"format": "conll", "train": "train.conll", "validation": "dev.conll"},
              "training": {"epochs": 2, "seed": 3}, "optimizer": {"name": "adamw", "lr": 3e-3, "head_lr": 1e-2},
              "output_dir": "run"}
    config.update(changes)
    return config


def train(folder: Path, model_dir: Path, **changes) -> Path:
    rng = random.Random(0)
    long = sentence(rng, 150)  # ~150 words: more than the tiny model's 128 tokens
    (folder / "train.conll").write_text(conll([sentence(rng) for _ in range(160)]))
    (folder / "dev.conll").write_text(conll([long] + [sentence(rng) for _ in range(30)]))
    (folder / "long.json").write_text(json.dumps(long))
    (folder / "task.json").write_text(json.dumps(task_config(model_dir, **changes)))
    assert main(["run", str(folder / "task.json")]) == 0
    return folder / "run"


def builtin_plugins():
    manager = PluginManager()
    manager.load_entry_points()
    return manager


@pytest.fixture(scope="module")
def crf_run(tiny_model_dir, tmp_path_factory):
    return train(tmp_path_factory.mktemp("crf"), tiny_model_dir)


def predict(run_engine, run_dir, name, content):
    path = run_dir.parent / name
    path.write_text(content, encoding="utf-8")
    result = run_engine("predict", run_dir, "--input", path)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_run_scores_entities_and_saves_a_crf_model(crf_run):
    metrics = json.loads((crf_run / "metrics.json").read_text())["validation"]
    assert {"entity_f1", "entity_precision", "entity_recall", "entity_f1_macro", "token_accuracy",
            "entity_f1/LOC", "entity_f1/ORG", "entity_f1/PER"} <= set(metrics)
    assert metrics["entity_f1"] > 0.9  # the toy entities are learnable
    meta = json.loads((crf_run / "model" / "engine.json").read_text())
    assert meta["head"] == {"name": "crf", "dropout": 0.1, "constrained": True}  # every option, defaults too
    assert meta["transformers_loadable"] is False
    assert meta["task_state"]["tags"] == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    resolved = json.loads((crf_run / "task.json").read_text())
    assert resolved["training"]["batch_size"] == 16 and resolved["metrics"][0] in ("entity_f1", {"name": "entity_f1"})


def test_crf_transitions_are_saved_and_reloaded(crf_run):
    saved = load_file(str(crf_run / "model" / "head.safetensors"))
    best = load_file(str(crf_run / "checkpoints" / "best.safetensors"))
    assert torch.equal(saved["crf.transitions"], best["head.crf.transitions"])
    loaded = load_model(crf_run, builtin_plugins())
    assert torch.equal(loaded.model.head.crf.transitions.detach(), saved["crf.transitions"])
    assert loaded.model.head.crf.allowed is not None and not loaded.model.head.crf.allowed[0, 2]  # O -> I-LOC


def test_evaluate_after_reload_gives_the_scores_of_the_run(crf_run, run_engine, tmp_path):
    result = run_engine("evaluate", crf_run, "--data", crf_run.parent / "dev.conll", "--output", tmp_path / "m.json")
    assert result.exit_code == 0, result.stderr
    again = json.loads((tmp_path / "m.json").read_text())
    metrics = json.loads((crf_run / "metrics.json").read_text())["validation"]
    assert again["entity_f1"] == pytest.approx(metrics["entity_f1"])
    assert again["token_accuracy"] == pytest.approx(metrics["token_accuracy"])


def test_predict_plain_text_gives_entities_with_character_offsets(crf_run, run_engine):
    [first, second] = predict(run_engine, crf_run, "in.txt", "john lives in  new york\nmary was very good google\n")
    assert first["tokens"] == ["john", "lives", "in", "new", "york"]
    assert first["tags"] == ["B-PER", "O", "O", "B-LOC", "I-LOC"]
    assert first["entities"] == [
        {"type": "PER", "start": 0, "end": 1, "text": "john", "start_char": 0, "end_char": 4},
        {"type": "LOC", "start": 3, "end": 5, "text": "new york", "start_char": 15, "end_char": 23},
    ]
    assert [e["type"] for e in second["entities"]] == ["PER", "ORG"]


def test_predict_pretokenized_jsonl(crf_run, run_engine):
    [row] = predict(run_engine, crf_run, "in.jsonl", json.dumps({"tokens": ["paul", "is", "in", "berlin"]}) + "\n")
    assert row["text"] == "paul is in berlin"
    assert [(e["type"], e["start_char"], e["end_char"]) for e in row["entities"]] == [("PER", 0, 4), ("LOC", 11, 17)]


def test_a_sentence_longer_than_the_model_is_windowed_not_cut(crf_run, run_engine):
    tokens, tags = json.loads((crf_run.parent / "long.json").read_text())
    [row] = predict(run_engine, crf_run, "long.jsonl", json.dumps({"tokens": tokens}) + "\n")
    assert len(row["tags"]) == len(tokens) == 150
    right = sum(p == t for p, t in zip(row["tags"], tags))
    assert right >= 0.9 * len(tags)
    assert row["tags"][-20:] == tags[-20:]  # the end, far past the model's 128 tokens, is tagged too


def test_evaluate_names_an_unknown_tag(crf_run, run_engine):
    path = crf_run.parent / "odd.conll"
    path.write_text("john NN B-NP B-PER\n\nvisits NN B-NP O\nacme NN B-NP B-COMPANY\n")
    result = run_engine("evaluate", crf_run, "--data", path)
    assert result.exit_code == 1
    assert "odd.conll, line 3: token 2 ('acme'): unknown tag 'B-COMPANY'" in result.stderr
    assert "LOC, ORG, PER" in result.stderr


def test_softmax_head_loads_in_transformers(tiny_model_dir, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    run_dir = train(tmp_path, tiny_model_dir, head="softmax", training={"epochs": 1})
    meta = json.loads((run_dir / "model" / "engine.json").read_text())
    assert meta["transformers_loadable"] is True
    model = AutoModelForTokenClassification.from_pretrained(run_dir / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    assert model.config.id2label[1] == "B-LOC"
    batch = tokenizer("john lives in paris", return_tensors="pt")
    loaded = load_model(run_dir, builtin_plugins())
    with torch.no_grad():
        theirs = model(**batch).logits
        ours = loaded.model(**batch).logits
    assert theirs.shape[-1] == 7
    assert torch.allclose(theirs, ours, atol=1e-5)


def test_an_inconsistent_tag_scheme_is_an_error(tiny_model_dir, write_task, run_engine):
    path = write_task(task_config(tiny_model_dir), {
        "train.conll": "john B-PER\nsmith E-PER\n\nparis U-LOC\n",
        "dev.conll": "john B-PER\n",
    })
    result = run_engine("run", path)
    assert result.exit_code == 1
    assert ("train.conll, line 4: token 1 ('paris'): inconsistent tag scheme: 'U-LOC' is a BILOU tag, but 'E-PER' "
            "(line 1) is not") in result.stderr


def test_a_declared_scheme_is_enforced(tiny_model_dir, write_task, run_engine):
    path = write_task(task_config(tiny_model_dir, task={"name": "ner", "scheme": "bio"}), {
        "train.conll": "john B-PER\nsmith I-PER\n\nparis S-LOC\n",
        "dev.conll": "john B-PER\n",
    })
    result = run_engine("run", path)
    assert result.exit_code == 1
    assert "train.conll, line 4: token 1 ('paris'): inconsistent tag scheme: tag 'S-LOC' is not a BIO tag" in result.stderr


def test_a_missing_tag_column_is_named_by_file_and_line(tiny_model_dir, write_task, run_engine):
    path = write_task(task_config(tiny_model_dir), {"train.conll": "john B-PER\nsmith\n", "dev.conll": "john B-PER\n"})
    result = run_engine("run", path)
    assert result.exit_code == 1
    assert "train.conll, line 2: expected 2 fields like line 1, got 1: 'smith'" in result.stderr


def test_progress_and_samples_count_sentences_not_windows(tiny_model_dir, tmp_path, capsys):
    rng = random.Random(1)
    (tmp_path / "train.conll").write_text(conll([sentence(rng, 40) for _ in range(12)]))  # ~40 tokens: 2-3 windows
    (tmp_path / "dev.conll").write_text(conll([sentence(rng) for _ in range(4)]))
    config = task_config(tiny_model_dir, model={"name": str(tiny_model_dir), "max_length": 24},
                         training={"epochs": 2, "batch_size": 4, "seed": 3})
    (tmp_path / "task.json").write_text(json.dumps(config))
    assert main(["run", str(tmp_path / "task.json")]) == 0
    assert "train: 12 row(s) are read as several features" in " ".join(capsys.readouterr().err.split())
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["training_time"]["samples"] == 2 * 12  # sentences, two epochs; not their windows
