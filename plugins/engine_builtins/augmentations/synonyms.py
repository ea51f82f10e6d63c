"""Where ``synonym_replacement`` and ``random_insertion`` take their synonyms from (the option ``source``).

- ``"bundled"`` (the default): the synonym sets of Princeton WordNet 3.0 shipped inside engine
  (``data/wordnet-3.0-synonyms.tsv.xz``, 540 KB; ``data/README.md`` says how it was made, ``data/LICENSE-WordNet``
  is WordNet's license). Nothing is downloaded: it works offline right after ``pip install``.
- ``"wordnet"``: a WordNet the user has. With ``path``, a WordNet database folder (Princeton's ``dict/``, or any
  folder in its format such as Open English WordNet's WNDB release: ``data.noun``, ``data.verb``, ``data.adj``,
  ``data.adv``, read here, wndb(5)); without, NLTK's WordNet (``nltk`` with its ``wordnet`` data) when present, else
  the ``wn`` package's lexicon (``lexicon`` picks one, e.g. ``"oewn:2024"``).
- ``"nltk"`` or ``"wn"``: that one of the two, and no other.
- ``"thesaurus"``: a file of the user's (``path``), in one of two forms:

  * text, UTF-8, one group of synonyms per line, the words separated by commas, or by tabs when the line has a tab;
    a word may be a phrase (``look up``). A line may start with a part of speech and a colon (``noun: car, auto,
    automobile``); blank lines and lines starting with ``#`` are skipped. Every word of a group is a synonym of each
    other word of it::

        # my thesaurus
        happy, glad, cheerful
        adj: quick, fast, speedy
        verb: buy, purchase

  * JSON (a file named ``*.json``): an object from a word to its synonyms, a list of words, or an object from part
    of speech to a list (``{"car": ["auto", "automobile"], "fast": {"adj": ["quick"], "verb": ["abstain"]}}``); there
    a word's synonyms are the listed ones only (one way).

  A problem in the file is a ``DataError`` naming the file and the line, what was expected and what came.

Parts of speech are ``noun``, ``verb``, ``adj`` (WordNet's adjectives and satellite adjectives) and ``adv``; a group
without one (a thesaurus line without a prefix) is used whatever the option ``pos`` says.

Looking a word up: a word written in lower case matches the entries written in lower case only (so ``bush`` does
not take ``George Bush``'s synonyms, nor ``may`` the month's), a word with a capital matches entries in any case.
The bundled table, a WordNet folder and a thesaurus match words as they are written: WordNet's lemmas are base
forms, so ``dogs`` or ``ran`` find nothing there (and are left as they are); NLTK's reader finds ``dog`` and ``run``
through its ``morphy``, and the wn package searches as its ``Wordnet`` does. A word's synonyms are the other members
of every group it belongs to, in the source's order, each once (an order that does not depend on Python's hash
seed, so a seed gives the same rows in every process).

Relative paths in a task file's options are read from the task file's folder (``paths.from_task_folder``); here,
from the current directory.
"""

from __future__ import annotations

import gc
import hashlib
import json
import lzma
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from engine import ConfigError, DataError
from engine.errors import ConfigIssue, did_you_mean

POS = ("noun", "verb", "adj", "adv")
#: WordNet's synset types (wndb(5) ``ss_type``): satellite adjectives are adjectives here.
WORDNET_POS = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
#: WordNet's database files per part of speech: Unix names, then the old Windows names.
WORDNET_FILES = {"noun": ("data.noun", "noun.dat"), "verb": ("data.verb", "verb.dat"),
                 "adj": ("data.adj", "adj.dat"), "adv": ("data.adv", "adv.dat")}

DATA = Path(__file__).resolve().parent / "data"
BUNDLED = DATA / "wordnet-3.0-synonyms.tsv.xz"

#: EDA's stop words (Wei & Zou 2019, the list in their code: NLTK's English stop words): never replaced, and no
#: synonym of them is inserted.
ENGLISH_STOP_WORDS = frozenset((
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours", "yourself", "yourselves", "he",
    "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself", "they", "them", "their", "theirs",
    "themselves", "what", "which", "who", "whom", "this", "that", "these", "those", "am", "is", "are", "was", "were",
    "be", "been", "being", "have", "has", "had", "having", "do", "does", "did", "doing", "a", "an", "the", "and", "but",
    "if", "or", "because", "as", "until", "while", "of", "at", "by", "for", "with", "about", "against", "between",
    "into", "through", "during", "before", "after", "above", "below", "to", "from", "up", "down", "in", "out", "on",
    "off", "over", "under", "again", "further", "then", "once", "here", "there", "when", "where", "why", "how", "all",
    "any", "both", "each", "few", "more", "most", "other", "some", "such", "no", "nor", "not", "only", "own", "same",
    "so", "than", "too", "very", "s", "t", "can", "will", "just", "don", "should", "now"
))

