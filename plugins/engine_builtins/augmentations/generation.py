"""The heavy half of ``models``: loading the models, batching by length, generating and filling masks.

Imported when an augmentation first needs its model, so declaring the augmentations (and ``engine validate``)
imports no torch. Texts go through in batches of similar length, longest first (a batch that runs out of memory
shows up at once, and is split in two and retried), and come back in their order. Sampling draws from torch's
generator seeded by the chunk's generator, inside a forked random state: the run's other random streams are
untouched, and a chunk gives the same rows on every run.
"""

from __future__ import annotations

import math
import os
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from engine import console
from engine.errors import ConfigError, ConfigIssue, EngineError
from engine_builtins.augmentations.lexical import tagged

Rows = list[dict[str, Any]]

PROGRESS_TEXTS = 256  # a chunk with this many texts to run through a model shows a progress bar
NEW_TOKENS_SLACK = 8  # tokens a translation may add beyond max_new_tokens_ratio times its batch's longest input
OUTSIDE = "O"  # the tag of words outside entities, the only ones contextual substitution replaces in tagging

# Sentence ends: after . ! ? (and a closing quote or bracket), before what starts a sentence.
_SENTENCE_END = re.compile(r"([.!?][\"'”’)\]]?)\s+(?=[\"'“‘(\[]?[A-Z0-9À-Ý])")
_WORD_PARTS = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)  # leading punctuation, the word, trailing punctuation


def augmentation_device() -> torch.device:
    """The device training uses: CUDA when torch sees one (``CUDA_VISIBLE_DEVICES=""`` hides them), unless
    ``ACCELERATE_USE_CPU`` says otherwise; this process's GPU under a distributed launch (``LOCAL_RANK``)."""
    if os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes") \
            or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_error(name: str, key: str, folder: Path, exc: BaseException) -> ConfigError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    hint = " (pip install sentencepiece: Marian and other SentencePiece tokenizers need it)" \
        if "sentencepiece" in str(exc).lower() else ""
    return ConfigError([ConfigIssue(f"augment.{name}.{key}", f"cannot load {str(folder)!r}: {first}{hint}")])


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: float, factor: float = 1.0) -> list[list[int]]:
    """Indices of ``lengths`` in batches, longest first: at most ``batch_size`` each, and a batch's padded tokens
    (its count times its longest length) times ``factor`` at most ``max_tokens``, unless it holds one item."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else None
        if batch is not None and len(batch) < batch_size \
                and (len(batch) + 1) * lengths[batch[0]] * factor <= max_tokens:
            batch.append(i)
        else:
            batches.append([i])
    return batches


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """torch's random state seeded with ``seed`` inside, and restored after (the CPU's and ``device``'s)."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextmanager
def placed(models: Sequence[torch.nn.Module], device: torch.device) -> Iterator[None]:
    """The models on ``device`` inside; back on the CPU after, on a GPU, so that training has its memory."""
    for model in models:
        model.to(device)
    try:
        yield
    finally:
        if device.type == "cuda":
            for model in models:
                model.to("cpu")
            torch.cuda.empty_cache()


def bar(total: int) -> Any:
    """A transient progress bar for long work (engine's, on standard error), or nothing."""
    return console.progress(transient=True) if total >= PROGRESS_TEXTS else nullcontext()


def out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def split_on_oom(run: Callable[[list[int]], list[Any]], batch: list[int], hint: str) -> list[Any]:
    """``run(batch)``; on running out of memory, the two halves one after the other."""
    try:
        return run(batch)
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not out_of_memory(exc):
            raise
        if len(batch) == 1:
            raise EngineError(f"out of memory on a single text; {hint}") from None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    half = len(batch) // 2
    return split_on_oom(run, batch[:half], hint) + split_on_oom(run, batch[half:], hint)


def sentences(text: str) -> list[str]:
    """A text's sentences (a simple splitter: after . ! ? before a capital or a digit)."""
    return [s for s in _SENTENCE_END.sub("\\1\n", " ".join(text.split())).split("\n") if s]


