"""The tagging task on its own: defaults that suit tagging, rows from CoNLL or JSONL, any scheme in and BIO out,
and the data errors a user gets, each naming the file and line."""

from types import SimpleNamespace

import pytest
from transformers import AutoTokenizer

from engine import DataError, Split
from engine.config.resolve import resolve
from engine.data.features import encode_split
from engine_builtins.formats import JsonlOptions, load_jsonl
from engine_builtins.tagging import TaggingOptions
from engine_builtins.tagging.tagger import TaggingTask


def split_of(*sentences, name="train"):
    rows = [{"_line": 1 + 10 * i, "text": tokens, "label": tags} for i, (tokens, tags) in enumerate(sentences)]
    return Split(name, rows, f"{name}.conll")


def fitted(*sentences, **options):
    task = TaggingTask(TaggingOptions(**options))
    task.fit(split_of(*sentences))
    return task


def test_a_minimal_task_file_gets_tagging_defaults(plugin_manager, tmp_path):
    resolved = resolve({"task": "tagging", "data": {"train": "train.conll"}}, plugin_manager.registry(),
                       source=tmp_path / "task.json")
    assert resolved.data.name == "conll"  # from the extension
    assert resolved.head.name == "crf"
    assert resolved.training.batch_size == 16
    assert (resolved.optimizer.options.lr, resolved.optimizer.options.head_lr) == (1e-4, 1e-3)
    assert [m.name for m in resolved.metrics][:3] == ["entity_f1", "entity_precision", "entity_recall"]
    assert resolved.task_object.monitor == "validation.entity_f1"
    # A user's own values win over the task's.
    resolved = resolve({"task": "ner", "data": {"train": "t.conll"}, "head": "softmax", "training": {"epochs": 1},
                        "optimizer": {"name": "adamw", "lr": 5e-5}}, plugin_manager.registry(), source=tmp_path / "t.json")
    assert resolved.head.name == "softmax" and resolved.training.batch_size == 16
    assert (resolved.optimizer.options.lr, resolved.optimizer.options.head_lr) == (5e-5, 1e-3)


def test_jsonl_tokens_and_tags_train_like_conll(tmp_path, tiny_model_dir):
    (tmp_path / "t.jsonl").write_text('{"tokens": ["john", "in", "new", "york"], "tags": ["B-PER", "O", "B-LOC", "I-LOC"]}\n'
                                      '{"tokens": "mary was here", "tags": "B-PER O O"}\n')
    split = load_jsonl(JsonlOptions(train="t.jsonl", text="tokens", label="tags"), tmp_path)["train"]
    task = TaggingTask(TaggingOptions())
    task.fit(split)
    assert task.tag_names == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert task.references(split)[1] == ["B-PER", "O", "O"]
    features = encode_split(task, split, AutoTokenizer.from_pretrained(tiny_model_dir), 128)
    assert [f["labels"] for f in features] == [[3, 0, 1, 2], [3, 0, 0]]


@pytest.mark.parametrize("scheme, tags", [
    ("iob1", ["I-PER", "I-PER", "B-PER", "O", "I-LOC"]),
    ("bioes", ["B-PER", "E-PER", "S-PER", "O", "S-LOC"]),
    ("bilou", ["B-PER", "L-PER", "U-PER", "O", "U-LOC"]),
])
def test_any_scheme_is_learned_and_scored_as_bio(scheme, tags):
    task = fitted((["a", "b", "c", "d", "e"], tags))
    assert task.scheme == scheme
    assert task.tag_names == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert task.references(split_of((["a", "b", "c", "d", "e"], tags))) == [["B-PER", "I-PER", "B-PER", "O", "B-LOC"]]


def test_a_declared_scheme_is_kept_and_an_ill_formed_bio_file_is_read_as_conlleval_does():
    task = fitted((["a", "b"], ["O", "I-PER"]), scheme="bio")
    assert task.scheme == "bio" and task.references(split_of((["a", "b"], ["O", "I-PER"]))) == [["O", "B-PER"]]