Group = tuple[str | None, tuple[str, ...]]


class Source:
    """Synonyms by word: the groups a word belongs to (``groups``), filtered and cached by ``synonyms``."""

    #: What it is, for messages (``"WordNet 3.0 (bundled)"``, ``"thesaurus /data/my.txt"``).
    description = ""
    #: What identifies its content: goes into the augmented split's cache key (a changed file is not served stale).
    fingerprint = ""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, frozenset[str] | None, bool], tuple[str, ...]] = {}

    def groups(self, word: str) -> Iterable[Group]:
        """The (part of speech or None, members) of every group ``word`` belongs to."""
        raise NotImplementedError

    def synonyms(self, word: str, pos: frozenset[str] | None = None, single: bool = False) -> tuple[str, ...]:
        """The synonyms of ``word`` (itself excluded, in any case), each once, in the source's order: of the parts of
        speech in ``pos`` (None: any; a group without one always counts), single words only when ``single``."""
        key = (word, pos, single)
        found = self._cache.get(key)
        if found is None:
            groups = list(self.groups(word))
            if not groups:  # not cached: the words of a large corpus without synonyms (names, numbers, typos) are
                return ()   # unbounded, the source's words are not
            lower = word.lower()
            seen: dict[str, None] = {}
            for group_pos, members in groups:
                if pos is not None and group_pos is not None and group_pos not in pos:
                    continue
                if word == lower and word not in members and any(m.lower() == lower for m in members):
                    continue  # "bush" matched "Bush" (George Bush) only: a word in lower case takes lower-case entries
                for member in members:
                    if member.lower() != lower and not (single and " " in member):
                        seen[member] = None
            found = self._cache[key] = tuple(seen)
        return found


class Table(Source):
    """Synonym groups held in memory, indexed by their single-word members (or by ``keys`` where given)."""

    def __init__(self, groups: Iterable[tuple[str | None, Sequence[str], Sequence[str] | None]], description: str,
                 fingerprint: str) -> None:
        super().__init__()
        self.description, self.fingerprint = description, fingerprint
        self.table: list[Group] = []
        self.index: dict[str, list[int]] = {}  # a single-word member, lowered -> its groups
        collecting = gc.isenabled()
        gc.disable()  # a few hundred thousand small objects: the collector's passes would double the time
        try:
            for pos, members, keys in groups:
                gid = len(self.table)
                self.table.append((pos, tuple(members)))
                for member in members if keys is None else keys:
                    if " " in member:
                        continue  # a phrase is never looked up (texts are read word by word)
                    lowered = member.lower()
                    ids = self.index.get(lowered)
                    if ids is None:
                        self.index[lowered] = [gid]
                    elif ids[-1] != gid:
                        ids.append(gid)
        finally:
            if collecting:
                gc.enable()

    def groups(self, word: str) -> Iterator[Group]:
        for gid in self.index.get(word.lower(), ()):
            yield self.table[gid]

    def __len__(self) -> int:
        return len(self.table)


# --- the bundled table ------------------------------------------------------------------------------------------

_loaded: dict[Any, Source] = {}  # module-level cache: each source is read once per process


def bundled() -> Table:
    """WordNet 3.0's synonym sets as shipped in ``data/`` (read once per process)."""
    table = _loaded.get("bundled")
    if table is None:
        try:
            raw = BUNDLED.read_bytes()
        except OSError as exc:  # a broken install: the package data is missing
            raise DataError(f"the bundled synonym table is missing ({exc.strerror}); reinstall engine", BUNDLED) \
                from None
        text = lzma.decompress(raw).decode("utf-8")
        table = Table(_bundled_groups(text), "WordNet 3.0 (bundled)",
                      "bundled:" + hashlib.sha256(raw).hexdigest()[:16])
        _loaded["bundled"] = table
    assert isinstance(table, Table)
    return table


def _bundled_groups(text: str) -> Iterator[tuple[str | None, list[str], None]]:
    """The lines of the bundled table: ``POS<TAB>member<TAB>member...`` (``data/build_synonyms.py`` writes them)."""
    for line in text.splitlines():
        pos, *members = line.split("\t")
        yield pos, members, None


