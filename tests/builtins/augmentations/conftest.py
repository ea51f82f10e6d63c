"""Tiny random models for the model-based augmentations, built locally in seconds (nothing is downloaded):

``tiny_marian_pair``  (forward, backward): two MarianMT models (one layer, width 16) with real MarianTokenizers on a
                      SentencePiece model trained here on a few hundred sentences of ``engine.testing.WORDS``
``tiny_m2m``          an M2M100 model (many-to-many, language codes as tokens) on the same SentencePiece model
``tiny_mlm``          a BertForMaskedLM with a WordPiece vocabulary of whole words, '##' pieces and characters
``one_torch_thread``  torch on one intra-op thread during a test (tiny models on a busy machine)
"""

from __future__ import annotations

import io
import json
import random
import string
import warnings
from pathlib import Path

import pytest

from engine.testing import WORDS


def sentencepiece_model() -> bytes:
    import sentencepiece

    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(400)]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=120, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, unk_id=1, eos_id=2, bos_id=-1, pad_id=-1, minloglevel=2)
    return model.getvalue()


def pieces(spm: bytes) -> list[str]:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_proto=spm)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def build_marian(directory: Path, spm: bytes, seed: int) -> Path:
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    directory.mkdir(parents=True)
    (directory / "source.spm").write_bytes(spm)
    (directory / "target.spm").write_bytes(spm)
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in pieces(spm):
        vocab.setdefault(piece, len(vocab))
    vocab["<pad>"] = pad = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Recommended: pip install sacremoses."
        MarianTokenizer(str(directory / "source.spm"), str(directory / "target.spm"),
                        str(directory / "vocab.json")).save_pretrained(directory)
    config = MarianConfig(
        vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=256,
        pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0)
    torch.manual_seed(seed)
    MarianMTModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_marian_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    quiet()
    spm = sentencepiece_model()
    root = tmp_path_factory.mktemp("marian")
    return build_marian(root / "en-xx", spm, seed=1), build_marian(root / "xx-en", spm, seed=2)


@pytest.fixture(scope="session")
def tiny_m2m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer

    quiet()
    spm = sentencepiece_model()
    directory = tmp_path_factory.mktemp("m2m")
    (directory / "sentencepiece.bpe.model").write_bytes(spm)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for piece in pieces(spm):
        vocab.setdefault(piece, len(vocab))
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = M2M100Tokenizer(str(directory / "vocab.json"), str(directory / "sentencepiece.bpe.model"))
    tokenizer.save_pretrained(directory)
    config = M2M100Config(
        vocab_size=len(vocab) + 128, d_model=16,  # the language codes' ids follow the vocabulary's
        encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=256,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    torch.manual_seed(3)
    M2M100ForConditionalGeneration(config).save_pretrained(directory)
    return directory


MLM_WORDS = [
    "movie", "film", "story", "plot", "actor", "music", "scene", "ending", "book", "song", "show", "game", "dog",
    "cat", "house", "city", "river", "good", "bad", "great", "long", "short", "funny", "sad", "dark", "bright",
    "loved", "hated", "watched", "read", "saw", "made", "john", "mary", "paris", "london",
]


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from engine_builtins.augmentations.synonyms import ENGLISH_STOP_WORDS as STOP_WORDS

    quiet()
    directory = tmp_path_factory.mktemp("tiny-mlm")
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", *chars, *(f"##{c}" for c in chars),
             "##ing", "##ed", "##ly", *sorted(STOP_WORDS), *MLM_WORDS]
    vocab = list(dict.fromkeys(vocab))
    BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True,
                      model_max_length=64).save_pretrained(directory)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(directory)
    return directory


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for these tiny models: on a busy 2-core machine, two threads wait on each other (a
    16-wide layer's generation step: 40 ms with two, 2 ms with one). Restored after each test."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