# --- back-translation ---------------------------------------------------------------------------------------------


class Direction:
    """One translation model: its tokenizer, the language codes it needs, and batched generation."""

    def __init__(self, folder: Path, key: str, prefix: str, source: tuple[str, str | None],
                 target: tuple[str, str | None]) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        quiet_transformers()
        self.folder, self.key, self.prefix = folder, key, prefix
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            with torch.random.fork_rng(devices=[]):  # building a model draws from the run's random stream
                self.model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
        except (OSError, ValueError, KeyError, ImportError, AttributeError) as exc:
            raise load_error("back_translation", key, folder, exc) from None
        if not getattr(self.model.config, "is_encoder_decoder", False):
            raise ConfigError([ConfigIssue(f"augment.back_translation.{key}",
                                           f"{str(folder)!r} is not a sequence-to-sequence model")])
        self.forced_bos: int | None = None
        if hasattr(self.tokenizer, "src_lang"):  # NLLB, M2M100, mBART-50: language codes as tokens
            self._set_languages(source, target)
        limit = int(getattr(self.tokenizer, "model_max_length", 0) or 0)
        positions = getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = min(limit if 0 < limit < 100_000 else 512, int(positions or 512))

    def _set_languages(self, source: tuple[str, str | None], target: tuple[str, str | None]) -> None:
        path = f"augment.back_translation.{self.key}"
        missing = [name for name, code in (source, target) if not code]
        if missing:
            raise ConfigError([ConfigIssue(path, f"{str(self.folder)!r} translates between many languages: set "
                                                 f"{' and '.join(missing)} (its language codes, e.g. 'eng_Latn' "
                                                 "and 'deu_Latn' for NLLB, 'en' and 'de' for M2M100)")])
        ids = {}
        for name, code in (source, target):
            found = self._language_id(str(code))
            if found is None:
                raise ConfigError([ConfigIssue(f"augment.back_translation.{name}",
                                               f"{code!r} is not a language code of {str(self.folder)!r}")])
            ids[name] = found
        self.tokenizer.src_lang = source[1]
        self.forced_bos = ids[target[0]]

    def _language_id(self, code: str) -> int | None:
        tokenizer = self.tokenizer
        if hasattr(tokenizer, "get_lang_id"):  # M2M100: 'de' -> '__de__'
            try:
                return int(tokenizer.get_lang_id(code))
            except (KeyError, ValueError):
                return None
        found = tokenizer.convert_tokens_to_ids(code)
        return None if not isinstance(found, int) or found == tokenizer.unk_token_id else found

    def lengths(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer([self.prefix + t for t in texts])["input_ids"]]

    def translate(self, texts: list[str], options: Any, device: torch.device, advance: Callable[[int], None],
                  count: Callable[[list[int]], None] | None = None) -> list[str]:
        """``texts`` translated, in their order; a text the model cannot take whole (longer than its limit) comes
        back as ''. ``count`` sees each batch's (rows, padded length)."""
        result = [""] * len(texts)
        lengths = self.lengths(texts)
        todo = [i for i, n in enumerate(lengths) if n <= self.max_length]
        advance(len(texts) - len(todo))
        beams = 1 if options.sampling else options.num_beams
        factor = (1 + options.max_new_tokens_ratio) * beams
        hint = "lower max_batch_tokens or use shorter texts"

        def run(batch: list[int]) -> list[str]:
            encoded = self.tokenizer([self.prefix + texts[todo[i]] for i in batch], return_tensors="pt",
                                     padding=True).to(device)
            width = int(encoded["input_ids"].shape[1])
            if count is not None:
                count([len(batch), width])
            settings: dict[str, Any] = {  # never past the decoder's positions (with its start token)
                "max_new_tokens": min(math.ceil(options.max_new_tokens_ratio * width) + NEW_TOKENS_SLACK,
                                      self.max_length - 1),
                "num_return_sequences": 1,
            }
            if options.sampling:
                settings.update(do_sample=True, temperature=options.temperature, top_p=options.top_p, top_k=0,
                                num_beams=1)
            else:
                settings.update(do_sample=False, num_beams=options.num_beams)
            if self.forced_bos is not None:
                settings["forced_bos_token_id"] = self.forced_bos
            with torch.inference_mode():
                output = self.model.generate(**encoded, **settings)
            advance(len(batch))
            return [t.strip() for t in self.tokenizer.batch_decode(output, skip_special_tokens=True)]

        todo_lengths = [lengths[i] for i in todo]
        for batch in length_batches(todo_lengths, options.batch_size, options.max_batch_tokens, factor):
            for i, text in zip(batch, split_on_oom(run, batch, hint)):
                result[todo[i]] = text
        return result