def write_table(groups: Iterable[Group], path: Path) -> int:
    """Write groups in the bundled table's format (xz-compressed; deterministic bytes); returns the lines written."""
    lines = [f"{pos}\t" + "\t".join(members) for pos, members in groups]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    return len(lines)


# --- a WordNet database folder ----------------------------------------------------------------------------------

_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")  # wndb(5): an adjective's syntactic marker, glued to the word


def wordnet_groups(folder: str | Path) -> Iterator[Group]:
    """The synsets of a WordNet database folder (``dict/``) with two or more distinct words, as groups, read from its
    ``data.*`` files (wndb(5)): part of speech, then the words, underscores read as spaces, adjective markers
    dropped. Raises ``ConfigError`` for a folder without data files, ``DataError`` (file and line) for a bad line."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ConfigError([ConfigIssue("path", f"{str(folder)!r} is not a folder: expected a WordNet database folder "
                                               "(WordNet's dict/, with data.noun, data.verb, data.adj, data.adv)")])
    found = False
    for pos in POS:
        path = next((folder / name for name in WORDNET_FILES[pos] if (folder / name).is_file()), None)
        if path is None:
            continue
        found = True
        yield from _wordnet_file(path)
    if not found:
        present = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
        raise ConfigError([ConfigIssue("path", f"{str(folder)!r} has none of WordNet's data files (data.noun, "
                                               f"data.verb, data.adj, data.adv); it holds: {present}")])


def _wordnet_file(path: Path) -> Iterator[Group]:
    for number, line in _lines(path):
        if not line.strip() or line.startswith(" "):  # the license header: lines starting with two spaces
            continue
        fields = line.split("|", 1)[0].split()
        problem = _synset_problem(fields)
        if problem:
            raise DataError(f"not a WordNet synset line: {problem} (wndb(5): 'offset lex_filenum ss_type w_cnt word "
                            f"lex_id ... p_cnt ... | gloss'); the line begins {line[:60]!r}", path, number)
        count = int(fields[3], 16)
        words: dict[str, None] = {}
        for word in fields[4 : 4 + 2 * count : 2]:
            word = _ADJ_MARKER.sub("", word).replace("_", " ")
            if word.lower() not in (w.lower() for w in words):
                words[word] = None
        if len(words) > 1:
            yield WORDNET_POS[fields[2]], tuple(words)


def _synset_problem(fields: list[str]) -> str:
    if len(fields) < 6:
        return f"{len(fields)} fields before the gloss, expected at least 6"
    if not fields[0].isdigit():
        return f"the offset is {fields[0]!r}, expected 8 digits"
    if fields[2] not in WORDNET_POS:
        return f"the synset type is {fields[2]!r}, expected one of n, v, a, s, r"
    try:
        count = int(fields[3], 16)
    except ValueError:
        return f"the word count is {fields[3]!r}, expected a two-digit hexadecimal number"
    if count < 1 or len(fields) < 4 + 2 * count:
        return f"the word count is {fields[3]!r} ({count}), but the line has {max(0, (len(fields) - 4) // 2)} words"
    return ""


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of a UTF-8 text file, numbered from 1, without their line ends; a ``DataError`` (file and line)
    for bytes that are not UTF-8."""
    try:
        with open(path, "rb") as file:
            for number, raw in enumerate(file, 1):
                try:
                    yield number, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    raise DataError(f"not UTF-8 text: byte {raw[exc.start]:#04x} at column {exc.start + 1}",
                                    path, number) from None
    except FileNotFoundError:
        raise DataError("no such file", path) from None
    except IsADirectoryError:
        raise DataError("is a folder, expected a file", path) from None


def wordnet_folder(folder: str | Path) -> Table:
    """A WordNet database folder as a table, read once per process while its files stay the same."""
    folder = Path(folder).expanduser().resolve()
    stamp = _stamp(folder / name for names in WORDNET_FILES.values() for name in names)
    key = ("folder", str(folder), stamp)
    if key not in _loaded:
        groups = list(wordnet_groups(folder))
        digest = hashlib.sha256(repr(groups).encode("utf-8")).hexdigest()[:16]
        _loaded[key] = Table(((pos, members, None) for pos, members in groups), f"WordNet folder {folder}",
                             f"wordnet-folder:{digest}")
    table = _loaded[key]
    assert isinstance(table, Table)
    return table


