"""Splits on Arrow, the data cache, and batched encoding: what a user with a large or changing data set relies on.

A second run on the same data reads the cache; a change to any input of the features tokenizes again; data errors
still name the file and line, from whichever tokenizing process meets them; old-style task plugins keep working."""

import dataclasses
import json
import os
import warnings
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from engine import LINE, DataError, Split
from engine.data import cache
from engine.data.features import encode_split
from engine.data.split import rows_to_dataset
from engine_builtins.classification import ClassificationOptions
from engine_builtins.classification.classifier import ClassificationTask
from engine_builtins.formats import JsonlOptions, TableOptions, load_jsonl, load_tsv


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGINE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def classifier(split: Split) -> ClassificationTask:
    task = ClassificationTask(ClassificationOptions())
    task.fit(split)
    return task


class Counting(ClassificationTask):
    """Counts the rows it encodes, in a file (the tokenizing processes are not this one)."""

    log: str = ""

    def encode_batch(self, rows, tokenizer, max_length, labelled=True):
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()} {len(rows['text'])}\n")
        return super().encode_batch(rows, tokenizer, max_length, labelled)


def counted(tmp_path: Path, split: Split) -> Counting:
    task = Counting(ClassificationOptions())
    task.log = str(tmp_path / "encoded.log")
    task.fit(split)
    return task


def encoded_rows(task: Counting) -> int:
    path = Path(task.log)
    return sum(int(line.split()[1]) for line in path.read_text().splitlines()) if path.exists() else 0


# --- rows ---------------------------------------------------------------------------------------------------------


def test_rows_read_back_as_written_whatever_their_types(tmp_path):
    rows = [{LINE: 1, "text": "a", "label": 3}, {LINE: 2, "text": "b", "label": 2.5},
            {LINE: 3, "text": ["x", "y"], "label": ["A", "B"]}, {LINE: 4, "text": "c"}]
    split = Split("train", rows, "x.tsv")
    assert split.rows == rows  # numbers stay numbers (int and float), lists stay lists, an absent label stays absent
    assert split.rows[-1] == {LINE: 4, "text": "c"} and split.where(2) == ("x.tsv", 3)
    stored = Split("train", rows_to_dataset(rows, "x.tsv", tmp_path / "rows.arrow"), "x.tsv")
    assert stored.rows == rows and list(stored.values("label")) == [(3, 1), (2.5, 2), (["A", "B"], 3), (None, 4)]


def test_a_value_of_another_kind_than_the_first_rows_is_an_error_at_its_line():
    rows = [{LINE: i + 1, "text": "t"} for i in range(10_001)] + [{LINE: 10_002, "text": ["x", "y"]}]
    with pytest.raises(DataError, match=r"x\.jsonl, line 10002: 'text' is \['x', 'y'\], but earlier rows have a string"):
        rows_to_dataset(rows, "x.jsonl")


def test_a_row_with_a_column_the_first_rows_lack_is_an_error_at_its_line():
    rows = [{LINE: i + 1, "text": "t"} for i in range(10_001)] + [{LINE: 10_002, "text": "t", "extra": 1}]
    with pytest.raises(DataError, match=r"f\.jsonl, line 10002: has 'extra', which earlier rows do not have"):
        rows_to_dataset(rows, "f.jsonl")


def test_a_large_file_is_read_in_chunks_with_every_line_number(tmp_path):
    lines = [f"text {i}\t{'pos' if i % 3 else 'neg'}" for i in range(25_000)]
    write(tmp_path / "t.tsv", "text\tlabel\n" + "\n".join(lines) + "\n")
    split = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    assert len(split) == 25_000
    assert split.rows[24_999] == {LINE: 25_001, "text": "text 24999", "label": "neg"}
    assert [line for _, line in split.values("label")] == list(range(2, 25_002))


# --- the cache ----------------------------------------------------------------------------------------------------