class BackTranslator:
    """``back_translation``'s work on a chunk of rows."""

    def __init__(self, options: Any, forward: Path, backward: Path) -> None:
        self.options = options
        self.device = augmentation_device()
        source, pivot = ("source_lang", options.source_lang), ("pivot_lang", options.pivot_lang)
        self.forward = Direction(forward, "forward", options.forward_prefix, source, pivot)
        self.backward = Direction(backward, "backward", options.backward_prefix, pivot, source)
        self.batches: list[tuple[str, int, int]] = []  # (direction, rows, padded length) of the last chunk's batches

    def __call__(self, rows: Rows, rng: random.Random) -> Rows:
        options = self.options
        pieces: list[str] = []  # the sentences to translate
        jobs: list[tuple[int, dict[str, tuple[int, int]]]] = []  # row -> field -> (first piece, count)
        for i, row in enumerate(rows):
            if rng.random() >= options.prob:
                continue
            fields = {}
            for key in ("text", "text_pair"):
                value = row.get(key)
                if isinstance(value, str) and value.strip():
                    parts = sentences(value) if options.split_sentences else [" ".join(value.split())]
                    fields[key] = (len(pieces), len(parts))
                    pieces.extend(parts)
            if fields:
                jobs.append((i, fields))
        seed = rng.getrandbits(63)
        if not pieces:
            return list(rows)
        back = self.round_trip(pieces, seed)
        changed: dict[int, dict[str, Any]] = {}
        for i, fields in jobs:
            row, new = rows[i], None
            for key, (start, n) in fields.items():
                text = " ".join(b or p for p, b in zip(pieces[start:start + n], back[start:start + n]))
                if text != " ".join(row[key].split()):
                    new = new or dict(row)
                    new[key] = text
            if new is not None:
                changed[i] = new
        return assemble(rows, changed, options.keep_original)

    def round_trip(self, pieces: list[str], seed: int) -> list[str]:
        self.batches = []  # the last chunk's only: a large split has thousands of chunks

        def counter(name: str) -> Callable[[list[int]], None]:
            return lambda shape: self.batches.append((name, shape[0], shape[1]))

        with placed([self.forward.model, self.backward.model], self.device), seeded(seed, self.device), \
                bar(len(pieces)) as progress:
            job = progress.add_task("back-translation", total=2 * len(pieces), unit="texts", postfix="") \
                if progress is not None else None

            def advance(n: int) -> None:
                if progress is not None:
                    progress.advance(job, n)

            pivot = self.forward.translate(pieces, self.options, self.device, advance, counter("forward"))
            kept = [i for i, text in enumerate(pivot) if text]
            advance(len(pieces) - len(kept))
            back = [""] * len(pieces)
            translated = self.backward.translate([pivot[i] for i in kept], self.options, self.device, advance,
                                                 counter("backward"))
            for i, text in zip(kept, translated):
                back[i] = text
        return back


def assemble(rows: Rows, changed: dict[int, dict[str, Any]], keep_original: bool) -> Rows:
    """The chunk's rows out: changed rows in place of theirs, or (``keep_original``) after all the originals. Rows
    left unchanged are the same objects."""
    if keep_original:
        return [*rows, *(changed[i] for i in sorted(changed))]
    return [changed.get(i, row) for i, row in enumerate(rows)]


# --- contextual substitution --------------------------------------------------------------------------------------