def _stamp(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    found = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


# --- a thesaurus file -------------------------------------------------------------------------------------------

_POS_PREFIX = re.compile(r"^\s*([A-Za-z]+)\s*:(.*)$")


def thesaurus(path: str | Path) -> Table:
    """A thesaurus file (text or JSON, see the module's docstring) as a table, read once per process while the
    file stays the same."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError("no such thesaurus file (source 'thesaurus' reads the file named by the option 'path')", path)
    resolved = path.resolve()
    key = ("thesaurus", str(resolved), _stamp([resolved]))
    if key not in _loaded:
        digest = hashlib.sha256(resolved.read_bytes()).hexdigest()[:16]
        groups = list(_json_groups(path) if path.suffix.lower() == ".json" else _text_groups(path))
        if not groups:
            raise DataError("no synonym groups in the file: expected lines such as 'happy, glad, cheerful'", path)
        _loaded[key] = Table(groups, f"thesaurus {path}", f"thesaurus:{digest}")
    table = _loaded[key]
    assert isinstance(table, Table)
    return table


def _text_groups(path: Path) -> Iterator[tuple[str | None, list[str], None]]:
    for number, line in _lines(path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pos: str | None = None
        prefix = _POS_PREFIX.match(line)
        if prefix:
            pos = prefix.group(1).lower()
            if pos not in POS:
                raise DataError(f"the line starts with {prefix.group(1) + ':'!r}, expected a part of speech (one of "
                                f"{', '.join(p + ':' for p in POS)}){did_you_mean(pos, POS)} or none", path, number)
            line = prefix.group(2).lstrip(" \t")  # "verb:<TAB>buy<TAB>purchase" as "verb: buy, purchase"
        separator = "\t" if "\t" in line else ","
        entries = [" ".join(entry.split()) for entry in line.split(separator)]
        while entries and not entries[-1]:  # a separator at the end of the line
            entries.pop()
        if "" in entries:
            where = entries.index("") + 1
            raise DataError(f"entry {where} is empty (two {'tabs' if separator == chr(9) else 'commas'} in a row, or "
                            "one at the start): expected words separated by commas, e.g. 'happy, glad, cheerful'",
                            path, number)
        words = list(dict.fromkeys(entries))
        if len({w.lower() for w in words}) < 2:
            raise DataError(f"a group of synonyms needs two words or more, found {len(words)}: {line.strip()!r} "
                            "(expected e.g. 'happy, glad, cheerful')", path, number)
        yield pos, words, None


def _json_groups(path: Path) -> Iterator[tuple[str | None, list[str], list[str]]]:
    text = "\n".join(line for _, line in _lines(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg} (column {exc.colno})", path, exc.lineno) from None
    if not isinstance(data, dict):
        raise DataError(f"expected a JSON object from each word to its synonyms, e.g. {{\"car\": [\"auto\"]}}; the "
                        f"file holds a {type(data).__name__}", path, 1)
    for word, value in data.items():
        line = _line_of(text, word)
        if not isinstance(word, str) or not word.strip() or " " in word.strip():
            raise DataError(f"the key {word!r} is not a word: expected a single word", path, line)
        if isinstance(value, dict):
            for pos, synonyms in value.items():
                if pos not in POS:
                    raise DataError(f"{word!r}: {pos!r} is not a part of speech, expected one of "
                                    f"{', '.join(POS)}{did_you_mean(pos, POS)}", path, line)
                yield pos, [word.strip(), *_json_words(synonyms, f"{word!r} ({pos})", path, line)], [word.strip()]
        else:
            yield None, [word.strip(), *_json_words(value, repr(word), path, line)], [word.strip()]


def _json_words(value: Any, what: str, path: Path, line: int) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise DataError(f"{what}: expected a list of synonyms (non-empty strings) such as [\"auto\", \"automobile\"], "
                        f"found {json.dumps(value)[:80]}", path, line)
    return [" ".join(v.split()) for v in value]


def _line_of(text: str, key: str) -> int:
    """The line where ``key`` first appears as a JSON string in ``text`` (1 when it cannot be found)."""
    at = text.find(json.dumps(key))
    if at < 0:
        at = text.find(json.dumps(key, ensure_ascii=False))
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


# --- NLTK's WordNet, the wn package -----------------------------------------------------------------------------

NLTK_POS = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}


class NltkWordNet(Source):
    """NLTK's WordNet reader (``nltk.corpus.wordnet``) over the data the user installed for it."""

    def __init__(self) -> None:
        super().__init__()
        try:
            from nltk.corpus import wordnet  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ConfigError([ConfigIssue("source", "source 'nltk' needs NLTK: pip install nltk, then python -m "
                                                     "nltk.downloader wordnet (or use source 'bundled')")]) from None
        try:
            wordnet.ensure_loaded()
        except LookupError:
            raise ConfigError([ConfigIssue("source", "NLTK is installed but its WordNet data is not: python -m "
                                                     "nltk.downloader wordnet (or use source 'bundled')")]) from None
        self.wordnet = wordnet
        version = str(getattr(wordnet, "get_version", lambda: "?")())
        self.description = f"NLTK WordNet {version}"
        self.fingerprint = f"nltk:{version}:{getattr(wordnet, 'root', '')}"

    def groups(self, word: str) -> Iterator[Group]:
        for synset in self.wordnet.synsets(word):
            yield NLTK_POS.get(synset.pos()), tuple(name.replace("_", " ") for name in synset.lemma_names())


class WnWordNet(Source):
    """The ``wn`` package's wordnet (``wn.Wordnet``) over a lexicon the user added (``wn.download``, ``wn.add``)."""

    def __init__(self, lexicon: str | None) -> None:
        super().__init__()
        try:
            import wn  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ConfigError([ConfigIssue("source", "source 'wn' needs the wn package: pip install wn, then python -m "
                                                     "wn download oewn (or use source 'bundled')")]) from None
        try:
            lexicons = wn.lexicons()
            if not lexicons:
                raise ConfigError([ConfigIssue("source", "the wn package has no lexicon: python -m wn download oewn, "
                                                         "or wn.add(FILE) (or use source 'bundled')")])
            if lexicon is None:
                english = [x for x in lexicons if str(x.language).lower().startswith("en")]
                chosen = (english or lexicons)[0]
                lexicon = f"{chosen.id}:{chosen.version}"
            self.wordnet = wn.Wordnet(lexicon)
        except wn.Error as exc:
            known = ", ".join(f"{x.id}:{x.version}" for x in wn.lexicons())
            raise ConfigError([ConfigIssue("lexicon", f"the wn package cannot open lexicon {lexicon!r} ({exc}); its "
                                                      f"lexicons: {known or 'none'}")]) from None
        self.description = f"wn lexicon {lexicon}"
        self.fingerprint = f"wn:{lexicon}"

    def groups(self, word: str) -> Iterator[Group]:
        for synset in self.wordnet.synsets(word):
            yield NLTK_POS.get(synset.pos), tuple(synset.lemmas())


def nltk_has_wordnet() -> bool:
    """Whether NLTK and its WordNet data are installed (no download is tried)."""
    try:
        from nltk.corpus import wordnet
    except ImportError:
        return False
    try:
        wordnet.ensure_loaded()
    except LookupError:
        return False
    return True


def load(source: str, path: str | None = None, lexicon: str | None = None) -> Source:
    """The source the options name (see the module's docstring), read once per process."""
    if source == "bundled":
        return bundled()
    if source == "thesaurus":
        if path is None:
            raise ConfigError([ConfigIssue("path", "source 'thesaurus' reads a file: name it with 'path'")])
        return thesaurus(path)
    if source == "wordnet" and path is not None:
        return wordnet_folder(path)
    if source == "nltk" or (source == "wordnet" and lexicon is None and nltk_has_wordnet()):
        key: Any = "nltk"
        if key not in _loaded:
            _loaded[key] = NltkWordNet()
        return _loaded[key]
    if source in ("wn", "wordnet"):
        key = ("wn", lexicon)
        if key not in _loaded:
            try:
                _loaded[key] = WnWordNet(lexicon)
            except ConfigError as exc:
                if source == "wordnet":
                    raise ConfigError([ConfigIssue("source", "source 'wordnet' found no WordNet: give a WordNet "
                                                             "database folder as 'path' (WordNet's dict/), install "
                                                             "NLTK's (pip install nltk; python -m nltk.downloader "
                                                             "wordnet) or the wn package's (pip install wn; python -m "
                                                             "wn download oewn), or use source 'bundled' (" +
                                                             "; ".join(i.message for i in exc.issues) + ")")]) \
                        from None
                raise
        return _loaded[key]
    raise ConfigError([ConfigIssue("source", f"unknown synonym source {source!r}; expected one of bundled, wordnet, "
                                             "nltk, wn, thesaurus")])
