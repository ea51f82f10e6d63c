"""Rewrites by a model: back-translation through a sequence-to-sequence pair, contextual substitution by a masked
language model.

- ``back_translation`` (as UDA, Xie et al. 2019): each text to a pivot language through the ``forward`` model and
  back through the ``backward`` model, sentence by sentence, sampled (UDA's scripts sample at temperature 0.8) or by
  beam search; batched by length under a memory bound, on the training device.
- ``contextual_substitution`` (Kobayashi 2018, Wu et al. 2019): a share of the words, each masked whole, replaced by
  one of a masked language model's top fill-ins; in tagging (``tokens`` shape) only words tagged ``O``, one word for
  one word, so the tags stay aligned.

The model folders are local (``hf download Helsinki-NLP/opus-mt-en-de --local-dir models/opus-mt-en-de``) and
checked when the task file is validated, without torch. Each augmentation carries a ``fingerprint`` of its folders'
files, which joins the augmented split's cache key: a second run with the same data, options, seed and models reads
the cached rows and translates nothing, and a changed model folder is not served stale rows. The models are loaded
on the first chunk that needs them (``generation``, imported then).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from engine import Register
from engine.digests import describe
from engine.errors import ConfigError, ConfigIssue
from engine_builtins.augmentations.paths import folder_path
from engine_builtins.augmentations.synonyms import ENGLISH_STOP_WORDS

Rows = list[dict[str, Any]]

#: Joins the fingerprint: raise it when a change here changes what the augmentations produce from the same models.
CODE_VERSION = 1

SEQ2SEQ_EXAMPLES = "MarianMT (Helsinki-NLP/opus-mt-*), NLLB, M2M100, mBART, T5, BART"
MLM_EXAMPLES = "BERT, RoBERTa, DistilBERT, XLM-R, ELECTRA's generator"


# --- model folders, checked without torch -------------------------------------------------------------------------


def folder_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` is not a local model folder of ``kind`` (``"seq2seq"`` or ``"mlm"``), or None. Reads config.json
    only: no torch, no transformers."""
    examples = SEQ2SEQ_EXAMPLES if kind == "seq2seq" else MLM_EXAMPLES
    what = "sequence-to-sequence model" if kind == "seq2seq" else "masked language model"
    if not path.is_dir():
        return (f"no such folder; expected a local folder of a {what} ({examples}): download one with "
                f"`hf download ORG/NAME --local-dir FOLDER`")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no config.json in this folder: not a transformers model folder"
    except (OSError, ValueError) as exc:
        return f"its config.json cannot be read as JSON ({exc})"
    if not isinstance(config, dict):
        return "its config.json is not a JSON object"
    architectures = [str(a) for a in config.get("architectures") or []]
    named = f"a {config.get('model_type', '?')} model" + (f" ({', '.join(architectures)})" if architectures else "")
    if kind == "seq2seq":
        seq2seq = bool(config.get("is_encoder_decoder")) or any(
            a.endswith(("ForConditionalGeneration", "MTModel", "WithLMHead")) for a in architectures)
        if not seq2seq:
            return f"{named}, not a sequence-to-sequence model ({examples})"
    else:
        masked = not config.get("is_encoder_decoder") and (
            not architectures or any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in architectures))
        if not masked:
            return f"{named}, not a masked language model ({examples})"
    return None


def checked_folder(value: str, info: ValidationInfo, kind: str) -> str:
    base_dir = (info.context or {}).get("base_dir") if isinstance(info.context, dict) else None
    path = folder_path(value, base_dir)
    problem = folder_problem(path, kind)
    if problem is not None:  # pydantic_issues adds the value given; the path too when it is not that
        raise PydanticCustomError("model_folder", problem if str(path) == value else f"{str(path)!r}: {problem}")
    return str(path) if base_dir is not None else value


def require_folder(name: str, key: str, value: str, kind: str) -> Path:
    """The folder, or a ConfigError naming the option (for factories called without validation, and folders gone
    since)."""
    path = folder_path(value)
    problem = folder_problem(path, kind)
    if problem is not None:
        raise ConfigError([ConfigIssue(f"augment.{name}.{key}", f"{str(path)!r}: {problem}")])
    return path


def fingerprint(*folders: Path) -> str:
    """A digest of every file of the model folders (by content; by size and modification time under
    ``ENGINE_CACHE_TRUST_MTIME``), wherever the folders are."""
    digest = hashlib.sha256(f"{__name__}:{CODE_VERSION}".encode())
    for folder in folders:
        described = {k: v for k, v in describe(folder).items() if k != "path"}
        digest.update(json.dumps(described, sort_keys=True).encode())
    return digest.hexdigest()


# --- options ------------------------------------------------------------------------------------------------------


class RowOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prob: float = Field(1.0, gt=0, le=1, description="Share of the rows augmented.")
    keep_original: bool = Field(False, description="Add augmented copies instead of replacing rows.")