def split_word(word: str) -> tuple[str, str, str]:
    """(leading punctuation, the word, trailing punctuation)."""
    match = _WORD_PARTS.match(word)
    assert match is not None  # the pattern matches any string
    return match.group(1), match.group(2), match.group(3)


def same_case(candidate: str, original: str) -> str:
    if len(original) > 1 and original.isupper():
        return candidate.upper()
    if original[:1].isupper():
        return candidate[:1].upper() + candidate[1:]
    return candidate


class ContextualFiller:
    """``contextual_substitution``'s work on a chunk of rows."""

    def __init__(self, options: Any, folder: Path, stop_words: Iterable[str]) -> None:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        quiet_transformers()
        self.options = options
        self.device = augmentation_device()
        self.stop_words = {w.casefold() for w in stop_words}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            with torch.random.fork_rng(devices=[]):  # building a model draws from the run's random stream
                self.model = AutoModelForMaskedLM.from_pretrained(folder).eval()
        except (OSError, ValueError, KeyError, ImportError, AttributeError) as exc:
            raise load_error("contextual_substitution", "model", folder, exc) from None
        if self.tokenizer.mask_token is None:
            raise ConfigError([ConfigIssue("augment.contextual_substitution.model",
                                           f"{str(folder)!r}: its tokenizer has no mask token")])
        limit = int(getattr(self.tokenizer, "model_max_length", 0) or 0)
        positions = getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = min(limit if 0 < limit < 100_000 else 512, int(positions or 512))
        self._candidates()

    def _candidates(self) -> None:
        """Which vocabulary entries may replace a word: whole words (a WordPiece '##' continuation, or a
        SentencePiece or byte-level BPE piece without its word-start mark, is not one) of letters, not special,
        not stop words; and each entry's word."""
        tokenizer = self.tokenizer
        vocab: dict[str, int] = tokenizer.get_vocab()
        size = int(self.model.get_output_embeddings().weight.shape[0])
        tokens = list(vocab)
        if any(t.startswith("##") for t in tokens):
            def start(t: str) -> bool:
                return not t.startswith("##")
        elif sum(t.startswith("▁") for t in tokens) > len(tokens) / 10:
            def start(t: str) -> bool:
                return t.startswith("▁")
        elif sum(t.startswith("Ġ") for t in tokens) > len(tokens) / 10:
            def start(t: str) -> bool:
                return t.startswith("Ġ")
        else:
            def start(t: str) -> bool:
                return True
        special = set(tokenizer.all_special_tokens)
        allowed = torch.zeros(size, dtype=torch.bool)
        self.words: dict[int, str] = {}
        self.ids_of: dict[str, list[int]] = {}  # a word (casefolded) -> the entries that spell it
        for token, index in vocab.items():
            if index >= size or token in special or not start(token):
                continue
            word = tokenizer.convert_tokens_to_string([token]).strip()
            if not word.isalpha() or word.casefold() in self.stop_words:
                continue
            allowed[index] = True
            self.words[index] = word
            self.ids_of.setdefault(word.casefold(), []).append(index)
        self.allowed = allowed

    def replaceable(self, word: str) -> bool:
        core = split_word(word)[1]
        return core.isalpha() and core.casefold() not in self.stop_words

    def __call__(self, rows: Rows, rng: random.Random) -> Rows:
        options = self.options
        jobs: list[tuple[int, str, list[str], list[int]]] = []  # (row, field, words, the indices to replace)
        for i, row in enumerate(rows):
            if rng.random() >= options.prob:
                continue
            found = tagged(row)  # tokens: one tag per word, the text a list of words or a string of them
            for key in ("text", "text_pair"):
                value, tags = row.get(key), None
                if key == "text" and found is not None:
                    words, tags = found
                elif isinstance(value, str):
                    words = value.split()
                else:  # a list of words whose tags cannot be read (or do not align) is left as it is
                    continue
                eligible = [j for j, w in enumerate(words)
                            if (tags is None or tags[j] == OUTSIDE) and self.replaceable(w)]
                if eligible:
                    n = min(len(eligible), max(1, round(options.p * len(words))))
                    jobs.append((i, key, words, sorted(rng.sample(eligible, n))))
        seed = rng.getrandbits(63)
        if not jobs:
            return list(rows)
        fills = self.fill([(words, chosen) for _, _, words, chosen in jobs], seed)
        changed: dict[int, dict[str, Any]] = {}
        for (i, key, words, chosen), fill in zip(jobs, fills):
            new_words = list(words)
            for j, candidate in zip(chosen, fill):
                if candidate is not None:
                    before, core, after = split_word(words[j])
                    new_words[j] = before + same_case(candidate, core) + after
            if new_words != words:
                new = changed.setdefault(i, dict(rows[i]))
                new[key] = " ".join(new_words) if isinstance(rows[i][key], str) else new_words
        return assemble(rows, changed, options.keep_original)

    def fill(self, jobs: list[tuple[list[str], list[int]]], seed: int) -> list[list[str | None]]:
        """For each (words, indices): a fill-in for each index (None where the text was cut before it), each word
        masked whole by one mask token, all of a text's at once."""
        tokenizer, mask = self.tokenizer, str(self.tokenizer.mask_token)
        texts = []
        for words, chosen in jobs:
            masked = list(words)
            for j in chosen:
                before, _, after = split_word(words[j])
                masked[j] = before + mask + after
            texts.append(" ".join(masked))
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]]
        result: list[list[str | None]] = [[None] * len(chosen) for _, chosen in jobs]
        generator = torch.Generator().manual_seed(seed)
        allowed = self.allowed.to(self.device)
        with placed([self.model], self.device), bar(len(texts)) as progress:
            job = progress.add_task("contextual substitution", total=len(texts), unit="texts", postfix="") \
                if progress is not None else None
            for batch in length_batches(lengths, self.options.batch_size, float("inf")):
                encoded = tokenizer([texts[k] for k in batch], return_tensors="pt", padding=True, truncation=True,
                                    max_length=self.max_length).to(self.device)
                with torch.inference_mode():
                    logits = self.model(**encoded).logits
                where = (encoded["input_ids"] == tokenizer.mask_token_id).nonzero().tolist()
                owners: list[tuple[int, int]] = []  # (job, which of its masks) of each masked position
                seen: dict[int, int] = {}
                for row, _ in where:
                    owners.append((batch[row], seen.get(row, 0)))
                    seen[row] = seen.get(row, 0) + 1
                odd = {batch[row] for row, n in seen.items() if n > len(jobs[batch[row]][1])}  # the text had masks
                keep = [n for n, (k, _) in enumerate(owners) if k not in odd]
                if keep:
                    scores = logits[[where[n][0] for n in keep], [where[n][1] for n in keep]].float()
                    scores = scores.masked_fill(~allowed, float("-inf"))
                    for row_of_scores, n in enumerate(keep):
                        k, m = owners[n]
                        original = split_word(jobs[k][0][jobs[k][1][m]])[1]
                        scores[row_of_scores, self.ids_of.get(original.casefold(), [])] = float("-inf")
                    for n, choice in zip(keep, self.draw(scores, generator)):
                        k, m = owners[n]
                        result[k][m] = choice
                if progress is not None:
                    progress.advance(job, len(batch))
        return result

    def draw(self, scores: torch.Tensor, generator: torch.Generator) -> list[str | None]:
        """One word per row of ``scores`` (masked positions x vocabulary), from its top_k at the temperature."""
        top = scores.topk(min(self.options.top_k, scores.shape[1]), dim=1)
        values, indices = top.values.cpu(), top.indices.cpu()
        chosen: list[str | None] = []
        for row_values, row_indices in zip(values, indices):
            finite = torch.isfinite(row_values)
            if not finite.any():
                chosen.append(None)
                continue
            probabilities = torch.softmax(row_values[finite] / self.options.temperature, dim=0)
            pick = int(torch.multinomial(probabilities, 1, generator=generator))
            chosen.append(self.words[int(row_indices[finite][pick])])
        return chosen
