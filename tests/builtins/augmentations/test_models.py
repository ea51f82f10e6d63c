"""back_translation and contextual_substitution on tiny random models built here (conftest.py): what a user relies on.

A random model's outputs are nonsense, but which model saw what is observable: every ``generate`` call is recorded,
so a back-translated row is checked to be the backward model's output on the forward model's output on that row's
text. The factories are called directly, as the engine calls them (``factory(options)`` then ``apply(rows, rng)``).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from engine.config.choice import pydantic_issues
from engine.errors import ConfigError
from engine_builtins.augmentations import models
from engine_builtins.augmentations.generation import length_batches, sentences
from engine_builtins.augmentations.models import (
    BackTranslationOptions,
    ContextualOptions,
    back_translation,
    contextual_substitution,
)
from engine_builtins.augmentations.synonyms import ENGLISH_STOP_WORDS as STOP_WORDS

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses"),  # MarianTokenizer's punctuation option
]

TEXTS = [
    "the movie was good",
    "paris",
    "i loved the acting and the story of this film",
    "bad service",
    "a really terrible phone",
    "john and mary went to london before the new year",
    "great",
    "the food at this place is excellent and the price is nice",
]


@pytest.fixture
def generate_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Every ``generate`` of a sequence-to-sequence model: which folder, the inputs (pads stripped), the outputs."""
    from transformers import GenerationMixin

    calls: list[dict] = []
    original = GenerationMixin.generate

    def spy(self, *args, **kwargs):
        output = original(self, *args, **kwargs)
        pad = self.config.pad_token_id
        inputs = [tuple(t for t in row if t != pad) for row in kwargs["input_ids"].tolist()]
        calls.append({"folder": Path(self.name_or_path), "inputs": inputs, "outputs": output.tolist(),
                      "kwargs": {k: v for k, v in kwargs.items() if k not in ("input_ids", "attention_mask")}})
        return output

    monkeypatch.setattr(GenerationMixin, "generate", spy)
    return calls