class BackTranslationOptions(RowOptions):
    forward: str = Field(description="Local folder of the sequence-to-sequence model that translates the texts into "
                                     "the pivot language (e.g. Helsinki-NLP/opus-mt-en-de, downloaded).")
    backward: str = Field(description="Local folder of the model that translates the pivot language back "
                                      "(e.g. Helsinki-NLP/opus-mt-de-en, downloaded). May be the forward folder for "
                                      "a many-to-many model (NLLB, M2M100).")
    source_lang: str | None = Field(None, description="The texts' language code, for models that translate between "
                                                      "many languages (NLLB: 'eng_Latn'; M2M100: 'en').")
    pivot_lang: str | None = Field(None, description="The pivot language's code, for such models (NLLB: "
                                                     "'deu_Latn'; M2M100: 'de').")
    forward_prefix: str = Field("", description="Put before each text given to the forward model (T5: 'translate "
                                                "English to German: '; a multilingual Marian model: '>>fra<< ').")
    backward_prefix: str = Field("", description="Put before each text given to the backward model.")
    sampling: bool = Field(True, description="Sample translations (as UDA does: more diverse paraphrases) rather "
                                             "than search for the likeliest (beam search).")
    temperature: float = Field(0.8, gt=0, description="Sampling temperature (UDA's scripts: 0.8); higher: more "
                                                      "diverse, less faithful.")
    top_p: float = Field(1.0, gt=0, le=1, description="Sample from the smallest set of tokens whose probability "
                                                      "reaches top_p (nucleus sampling); 1: from all.")
    num_beams: int = Field(4, ge=1, le=64, description="Beam search width when sampling is false.")
    max_new_tokens_ratio: float = Field(1.5, gt=0, le=10, description="Each translation stops after this many "
                                                                      "tokens per token of its batch's longest "
                                                                      "input, plus 8.")
    max_batch_tokens: int = Field(16384, ge=1, description="Memory bound: a batch's padded input tokens times (1 + "
                                                           "max_new_tokens_ratio) times the beams stay under it (a "
                                                           "longer single text runs alone).")
    batch_size: int = Field(64, ge=1, description="Texts translated at once, at most.")
    split_sentences: bool = Field(True, description="Translate each sentence on its own (translation models are "
                                                    "trained on sentences; long texts lose parts otherwise).")

    @field_validator("forward", "backward")
    @classmethod
    def _seq2seq_folder(cls, value: str, info: ValidationInfo) -> str:
        return checked_folder(value, info, "seq2seq")


class ContextualOptions(RowOptions):
    model: str = Field(description="Local folder of a masked language model (e.g. bert-base-uncased, roberta-base, "
                                   "downloaded), in the texts' language.")
    p: float = Field(0.15, gt=0, le=1, description="Share of the words replaced in an augmented text (at least one).")
    top_k: int = Field(10, ge=1, description="A replacement is drawn from the model's top_k whole-word fill-ins "
                                             "(never the word itself, never a subword piece).")
    temperature: float = Field(1.0, gt=0, description="Temperature of that draw; low: the likeliest fill-in.")
    stop_words: Literal["english"] | list[str] = Field(
        "english", description="Words never replaced nor put in: 'english' (EDA's list, NLTK's English stop words), "
        "or your own list ([] for none); compared in lower case.")
    batch_size: int = Field(32, ge=1, description="Texts the model reads at once.")

    @field_validator("model")
    @classmethod
    def _mlm_folder(cls, value: str, info: ValidationInfo) -> str:
        return checked_folder(value, info, "mlm")


# --- the augmentations --------------------------------------------------------------------------------------------


class ModelAugmentation:
    """An augmentation whose model loads (``make()``) on the first chunk that needs it: a cached augmented split
    loads none. ``fingerprint`` identifies the model files; the engine adds it to the augmented split's cache key."""

    def __init__(self, make: Callable[[], Callable[[Rows, random.Random], Rows]], folders: list[Path]) -> None:
        self.make = make
        self.fingerprint = fingerprint(*folders)
        self.worker: Callable[[Rows, random.Random], Rows] | None = None

    def __call__(self, rows: Rows, rng: random.Random) -> Rows:
        if self.worker is None:
            self.worker = self.make()
        return self.worker(rows, rng)


def back_translation(options: BackTranslationOptions) -> ModelAugmentation:
    """Translate each text to a pivot language and back (two local sequence-to-sequence models)."""
    forward, backward = (require_folder("back_translation", key, getattr(options, key), "seq2seq")
                         for key in ("forward", "backward"))

    def make() -> Callable[[Rows, random.Random], Rows]:
        from engine_builtins.augmentations.generation import BackTranslator

        return BackTranslator(options, forward, backward)

    return ModelAugmentation(make, [forward, backward])


def contextual_substitution(options: ContextualOptions) -> ModelAugmentation:
    """Replace a share of the words by a masked language model's fill-ins (tagging: only words outside entities)."""
    folder = require_folder("contextual_substitution", "model", options.model, "mlm")
    stop_words = ENGLISH_STOP_WORDS if options.stop_words == "english" else frozenset(options.stop_words)

    def make() -> Callable[[Rows, random.Random], Rows]:
        from engine_builtins.augmentations.generation import ContextualFiller

        return ContextualFiller(options, folder, stop_words)

    return ModelAugmentation(make, [folder])


def declare(register: Register) -> None:
    register("back_translation", back_translation, options=BackTranslationOptions,
             description="Translate each text to a pivot language and back through two local sequence-to-sequence "
                         "models (MarianMT, NLLB, T5), sampled as UDA does; cached by models, options and data.",
             shapes=["single", "pair"])
    register("contextual_substitution", contextual_substitution, options=ContextualOptions,
             description="Replace a share of the words by a local masked language model's whole-word fill-ins; in "
                         "tagging, only words tagged O, one for one.",
             shapes=["single", "pair", "tokens"])