def test_a_second_read_of_an_unchanged_file_uses_the_cache_and_a_change_reads_it_again(tmp_path):
    path = write(tmp_path / "t.tsv", "text\tlabel\na\tx\nb\ty\n")
    first = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    again = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    assert again.fingerprint == first.fingerprint and len(cache.entries()) == 1
    write(path, "text\tlabel\na\tx\nb\ty\nc\tz\n")
    os.utime(path, ns=(1, 1))  # even with an old modification time, the size differs
    changed = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    assert changed.fingerprint != first.fingerprint and len(changed) == 3
    renamed = load_tsv(TableOptions(train="t.tsv", label="text", text="label"), tmp_path)["train"]
    assert renamed.rows[0] == {LINE: 2, "text": "x", "label": "a"}  # other options, other rows


def test_features_are_cached_and_any_change_to_what_made_them_tokenizes_again(tmp_path, tokenizer, tiny_model_dir):
    write(tmp_path / "t.tsv", "text\tlabel\n" + "".join(f"text number {i}\t{'ab'[i % 2]}\n" for i in range(50)))
    split = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    task = counted(tmp_path, split)
    first = encode_split(task, split, tokenizer, 16)
    once = encoded_rows(task)  # every row, and a few again to learn the features' types
    assert once >= 50
    second = encode_split(task, split, tokenizer, 16)
    assert encoded_rows(task) == once  # read from the cache, not tokenized
    assert second[:] == first[:]
    encode_split(task, split, tokenizer, 8)  # max_length
    assert encoded_rows(task) == 2 * once
    encode_split(task, split, tokenizer, 8, labelled=False)
    assert encoded_rows(task) == 3 * once
    task.labels = ["b", "a"]  # what fit learned (label ids change)
    relabelled = encode_split(task, split, tokenizer, 8)
    assert encoded_rows(task) == 4 * once and relabelled["labels"][:2] == [1, 0]
    encode_split(task, split, tokenizer, 8, key={"plugin": "2.0"})  # the task's options or plugin version
    assert encoded_rows(task) == 5 * once
    other = AutoTokenizer.from_pretrained(tiny_model_dir, do_lower_case=False)
    encode_split(task, split, other, 8)  # another tokenizer
    assert encoded_rows(task) == 6 * once


def test_a_killed_build_leaves_no_entry(tmp_path):
    def make(folder):
        (folder / "part.arrow").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.build("features", "k", make)
    assert cache.lookup("features", "k") is None
    assert not list((tmp_path / "cache" / "features").iterdir())


def test_the_cache_command_lists_entries_and_clears_them(tmp_path, tokenizer, run_engine):
    write(tmp_path / "t.tsv", "text\tlabel\na b\tx\nc d\ty\n")
    split = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    encode_split(classifier(split), split, tokenizer, 16)
    listed = run_engine("cache")
    assert listed.exit_code == 0
    assert f"{tmp_path / 'cache'}: 2 entries" in listed.stdout
    assert "train features" in listed.stdout and str(tmp_path / "t.tsv") in listed.stdout
    assert run_engine("cache", "--clear", "--older-than", "1").stdout.startswith("removed 0 entries")
    assert run_engine("cache", "--clear").stdout.startswith("removed 2 entries")
    assert cache.entries() == []


# --- encoding -----------------------------------------------------------------------------------------------------


def test_encoding_in_several_processes_equals_one_and_errors_keep_file_and_line(tmp_path, tokenizer):
    rows = "".join(f"{'words ' * (i % 7)}row {i}\t{'ab'[i % 2]}\n" for i in range(2500))
    write(tmp_path / "t.tsv", "text\tlabel\n" + rows)
    split = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    task = counted(tmp_path, split)
    one = encode_split(task, split, tokenizer, 16, num_proc=1, key="one")
    pids = {line.split()[0] for line in Path(task.log).read_text().splitlines()}
    assert pids == {str(os.getpid())}  # one process: this one, no worker pool to start
    two = encode_split(task, split, tokenizer, 16, num_proc=2, key="two")
    assert two[:] == one[:] and one["row"][:] == list(range(2500))
    workers = {line.split()[0] for line in Path(task.log).read_text().splitlines()} - {str(os.getpid())}
    assert len(workers) >= 2  # tokenized in worker processes, not here
    write(tmp_path / "v.tsv", "text\tlabel\n" + rows + "late\tc\n")  # an unknown label in the second half
    bad = load_tsv(TableOptions(train="v.tsv"), tmp_path)["train"]
    with pytest.raises(DataError, match=r"v\.tsv, line 2502: unknown label 'c'; expected one of: a, b"):
        encode_split(task, bad, tokenizer, 16, num_proc=2)
    assert not list((tmp_path / "cache" / "features").glob(".*.tmp"))