def test_evaluation_data_may_use_another_scheme_when_detecting():
    task = fitted((["a", "b"], ["B-PER", "I-PER"]))
    task.check(split_of((["a", "b", "c"], ["B-PER", "E-PER", "S-PER"]), name="validation"))


@pytest.mark.parametrize("sentence, message", [
    ((["a", "b"], ["B-PER"]), r"train\.conll, line 1: 1 tags for 2 tokens"),
    ((["a"], ["PER"]), r"train\.conll, line 1: token 1 \('a'\): tag 'PER' is not 'O' or PREFIX-TYPE"),
    ((["a"], ["O"]), r"train\.conll: the training data has no entities"),
    ((["a"], [1]), r"line 1: expected a list of tag names such as \['B-PER', 'O'\], got \[1\]"),
])
def test_bad_training_rows(sentence, message):
    with pytest.raises(DataError, match=message):
        fitted(sentence)


def test_unknown_tag_in_evaluation_data_names_its_line_and_token():
    task = fitted((["john"], ["B-PER"]), (["paris"], ["B-LOC"]))
    with pytest.raises(DataError, match=r"valid\.conll, line 11: token 2 \('acme'\): unknown tag 'I-ORG': entity type "
                                        r"'ORG' is not among the model's types \(LOC, PER\)"):
        task.check(split_of((["john"], ["B-PER"]), (["big", "acme"], ["O", "I-ORG"]), name="valid"))


def test_declared_types_fix_the_tag_order_and_refuse_others():
    task = fitted((["john"], ["B-PER"]), types=["PER", "LOC"])
    assert task.tag_names == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    with pytest.raises(DataError, match="unknown tag 'B-ORG'"):
        fitted((["acme"], ["B-ORG"]), types=["PER"])


@pytest.mark.parametrize("mode", ["first", "last", "all"])
@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_batches_give_one_prediction_per_word_in_every_subword_mode(tiny_model_dir, mode, head):
    import torch

    from engine_builtins.tagging import CrfOptions, SoftmaxOptions, build_crf, build_softmax

    sentences = ((["Johnny", "loved", "Londoner", "films"], ["B-PER", "O", "B-LOC", "O"]), (["paris"], ["B-LOC"]))
    task = fitted(*sentences, label_subwords=mode)
    split = split_of(*sentences, name="validation")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    features = encode_split(task, split, tokenizer, 128)
    batch = task.collate(list(features), tokenizer)
    assert batch["tag_mask"].sum().item() == len([p for f in features for p in f["tag_positions"]])
    torch.manual_seed(0)
    spec = task.head_spec(32)
    model = (build_crf(CrfOptions(), spec) if head == "crf" else build_softmax(SoftmaxOptions(), spec)).eval()
    hidden = torch.randn(*batch["input_ids"].shape, 32)
    output = model(SimpleNamespace(last_hidden_state=hidden), batch)
    assert torch.isfinite(output.loss)
    values = task.outputs(batch, output)
    assert [len(v) for v in values] == [4, 1]
    predictions = task.predictions(split, features, values)
    assert [len(p["tags"]) for p in predictions] == [4, 1]


@pytest.mark.parametrize("shapes", [None, ["single", "pair"]])
def test_augmentations_that_do_not_keep_tags_aligned_are_refused_before_anything_runs(shapes, plugin_manager, tmp_path):
    """An augmentation is for tagging only when it declares the tokens shape; a 0.2 plugin's, which declares no
    shapes, rewrites plain texts and is refused as in 0.2."""
    from engine.errors import ConfigError
    from engine.registry import make_register

    registry = plugin_manager.registry()
    make_register(registry, "augment", "outside")("word_shuffle", lambda options: lambda rows, rng: rows, shapes=shapes)
    raw = {"task": "tagging", "data": {"train": "t.conll"}, "augment": ["word_shuffle"]}
    with pytest.raises(ConfigError) as info:
        resolve(raw, registry, source=tmp_path / "task.json")
    (issue,) = info.value.issues
    assert issue.path == "augment.0"
    assert issue.message.startswith("augmentation 'word_shuffle' supports the shapes single, pair")
    assert "the tagging task's rows have the shape tokens (words with one tag per word)" in issue.message
