"""label_filter with tiny runs trained here: augmented rows (marked ``_augmented`` by hand, as the core marks them)
whose label the run predicts differently are dropped, the training rows as read always pass, the kept share is
logged, the model loads once, and the run's model digest is the augmentation's fingerprint."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

import engine
from engine import ConfigError
from engine.testing import labelled_rows
from engine_builtins.augmentations import filtering
from engine_builtins.augmentations.filtering import FilterOptions, label_filter

LABELS = ["bad", "good", "great"]
PEOPLE, PLACES, FILLER = ["john", "paul", "mary"], ["london", "paris", "berlin"], ["the", "a", "good", "film", "was"]


def train(folder: Path, task: dict, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "task.json").write_text(json.dumps({"output_dir": "run", **task}), encoding="utf-8")
    engine.train(folder / "task.json")
    return folder / "run"


def table(rows: list[tuple]) -> str:
    return "text\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows)


@pytest.fixture(scope="module")
def classification_run(tiny_model_dir, tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("filter-classification"), {
        "task": "classification", "model": {"name": str(tiny_model_dir)},
        "data": {"train": "train.tsv", "validation": "dev.tsv"},
        "training": {"epochs": 1, "batch_size": 8, "seed": 3}, "metrics": ["accuracy"],
    }, {"train.tsv": table(labelled_rows(LABELS, 24, 1)), "dev.tsv": table(labelled_rows(LABELS, 6, 2))})


def sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    tokens, tags = [], []
    for _ in range(rng.randint(3, 8)):
        r = rng.random()
        if r < 0.2:
            tokens.append(rng.choice(PEOPLE)), tags.append("B-PER")
        elif r < 0.35:
            tokens.extend(["new", "york"]), tags.extend(["B-LOC", "I-LOC"])
        elif r < 0.5:
            tokens.append(rng.choice(PLACES)), tags.append("B-LOC")
        else:
            tokens.append(rng.choice(FILLER)), tags.append("O")
    return tokens, tags


def conll(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "\n".join("".join(f"{t}\t{g}\n" for t, g in zip(*sentence(rng))) for _ in range(n))


@pytest.fixture(scope="module")
def tagging_run(tiny_model_dir, tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("filter-tagging"), {
        "task": "tagging", "model": {"name": str(tiny_model_dir)},
        "data": {"format": "conll", "train": "train.conll", "validation": "dev.conll", "separator": "\t"},
        "training": {"epochs": 1, "seed": 3}, "optimizer": {"name": "adamw", "lr": 3e-3, "head_lr": 1e-2},
    }, {"train.conll": conll(40, 1), "dev.conll": conll(8, 2)})


def marked(row: dict, by: str = "random_swap") -> dict:
    return {**row, "_augmented": by}


def texts(n: int, seed: int) -> list[str]:
    return [text for text, _ in labelled_rows(LABELS, n, seed)]


# --- classification ----------------------------------------------------------------------------------------------


def test_drops_augmented_rows_predicted_otherwise(classification_run, capsys):
    words = texts(6, 5)
    predicted = [r["label"] for r in engine.load(classification_run).predict(words)]
    other = [LABELS[(LABELS.index(p) + 1) % len(LABELS)] for p in predicted]
    originals = [{"text": t, "label": o, "_origin": i} for i, (t, o) in enumerate(zip(words, other))]
    agreeing = [marked({"text": t, "label": p, "_origin": i}) for i, (t, p) in enumerate(zip(words, predicted))]
    disagreeing = [marked({"text": t, "label": o, "_origin": i}) for i, (t, o) in enumerate(zip(words, other))]
    rows = [*originals, *agreeing[:3], *disagreeing[:3], *agreeing[3:], *disagreeing[3:]]
    before = json.dumps(rows)

    apply = label_filter(FilterOptions(run=str(classification_run)))
    out = apply(rows, random.Random(0))

    # The originals pass although the run predicts them otherwise; of the augmented rows, those it agrees with.
    assert out == [*originals, *agreeing[:3], *agreeing[3:]]
    assert all(any(o is r for r in rows) for o in out)  # the rows kept are the same objects, unchanged
    assert json.dumps(rows) == before
    assert apply.totals == {"augmented": 12, "kept": 6}
    err = capsys.readouterr().err
    assert "label_filter: kept 6 of 12 augmented rows (50.0%)" in err


def test_loads_the_model_once_and_lazily(classification_run, monkeypatch):
    loads = []
    real = engine.load

    def counting(*args, **kwargs):
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "load", counting)
    apply = label_filter(FilterOptions(run=str(classification_run / "model"), batch_size=4))
    words = texts(3, 6)
    originals = [{"text": t, "label": "good"} for t in words]
    assert apply(originals, random.Random(0)) == originals  # no augmented rows: nothing to predict
    assert loads == []
    for _ in range(2):
        apply([*originals, *(marked(row) for row in originals)], random.Random(0))
    assert len(loads) == 1


def test_fingerprint_is_the_models_digest(classification_run, tmp_path):
    first = label_filter(FilterOptions(run=str(classification_run))).fingerprint
    assert first == label_filter(FilterOptions(run=str(classification_run / "model"))).fingerprint
    copy = tmp_path / "copy"
    shutil.copytree(classification_run, copy)
    assert label_filter(FilterOptions(run=str(copy))).fingerprint == first  # where it lies does not count
    weights = next((copy / "model").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")  # retrained, as far as the digest can tell
    assert label_filter(FilterOptions(run=str(copy))).fingerprint != first


def test_refuses_what_is_not_a_finished_run(classification_run, tmp_path):
    with pytest.raises(ConfigError, match=r"label_filter\.run: .*no such run directory"):
        label_filter(FilterOptions(run=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no trained model here"):
        label_filter(FilterOptions(run=str(tmp_path / "empty")))
    running = tmp_path / "running"
    shutil.copytree(classification_run, running)
    manifest = json.loads((running / "manifest.json").read_text())
    (running / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    with pytest.raises(ConfigError, match=r"has not finished .*'running'"):
        label_filter(FilterOptions(run=str(running)))


def test_refuses_rows_of_other_labels(classification_run):
    apply = label_filter(FilterOptions(run=str(classification_run)))
    rows = [{"text": "the film", "label": "good"}, marked({"text": "a film", "label": "awful", "_line": 7})]
    with pytest.raises(ConfigError, match=r"does not know the training rows' labels: .*line 7: unknown label 'awful'"):
        apply(rows, random.Random(0))
    words = [{"text": ["the", "film"], "label": ["O", "O"]}, marked({"text": ["a", "film"], "label": ["O", "O"]})]
    with pytest.raises(ConfigError, match=r"labels whole texts .* one tag per word"):
        apply(words, random.Random(0))
    pairs = [{"text": "the film", "text_pair": "a film", "label": "good"}, marked({"text": "a", "label": "good"})]
    with pytest.raises(ConfigError, match="read one text at a time, and these rows have pairs of texts"):
        apply(pairs, random.Random(0))


# --- tagging -----------------------------------------------------------------------------------------------------


def test_tagging_compares_tag_sequences(tagging_run, capsys):
    rng = random.Random(9)
    sentences = [sentence(rng)[0] for _ in range(6)]
    predicted = [r["tags"] for r in engine.load(tagging_run).predict(sentences)]
    agreeing = [marked({"text": s, "label": p}) for s, p in zip(sentences, predicted)]
    one_off = []  # one tag of each changed: B-PER where the run said otherwise, else O
    for s, p in zip(sentences, predicted):
        tags = list(p)
        tags[0] = "B-PER" if tags[0] != "B-PER" else "O"
        one_off.append(marked({"text": s, "label": tags}))
    bioes = [marked({"text": s, "label": to_bioes(p)}) for s, p in zip(sentences, predicted)]
    originals = [{"text": s, "label": tags} for s, tags in (sentence(rng) for _ in range(4))]
    rows = [*originals, *agreeing, *one_off, *bioes]

    out = label_filter(FilterOptions(run=str(tagging_run)))(rows, random.Random(0))
    # Exact agreement: the rows whose tags are the prediction, in BIO or BIOES, stay; one tag off is dropped.
    assert out == [*originals, *agreeing, *bioes]
    assert "label_filter: kept 12 of 18 augmented rows (66.7%)" in capsys.readouterr().err

    # One tag changed changes at most two of a sentence's tags read as BIO ("O I-LOC" reads "O B-LOC"), and every
    # sentence has 3 words or more: a third of the tags still agree.
    lenient = label_filter(FilterOptions(run=str(tagging_run), min_agreement=0.3))(rows, random.Random(0))
    assert lenient == rows


def to_bioes(tags: list[str]) -> list[str]:
    out = list(tags)
    for i, tag in enumerate(tags):
        ends = i + 1 == len(tags) or tags[i + 1] != f"I-{tag[2:]}"
        if tag.startswith("B-") and ends:
            out[i] = "S-" + tag[2:]
        elif tag.startswith("I-") and ends:
            out[i] = "E-" + tag[2:]
    return out


def test_mention_replacement_then_the_filter(tagging_run):
    """The chain the issue describes for tagging: mention replacement, then the filter on what it produced."""
    from engine_builtins.augmentations.mentions import MentionOptions, mention_replacement

    rng = random.Random(4)
    rows = [{"text": t, "label": g, "_origin": i} for i, (t, g) in enumerate(sentence(rng) for _ in range(30))]
    augmented = mention_replacement(MentionOptions(p=1.0, keep_original=True))(rows, random.Random(1))
    for row in augmented[len(rows):]:
        row["_augmented"] = "mention_replacement"  # what the core does between the steps
    out = label_filter(FilterOptions(run=str(tagging_run)))(augmented, random.Random(1))
    assert out[:len(rows)] == rows and all(a is b for a, b in zip(out, rows))
    produced = augmented[len(rows):]
    assert all(any(k is p for p in produced) for k in out[len(rows):])


def test_in_a_run_after_mention_replacement(tagging_run, capsys, monkeypatch, tmp_path):
    """The filter in a task file's augment list, after mention replacement: the core's counts show the drop."""
    monkeypatch.setenv("ENGINE_CACHE", str(tmp_path / "cache"))  # augmented here, not found from an earlier session
    folder = tagging_run.parent
    task = json.loads((folder / "task.json").read_text())
    task.update(output_dir="augmented", augment=[
        {"name": "mention_replacement", "p": 1.0, "keep_original": True},
        {"name": "label_filter", "run": str(tagging_run)},
    ])
    (folder / "augmented.json").write_text(json.dumps(task))
    engine.train(folder / "augmented.json")
    counts = {a["name"]: a for a in json.loads((folder / "augmented" / "manifest.json").read_text())["augmentation"]}
    replaced, filtered = counts["mention_replacement"], counts["label_filter"]
    assert filtered["rows_in"] == replaced["rows_out"] == 40 + replaced["produced"] and filtered["produced"] == 0
    dropped = filtered["rows_in"] - filtered["rows_out"]
    kept = replaced["produced"] - dropped
    share = kept / replaced["produced"]
    assert f"label_filter: kept {kept} of {replaced['produced']} augmented rows ({share:.1%})" in capsys.readouterr().err


# --- how labels are compared, per kind of task ---------------------------------------------------------------------


class Regression:
    targets = ("score",)


class MultiLabel:
    pass


def test_regression_needs_a_tolerance():
    with pytest.raises(ConfigError, match=r"label_filter.tolerance: the run r predicts numbers \(score\): set "
                                          "tolerance"):
        filtering.agreement(Regression(), FilterOptions(run="r"), "r")
    close = filtering.agreement(Regression(), FilterOptions(run="r", tolerance=0.5), "r")
    assert close([2.4], [2.0]) and close([1.5], [2.0]) and not close([2.6], [2.0])


def test_labels_compare_as_names_or_sets():
    same = filtering.agreement(MultiLabel(), FilterOptions(run="r"), "r")
    assert same({"label": "good", "scores": {}}, "good") and not same({"label": "bad"}, "good")
    assert same({"label": ["b", "a"]}, ["a", "b"]) and not same({"label": ["a"]}, ["a", "b"])
    with pytest.raises(ConfigError, match="cannot compare"):
        same([0.3], "good")


def test_declared_for_every_shape():
    declared = {}
    filtering.declare(lambda name, factory, **kwargs: declared.update({name: (factory, kwargs)}))
    factory, kwargs = declared["label_filter"]
    assert factory is label_filter and kwargs["options"] is FilterOptions
    assert kwargs["shapes"] == ["single", "pair", "tokens"]