def translation_of(calls: list[dict], folder: Path, text: str) -> str:
    """What the recorded calls of the model in ``folder`` produced for ``text``."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tuple(t for t in tokenizer(text)["input_ids"] if t != tokenizer.pad_token_id)
    for call in calls:
        if call["folder"] == folder and ids in call["inputs"]:
            output = call["outputs"][call["inputs"].index(ids)]
            return tokenizer.decode(output, skip_special_tokens=True).strip()
    raise AssertionError(f"{folder.name} never translated {text!r}")


def bt(forward: Path, backward: Path, **options) -> models.ModelAugmentation:
    return back_translation(BackTranslationOptions(forward=str(forward), backward=str(backward), **options))


# --- back-translation ---------------------------------------------------------------------------------------------


def test_a_back_translated_row_went_through_both_models_in_its_order(tiny_marian_pair, generate_calls):
    forward, backward = tiny_marian_pair
    rows = [{"text": t, "label": i} for i, t in enumerate(TEXTS)]
    rows.append({"text": "the plot", "text_pair": "a very boring story", "label": 99})
    augment = bt(forward, backward, batch_size=3)
    out = augment(rows, random.Random(0))

    assert len(out) == len(rows) and [r["label"] for r in out] == [r["label"] for r in rows]
    assert {c["folder"] for c in generate_calls} == {forward, backward}
    first = [c["folder"] for c in generate_calls].index(backward)
    assert all(c["folder"] == forward for c in generate_calls[:first])  # all forward first, then all backward
    for original, new in zip(rows, out):
        for key in ("text", "text_pair") if "text_pair" in original else ("text",):
            pivot = translation_of(generate_calls, forward, original[key])
            assert pivot, "the tiny model returned nothing"
            assert new[key] == translation_of(generate_calls, backward, pivot) != original[key]
        assert new is not original and original == {**new, **{k: original[k] for k in ("text", "text_pair")
                                                             if k in original}}
    # length-sorted: the batches of each model go from the longest inputs to the shortest
    widths = [max(map(len, c["inputs"])) for c in generate_calls[:first]]
    assert widths == sorted(widths, reverse=True) and len(widths) == 4  # 10 texts, 3 a batch
    # sampling as UDA does
    assert all(c["kwargs"]["do_sample"] and c["kwargs"]["temperature"] == 0.8 for c in generate_calls)


def test_input_rows_are_not_touched_and_rows_left_alone_are_the_same_objects(tiny_marian_pair):
    forward, backward = tiny_marian_pair
    rows = [{"text": t, "label": 0} for t in TEXTS]
    rows.append({"text": ["a", "token", "list"], "label": 1})  # not a text: passed through
    copies = [dict(r) for r in rows]
    out = bt(forward, backward, prob=0.5)(rows, random.Random(3))
    assert rows == copies
    assert out[-1] is rows[-1]
    kept = [new is old for new, old in zip(out, rows[:-1])]
    assert 0 < sum(kept) < len(kept)  # prob 0.5: some rows translated, the others passed through as they were

    both = bt(forward, backward, keep_original=True)(rows, random.Random(3))
    assert all(a is b for a, b in zip(both, rows))
    assert len(both) == 2 * len(rows) - 1 and all(r["text"] != t for r, t in zip(both[len(rows):], TEXTS))


def test_sampling_is_seeded_by_the_chunks_generator(tiny_marian_pair):
    forward, backward = tiny_marian_pair
    rows = [{"text": t} for t in TEXTS]
    augment = bt(forward, backward)
    state = torch.random.get_rng_state()
    first = augment(rows, random.Random("13:0"))
    assert torch.equal(torch.random.get_rng_state(), state)  # the run's own random stream is left as it was
    assert augment(rows, random.Random("13:0")) == first
    assert bt(forward, backward)(rows, random.Random("13:0")) == first  # a fresh load too
    assert augment(rows, random.Random("13:1")) != first


def test_beam_search_when_not_sampling(tiny_marian_pair, generate_calls):
    forward, backward = tiny_marian_pair
    rows = [{"text": t} for t in TEXTS[:3]]
    out = bt(forward, backward, sampling=False, num_beams=2)(rows, random.Random(0))
    assert out == bt(forward, backward, sampling=False, num_beams=2)(rows, random.Random(1))  # no randomness
    assert all(not c["kwargs"]["do_sample"] and c["kwargs"]["num_beams"] == 2 for c in generate_calls)


def test_max_batch_tokens_bounds_every_batch(tiny_marian_pair):
    forward, backward = tiny_marian_pair
    rows = [{"text": t} for t in TEXTS * 2]
    augment = bt(forward, backward, max_batch_tokens=120, max_new_tokens_ratio=1.0)
    out = augment(rows, random.Random(0))
    batches = augment.worker.batches  # (model, rows, padded length)
    assert len(out) == len(rows) and len(batches) > 4
    assert all(n * width * (1 + 1.0) <= 120 or n == 1 for _, n, width in batches)  # sampling: one beam
    assert sum(n for model, n, _ in batches if model == "forward") == len(rows)
    with_beams = bt(forward, backward, max_batch_tokens=120, max_new_tokens_ratio=0.5, sampling=False, num_beams=3)
    with_beams(rows[:6], random.Random(0))
    assert all(n * width * (1 + 0.5) * 3 <= 120 or n == 1 for _, n, width in with_beams.worker.batches)
    assert any(n > 1 for _, n, _ in with_beams.worker.batches)


def test_a_long_text_never_generates_past_the_decoders_positions(tiny_marian_pair, monkeypatch):
    """A text near the model's length limit: 1.5 times its length would run the decoder past its position table
    (an IndexError deep in the model); the new tokens stop at the decoder's last position. Every generation here
    is made to run to its limit (a random model may end early)."""
    from transformers import GenerationMixin

    original, limits = GenerationMixin.generate, []

    def to_the_limit(self, *args, **kwargs):
        limits.append(kwargs["max_new_tokens"])
        return original(self, *args, **kwargs, min_new_tokens=kwargs["max_new_tokens"])

    monkeypatch.setattr(GenerationMixin, "generate", to_the_limit)
    forward, backward = tiny_marian_pair
    augment = bt(forward, backward, split_sentences=False)
    augment([{"text": "paris"}], random.Random(0))  # the models load with the first rows
    direction = augment.worker.forward
    words = ["the", "movie", "was", "good", "and", "i", "loved", "the", "acting"]
    text = " ".join(words[i % len(words)] for i in range(400))
    while direction.lengths([text])[0] > direction.max_length:
        text = text.rsplit(" ", 1)[0]
    assert 1.5 * direction.lengths([text])[0] > direction.max_length  # would have gone past
    (out,) = augment([{"text": text}], random.Random(0))
    assert isinstance(out["text"], str) and max(limits) == direction.max_length - 1


def test_length_batches_restore_nothing_and_lose_nothing():
    lengths = [5, 1, 9, 9, 3, 7, 2]
    batches = length_batches(lengths, batch_size=2, max_tokens=20)
    assert sorted(i for b in batches for i in b) == list(range(7))
    assert [lengths[b[0]] for b in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)
    assert all(len(b) * lengths[b[0]] <= 20 or len(b) == 1 for b in batches)
    assert batches[0] == [2, 3]  # ties keep their order


def test_long_texts_are_translated_sentence_by_sentence(tiny_marian_pair, generate_calls):
    forward, backward = tiny_marian_pair
    assert sentences("The movie was good. I loved it!  \"Great,\" he said. 3 stars") == [
        "The movie was good.", "I loved it!", "\"Great,\" he said.", "3 stars"]
    out = bt(forward, backward)([{"text": "The movie was good. I loved it"}], random.Random(0))
    inputs = [i for c in generate_calls if c["folder"] == forward for i in c["inputs"]]
    assert len(inputs) == 2
    assert out[0]["text"] == " ".join(translation_of(generate_calls, backward, translation_of(
        generate_calls, forward, s)) for s in ("The movie was good.", "I loved it"))


def test_many_to_many_models_get_their_language_codes(tiny_m2m, generate_calls):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_m2m)
    with pytest.raises(ConfigError, match=r"augment\.back_translation\.forward: .* set source_lang and pivot_lang"):
        bt(tiny_m2m, tiny_m2m)([{"text": "good"}], random.Random(0))
    with pytest.raises(ConfigError, match=r"augment\.back_translation\.pivot_lang: 'xx' is not a language code"):
        bt(tiny_m2m, tiny_m2m, source_lang="en", pivot_lang="xx")([{"text": "good"}], random.Random(0))

    bt(tiny_m2m, tiny_m2m, source_lang="en", pivot_lang="de")([{"text": "the movie was good"}], random.Random(0))
    there, back = generate_calls
    assert there["kwargs"]["forced_bos_token_id"] == tokenizer.get_lang_id("de")
    assert back["kwargs"]["forced_bos_token_id"] == tokenizer.get_lang_id("en")
    assert there["inputs"][0][0] == tokenizer.get_lang_id("en") and back["inputs"][0][0] == tokenizer.get_lang_id("de")


def test_the_fingerprint_follows_the_model_files_not_their_place(tiny_marian_pair, tmp_path):
    forward, backward = tiny_marian_pair
    copy = shutil.copytree(forward, tmp_path / "copy")
    original = bt(forward, backward).fingerprint
    assert bt(copy, backward).fingerprint == original
    assert bt(backward, forward).fingerprint != original
    with open(copy / "generation_config.json", "a", encoding="utf-8") as file:
        file.write("\n")
    assert bt(copy, backward).fingerprint != original


def test_model_folders_are_checked_when_the_task_file_is_validated(tiny_marian_pair, tiny_mlm, tmp_path):
    forward, _ = tiny_marian_pair
    with pytest.raises(ValidationError) as caught:
        BackTranslationOptions.model_validate({"forward": str(tmp_path / "nowhere"), "backward": str(tiny_mlm)})
    issues = {i.path: i.message for i in pydantic_issues(caught.value, "augment.0", BackTranslationOptions)}
    assert issues["augment.0.forward"].startswith("no such folder; expected a local folder of a sequence-to-sequence "
                                                  "model (MarianMT")
    assert issues["augment.0.backward"].startswith("a bert model (BertForMaskedLM), not a sequence-to-sequence model")
    with pytest.raises(ValidationError, match=r"a marian model \(MarianMTModel\), not a masked language model"):
        ContextualOptions.model_validate({"model": str(forward)})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match=r"no config\.json in this folder"):
        ContextualOptions.model_validate({"model": str(tmp_path / "empty")})
    # relative to the task file's folder when the engine says where that is
    options = ContextualOptions.model_validate({"model": tiny_mlm.name}, context={"base_dir": tiny_mlm.parent})
    assert options.model == str(tiny_mlm)
    # a folder gone between validation and the run
    gone = BackTranslationOptions.model_construct(forward=str(tmp_path / "gone"), backward=str(forward))
    with pytest.raises(ConfigError, match=r"augment\.back_translation\.forward: '.*gone': no such folder"):
        back_translation(gone)


# --- contextual substitution --------------------------------------------------------------------------------------


def whole_words(folder: Path) -> set[str]:
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(folder).get_vocab()
    return {w for w in vocab if w.isalpha() and w not in STOP_WORDS}


def cs(folder: Path, **options) -> models.ModelAugmentation:
    return contextual_substitution(ContextualOptions(model=str(folder), **options))


def test_contextual_substitution_replaces_content_words_by_other_vocabulary_words(tiny_mlm):
    words = whole_words(tiny_mlm)
    rows = [{"text": t, "label": 0} for t in TEXTS] + [{"text": "The Movie, the END.", "text_pair": "a sad song"}]
    out = cs(tiny_mlm, p=0.5)(rows, random.Random(0))
    replaced = 0
    for old, new in zip(rows, out):
        for key in ("text", "text_pair") if "text_pair" in old else ("text",):
            before, after = old[key].split(), new[key].split()
            assert len(before) == len(after)
            changes = [(a, b) for a, b in zip(before, after) if a != b]
            content = [w for w in before if w.strip(",.").lower() not in STOP_WORDS]
            assert len(changes) == min(len(content), max(1, round(0.5 * len(before))))
            for a, b in changes:
                assert a.strip(",.").lower() not in STOP_WORDS
                assert b.strip(",.").lower() in words and b.lower() != a.lower()
            replaced += len(changes)
    assert replaced > 10
    last = out[-1]["text"].split()
    assert last[0] == "The" and last[2] == "the"  # stop words stay
    assert last[1][0].isupper() and last[1].endswith(",") and last[3].isupper() and last[3].endswith(".")


def test_contextual_substitution_in_tagging_replaces_words_outside_entities_one_for_one(tiny_mlm):
    rows = [
        {"text": ["john", "loved", "the", "movie", "in", "paris"], "label": ["B-PER", "O", "O", "O", "O", "B-LOC"]},
        {"text": ["mary", "watched", "a", "dark", "film"], "label": ["B-PER", "O", "O", "O", "O"]},
        {"text": ["london", "city"], "label": ["B-LOC", "I-LOC"]},  # nothing outside entities: left alone
    ]
    out = cs(tiny_mlm, p=1.0)(rows, random.Random(1))
    assert out[2] is rows[2]
    words = whole_words(tiny_mlm)
    for old, new in zip(rows[:2], out[:2]):
        assert new["label"] == old["label"] and len(new["text"]) == len(old["label"])
        for word, tag, replacement in zip(old["text"], old["label"], new["text"]):
            if tag != "O" or word in STOP_WORDS:
                assert replacement == word
            else:
                assert replacement != word and replacement in words
    # The same rows written as whitespace-separated strings (a tagging JSONL file may): the entities stay too.
    written = [{"text": " ".join(r["text"]), "label": " ".join(r["label"])} for r in rows]
    out = cs(tiny_mlm, p=1.0)(written, random.Random(1))
    for old, new in zip(written[:2], out[:2]):
        assert isinstance(new["text"], str) and new["label"] == old["label"]
        new_words = new["text"].split()
        assert len(new_words) == len(old["label"].split())
        for word, tag, replacement in zip(old["text"].split(), old["label"].split(), new_words):
            assert (replacement == word) == (tag != "O" or word in STOP_WORDS)
    # Tags that are no entity tags (parts of speech) cannot tell entities from other words: left alone.
    pos = {"text": ["john", "loved", "the", "movie"], "label": ["NNP", "VBD", "DT", "NN"]}
    assert cs(tiny_mlm, p=1.0)([pos], random.Random(1))[0] is pos


def test_contextual_substitution_is_seeded(tiny_mlm):
    rows = [{"text": t} for t in TEXTS]
    augment = cs(tiny_mlm, p=0.4, top_k=5)
    first = augment(rows, random.Random(7))
    assert augment(rows, random.Random(7)) == first
    assert augment(rows, random.Random(8)) != first
    assert cs(tiny_mlm, p=0.4, top_k=5).fingerprint == augment.fingerprint


def test_stop_words_can_be_chosen(tiny_mlm):
    rows = [{"text": "the movie"}]
    out = cs(tiny_mlm, stop_words=["movie"])(rows, random.Random(0))
    assert out[0]["text"].split()[1] == "movie" and out[0]["text"].split()[0] != "the"


# --- where and how they run ----------------------------------------------------------------------------------------


def test_the_device_is_the_training_device(monkeypatch):
    from engine_builtins.augmentations.generation import augmentation_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert augmentation_device() == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert augmentation_device() == torch.device("cuda", 1)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    assert augmentation_device() == torch.device("cpu")
    monkeypatch.delenv("ACCELERATE_USE_CPU")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as with CUDA_VISIBLE_DEVICES=""
    assert augmentation_device() == torch.device("cpu")


@pytest.mark.parametrize("terminal", [True, False])
def test_long_work_shows_engines_progress_bar(tiny_marian_pair, tiny_mlm, monkeypatch, terminal):
    import io

    from rich.console import Console

    from engine import console
    from engine_builtins.augmentations import generation

    shown = io.StringIO()
    monkeypatch.setattr(generation, "PROGRESS_TEXTS", 2)
    monkeypatch.setattr(console, "console", Console(file=shown, force_terminal=terminal, width=100))
    monkeypatch.setenv("ENGINE_PROGRESS_SECONDS", "0")
    forward, backward = tiny_marian_pair
    bt(forward, backward)([{"text": "the movie"}, {"text": "paris"}], random.Random(0))
    cs(tiny_mlm)([{"text": "the movie"}, {"text": "a good film"}], random.Random(0))
    assert "back-translation" in shown.getvalue() and "contextual substitution" in shown.getvalue()


# --- declaration --------------------------------------------------------------------------------------------------


def test_both_are_declared_with_their_shapes_and_without_torch():
    declared = {}
    models.declare(lambda name, factory, **kw: declared.update({name: kw}))
    assert declared["back_translation"]["shapes"] == ["single", "pair"]
    assert declared["contextual_substitution"]["shapes"] == ["single", "pair", "tokens"]
    code = "import sys, engine_builtins.augmentations.models; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