def test_a_task_may_give_several_features_per_row_or_none(tmp_path, tokenizer):
    class Pieces(ClassificationTask):
        def encode_batch(self, rows, tokenizer, max_length, labelled=True):  # row j gives j % 3 features
            out = {"input_ids": [], "row": []}
            for j, text in enumerate(rows["text"]):
                for _ in range(j % 3):
                    out["input_ids"].append(tokenizer(text)["input_ids"])
                    out["row"].append(j)
            return out

    split = Split("train", [{LINE: i + 1, "text": f"t {i}", "label": "a"} for i in range(2100)], "p.tsv")
    features = encode_split(Pieces(ClassificationOptions()), split, tokenizer, 16)
    expected = [i for i in range(2100) for _ in range((i % 1000) % 3)]  # positions restart in each batch of 1000
    assert features["row"][:] == expected


def test_an_old_style_task_still_encodes_with_a_deprecation_warning(tokenizer):
    class OldStyle:  # engine 0.1: encode(split, ...) returns a list of features, no base class
        def encode(self, split, tokenizer, max_length, labelled=True):
            return [{"input_ids": tokenizer(row["text"])["input_ids"], "length": 3, "row": i}
                    for i, row in enumerate(split.rows)]

    split = Split("train", [{LINE: 1, "text": "a"}, {LINE: 2, "text": "b"}], "old.tsv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = encode_split(OldStyle(), split, tokenizer, 16)
    assert features["row"][:] == [0, 1]
    message = str(next(w.message for w in caught if w.category is DeprecationWarning))
    assert "OldStyle implements encode(split, ...)" in message and "implement encode_batch(rows" in message


def test_jsonl_labels_of_mixed_number_types_train_a_regressor(tmp_path, tiny_model_dir, write_task, run_engine):
    lines = [json.dumps({"text": f"score {i}", "label": i if i % 2 else i + 0.5}) for i in range(12)]
    path = write_task({"task": "regression", "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "t.jsonl"}, "training": {"epochs": 1, "batch_size": 4}, "output_dir": "run"},
                      {"t.jsonl": "\n".join(lines) + "\n"})
    assert run_engine("run", path).exit_code == 0
    split = load_jsonl(JsonlOptions(train="t.jsonl"), path.parent)["train"]
    assert [v for v, _ in split.values("label")][:3] == [0.5, 1, 2.5]


def test_augmentation_over_an_arrow_split_is_seeded_per_chunk_cached_and_the_same_on_a_stream(tmp_path):
    from engine.data.features import augment
    from engine.data.split import stream_rows
    from engine_builtins import augmentations

    write(tmp_path / "t.tsv", "text\tlabel\n" + "".join(f"w{i} a b c d e f g\t{'xy'[i % 2]}\n" for i in range(2500)))
    split = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    swap = [augmentations.random_swap(augmentations.WordOptions(p=0.5))]
    first = augment(split, swap, [{"name": "random_swap", "p": 0.5}], seed=1)
    again = augment(split, swap, [{"name": "random_swap", "p": 0.5}], seed=1)
    other = augment(split, swap, [{"name": "random_swap", "p": 0.5}], seed=2)
    assert first.rows == again.rows and first.fingerprint == again.fingerprint
    assert first.rows != other.rows and first.fingerprint != other.fingerprint
    assert [r["label"] for r in first.rows] == [r["label"] for r in split.rows]  # labels and lines stay with rows
    assert [r[LINE] for r in first.rows] == list(range(2, 2502))
    assert sum(a["text"] != b["text"] for a, b in zip(first.rows, split.rows)) > 2000
    def order(augmented, original):  # where each word of the augmented row was in the original
        return [original["text"].split().index(w) for w in augmented["text"].split()]

    orders = [order(a, b) for a, b in zip(first.rows, split.rows)]
    assert orders[:1000] != orders[1000:2000]  # each chunk its own generator, not one seed repeated
    stream = split.with_rows(stream_rows(split.source, lambda: iter(split.rows)))
    streamed = augment(stream, swap, [], seed=1)
    assert list(streamed.rows) == list(first.rows)


def test_hold_out_cuts_a_seeded_disjoint_validation_split_keeping_lines():
    from engine.data.split import hold_out

    split = Split("train", [{LINE: i + 2, "text": f"t{i}", "label": "a"} for i in range(100)], "train.tsv",
                  fingerprint="f")
    train, validation = hold_out(split, 0.1, seed=3)
    lines = [line for _, line in train.values("text")], [line for _, line in validation.values("text")]
    assert (len(lines[0]), len(lines[1])) == (90, 10)
    assert sorted(lines[0] + lines[1]) == list(range(2, 102)) and lines[0] == sorted(lines[0])
    again = hold_out(split, 0.1, seed=3)[1]
    assert [line for _, line in again.values("text")] == lines[1]  # seeded
    assert [line for _, line in hold_out(split, 0.1, seed=4)[1].values("text")] != lines[1]
    assert validation.name == "validation" and validation.fingerprint not in (None, "f", train.fingerprint)
    with pytest.raises(DataError, match="leaves none to train on"):
        hold_out(Split("train", [{LINE: 2, "text": "x"}], "one.tsv"), 0.5, seed=0)


def test_validation_split_holds_out_training_rows_for_validation(tiny_task, run_engine):
    path = tiny_task(rows=64, data={"train": "train.tsv", "validation_split": 0.25},
                     training={"epochs": 1, "batch_size": 8, "monitor": "validation.accuracy"})
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    assert "data train 48 rows, validation 16 rows" in " ".join(result.stderr.split())
    metrics = json.loads((path.parent / "runs/tiny/metrics.json").read_text())
    assert "accuracy" in metrics["validation"]


def test_validation_split_and_a_validation_file_are_one_too_many(tiny_task, run_engine):
    path = tiny_task(data={"train": "train.tsv", "validation": "validation.tsv", "validation_split": 0.1})
    result = run_engine("validate", path)
    assert result.exit_code == 2
    assert "data.validation_split: " in result.stderr and "set one of the two" in result.stderr


def upper_copies(rows, rng):
    """Keeps every row and adds an upper-cased copy of the even ones (their place in the chunk: ``_origin``)."""
    return [*rows, *(dict(row, text=row["text"].upper()) for row in rows if row["_origin"] % 2 == 0)]


def drop_some_augmented(rows, rng):
    """Drops the augmented rows whose original's place is a multiple of 4: the marks of earlier steps show."""
    return [row for row in rows if not (row.get("_augmented") == "upper_copies" and row["_origin"] % 4 == 0)]


def test_augmentation_marks_counts_and_shows_examples_and_stores_rows_without_the_private_keys(tmp_path, monkeypatch):
    from engine.data.features import AUGMENTATION_FILE, augment

    write(tmp_path / "t.tsv", "text\tlabel\n" + "".join(f"w{i} a b\t{'xy'[i % 2]}\n" for i in range(2500)))
    split = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    calls = []
    chain = [lambda rows, rng: calls.append(len(rows)) or upper_copies(rows, rng), drop_some_augmented]
    configs = [{"name": "upper_copies"}, {"name": "drop_some_augmented"}]
    augmented = augment(split, chain, configs, seed=1)
    first, second = augmented.augmentation
    # Chunks of 1,000, 1,000 and 500 rows: half of each copied; a quarter of each chunk's copies dropped after.
    assert (first.name, first.rows_in, first.rows_out, first.produced) == ("upper_copies", 2500, 3750, 1250)
    assert (second.name, second.rows_in, second.rows_out, second.produced) == ("drop_some_augmented", 3750, 3125, 0)
    assert first.examples == [{"original": {"text": f"w{i} a b", "label": "x"}, "augmented": {"text": f"W{i} A B", "label": "x"}}
                              for i in (0, 2, 4)]
    assert second.examples == []
    assert len(augmented) == 3125 and set(augmented.columns) == {LINE, "text", "label"}  # no _origin, _augmented
    assert calls == [1000, 1000, 500]

    # A second run reads rows and counts from the cache; the augmentations do not run again.
    again = augment(split, chain, configs, seed=1)
    assert calls == [1000, 1000, 500]
    assert [s.to_dict() for s in again.augmentation] == [s.to_dict() for s in augmented.augmentation]
    assert again.fingerprint == augmented.fingerprint
    # The counts are guarded by the cache's checksums like the rows: damaged, the entry is made again.
    (saved,) = (tmp_path / "cache" / "rows").glob(f"*/{AUGMENTATION_FILE}")
    saved.write_text(saved.read_text().replace("3750", "9999"))
    warnings_seen = []
    monkeypatch.setattr("engine.data.cache.console.warn", warnings_seen.append)
    remade = augment(split, chain, configs, seed=1)
    assert f"{AUGMENTATION_FILE} holds other bytes than were written" in warnings_seen[0]
    assert remade.augmentation[0].rows_out == 3750 and len(calls) == 6


def test_an_augmentations_fingerprint_joins_the_cache_key(tmp_path):
    from engine.data.features import augment

    write(tmp_path / "t.tsv", "text\tlabel\nw a b\tx\n")
    split = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]

    def with_fingerprint(value):
        def apply(rows, rng):
            return [dict(row, text=value) for row in rows]

        apply.fingerprint = value
        return apply

    one, other = (augment(split, [with_fingerprint(v)], [{"name": "model"}], seed=1) for v in ("model-a", "model-b"))
    assert one.fingerprint != other.fingerprint
    assert [r["text"] for r in one.rows] == ["model-a"] and [r["text"] for r in other.rows] == ["model-b"]
    plain = augment(split, [lambda rows, rng: rows], [{"name": "model"}], seed=1)
    assert plain.fingerprint not in (one.fingerprint, other.fingerprint)


def test_tagging_rows_written_as_strings_reach_augmentations_as_words_and_tags(tmp_path):
    """The tokens shape is ``text`` and ``label`` lists (the augment hook's contract), also where a tagging file
    wrote them as strings: an augmentation then never takes a tagged sentence for plain text. Tags it cannot read
    (parts of speech) leave the row as it was; entity tags keep their words."""
    from engine.data.features import augment
    from engine_builtins import augmentations

    rows = [{LINE: 1, "text": "Peter Smith and the cat sat", "label": "NNP NNP CC DT NN VBD"},
            {LINE: 2, "text": "Peter Smith and the cat sat", "label": "B-PER I-PER O O O O"}]
    split = Split("train", rows, "t.jsonl")
    seen = []
    deletion = augmentations.random_deletion(augmentations.WordOptions(p=0.9))
    chain = [lambda chunk, rng: seen.extend(dict(r) for r in chunk) or chunk, deletion]
    out = list(augment(split, chain, [], seed=1, names=["look", "random_deletion"], tokens=True).rows)
    assert [(r["text"], r["label"]) for r in seen] == [(r["text"].split(), r["label"].split()) for r in rows]
    assert out[0]["text"] == rows[0]["text"].split() and out[0]["label"] == rows[0]["label"].split()
    assert out[1]["text"][:2] == ["Peter", "Smith"] and out[1]["label"][:2] == ["B-PER", "I-PER"]
    assert len(out[1]["text"]) == len(out[1]["label"]) < 6
    assert rows[0]["text"] == "Peter Smith and the cat sat"  # the split's own rows are not rewritten


def test_the_augmented_splits_key_knows_the_options_as_filled_and_the_plugins_version(plugin_manager, tmp_path):
    """An upgraded augmentation plugin augments again (its old rows are not served); options written out as their
    defaults are the options left out."""
    from engine.config import resolve
    from engine.data.features import augmentation_keys

    registry, infos = plugin_manager.registry(), plugin_manager.infos

    def keys(augment, version=None):
        resolved = resolve({"task": "classification", "data": {"train": "t.tsv"}, "augment": augment}, registry,
                           source=tmp_path / "task.json")
        plugin = resolved.augment[0].component.plugin
        found = infos if version is None else {**infos, plugin: dataclasses.replace(infos[plugin], version=version)}
        return augmentation_keys(resolved.augment, found)

    written = keys([{"name": "random_swap"}])
    assert written == keys([{"name": "random_swap", "p": 0.1, "prob": 1.0}])
    assert written[0]["version"] == infos[written[0]["plugin"]].version
    assert written != keys([{"name": "random_swap", "p": 0.2}])
    assert written != keys([{"name": "random_swap"}], version="99.0")


def test_augmenting_a_stream_counts_the_rows_read_when_it_is_set_up_and_says_so(tmp_path):
    from engine.data.features import augment
    from engine.data.split import stream_rows

    rows = [{LINE: i, "text": f"w{i} a b", "label": "x"} for i in range(25_000)]
    stream = Split("train", rows, "t.tsv").with_rows(stream_rows("t.tsv", lambda: iter(rows)))
    augmented = augment(stream, [upper_copies], [{"name": "upper_copies"}], seed=1)
    (summary,) = augmented.augmentation
    assert summary.streamed and summary.to_dict()["streamed"] is True
    assert 0 < summary.rows_in < 25_000 and summary.produced == summary.rows_in // 2  # the first chunks only
    assert summary.line().endswith(", counted over the stream's first rows")
    read = list(augmented.rows)
    assert len(read) == 37_500 and "_origin" not in read[0] and "_augmented" not in read[-1]
    assert summary.rows_in == augmented.augmentation[0].rows_in  # reading the stream leaves the record as it was


def test_augmenting_rows_in_memory_counts_them_all():
    from engine.data.features import augment

    split = Split("train", [{LINE: i, "text": f"w{i}", "label": "x"} for i in range(10)], "t.tsv")
    (summary,) = augment(split, [upper_copies], [], seed=1, names=["copies"]).augmentation
    assert (summary.name, summary.rows_in, summary.rows_out, summary.produced) == ("copies", 10, 15, 5)
    assert summary.line() == "copies: 10 -> 15 (+5)"


def test_an_input_row_kept_twice_counts_once_as_produced_but_only_a_copy_is_marked():
    import random

    from engine.data.augmentation import AugmentationSummary, run_chain

    seen = {}

    def repeat_first(rows, rng):
        return [*rows, rows[0], dict(rows[1])]

    def look(rows, rng):
        seen.update({i: row.get("_augmented") for i, row in enumerate(rows)})
        return rows

    rows = [{"text": "a"}, {"text": "b"}]
    summaries = [AugmentationSummary("repeat_first"), AugmentationSummary("look")]
    out = run_chain(rows, random.Random(0), [("repeat_first", repeat_first), ("look", look)], summaries)
    assert summaries[0].produced == 2 and summaries[1].produced == 0
    assert seen == {0: None, 1: None, 2: None, 3: "repeat_first"}  # the repeat is the original object itself
    assert out == [{"text": "a"}, {"text": "b"}, {"text": "a"}, {"text": "b"}]


def test_an_augmentation_returning_something_else_than_rows_is_named():
    import random

    from engine.data.augmentation import run_chain
    from engine.errors import EngineError

    with pytest.raises(EngineError, match="augmentation 'texts' returned str 'a' among its rows"):
        run_chain([{"text": "a"}], random.Random(0), [("texts", lambda rows, rng: [r["text"] for r in rows])])
