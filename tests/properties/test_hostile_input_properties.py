"""Property-based tests (hypothesis) over what users feed engine: data files, `engine init`, `--set` and task files.

The property, everywhere: the code returns something sane, or raises one EngineError that names the file (and the
line or the JSON path); never another exception, never a signal. Examples are bounded and derandomized (seeded), so
the suite stays short and reproducible; a case hypothesis found is kept below as an explicit regression test.
"""

import json
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.cli.starter import starter
from engine.config.choice import resolve_choice
from engine.config.resolve import apply_overrides, read_task_file, resolve
from engine.errors import ConfigError, EngineError
from engine.plugins.manager import PluginManager

SETTINGS = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def registry():
    manager = PluginManager(only=())
    manager.load_entry_points()
    return manager.registry()


# --- data files ----------------------------------------------------------------------------------------------------

CELL = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
DELIMITERS = st.sampled_from(["\t", ",", ";", "|", " "])


@st.composite
def table_text(draw):
    """A header with some of text/label/other columns, then rows of random cells, random delimiters and quotes."""
    delimiter = draw(DELIMITERS)
    columns = draw(st.lists(st.sampled_from(["text", "label", "other", "text", '"q"', ""]), min_size=1, max_size=4))
    rows = draw(st.lists(st.lists(CELL, min_size=0, max_size=5), max_size=6))
    lines = [delimiter.join(columns), *(delimiter.join(r) for r in rows)]
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n"]))


JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | CELL,
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(CELL, inner, max_size=3),
                          max_leaves=6)


@st.composite
def jsonl_text(draw):
    records = draw(st.lists(st.dictionaries(st.sampled_from(["text", "label", "meta", "x"]), JSON_VALUE, max_size=4)
                            | JSON_VALUE, max_size=6))
    lines = [json.dumps(r) for r in records]
    if draw(st.booleans()) and lines:  # a line cut short, as by a full disk
        lines[-1] = lines[-1][: draw(st.integers(0, len(lines[-1])))]
    return "\n".join(lines) + "\n"


@st.composite
def conll_text(draw):
    token = st.text(alphabet=string.ascii_letters + "-_.'", min_size=1, max_size=6)
    tag = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-PER", "S-LOC", "U-ORG", "L-ORG", "I-ORG", "X"])
    separator = draw(st.sampled_from(["\t", " "]))
    sentences = draw(st.lists(st.lists(st.tuples(token, tag), max_size=5), max_size=4))
    return "\n\n".join("\n".join(f"{w}{separator}{t}" for w, t in s) for s in sentences) + "\n"


RANDOM_BYTES = st.binary(max_size=64).map(lambda b: b.decode("latin-1"))


def read_all(registry, fmt, path, encoding="utf-8"):
    issues: list = []
    section = {"format": fmt, "train": str(path), "encoding": encoding}
    choice = resolve_choice(registry, "load_data", section, "data", issues, key="format")
    assert not issues and choice is not None
    splits = choice.build(path.parent)
    return [dict(row) for row in splits["train"].rows]


def check_reads_or_one_error(registry, fmt, path, encoding="utf-8"):
    try:
        rows = read_all(registry, fmt, path, encoding)
    except EngineError as exc:
        assert path.name in str(exc), f"the message does not name the file: {exc}"
        return
    for row in rows:
        assert isinstance(row.get("_line"), int) and row["_line"] >= 1
        assert "text" in row  # JSON scalars stay as written; an object or list where text is expected is refused
        # when the task encodes it (tests/core/test_init.py)


@SETTINGS
@given(content=st.one_of(table_text(), RANDOM_BYTES),
       fmt=st.sampled_from(["tsv", "csv"]), encoding=st.sampled_from(["utf-8", "latin-1", "utf-16"]))
@example(content="\x00", fmt="tsv", encoding="utf-16")  # an odd byte count: a UnicodeDecodeError traceback once
def test_table_readers_read_or_refuse_with_the_file(registry, tmp_path_factory, content, fmt, encoding):
    path = tmp_path_factory.mktemp("data") / f"train.{fmt}"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    check_reads_or_one_error(registry, fmt, path, encoding)


@SETTINGS
@given(data=st.data())
@pytest.mark.parametrize(("fmt", "texts"), [("jsonl", jsonl_text()), ("conll", conll_text())])
def test_the_jsonl_and_conll_readers_read_or_refuse_with_the_file(registry, tmp_path_factory, fmt, texts, data):
    path = tmp_path_factory.mktemp("data") / f"train.{fmt}"
    path.write_bytes(data.draw(st.one_of(texts, RANDOM_BYTES)).encode("utf-8"))
    check_reads_or_one_error(registry, fmt, path)


# --- engine init ---------------------------------------------------------------------------------------------------


@SETTINGS
@given(content=st.one_of(table_text(), jsonl_text(), conll_text(), RANDOM_BYTES),
       suffix=st.sampled_from([".tsv", ".csv", ".jsonl", ".conll"]), raw_bytes=st.binary(max_size=32))
@example(content="sentence\nfine words here\n", suffix=".csv", raw_bytes=b"")
def test_init_writes_a_sane_task_file_or_refuses_with_the_file(tmp_path_factory, content, suffix, raw_bytes):
    folder = tmp_path_factory.mktemp("init")
    path = folder / f"train{suffix}"
    path.write_bytes(content.encode("utf-8") + raw_bytes)
    try:
        config, _ = starter(path, folder / "task.json")
    except EngineError as exc:
        assert str(path) in str(exc)
        return
    assert config["data"]["train"] == path.name and config["task"] in ("classification", "regression", "tagging")
    if suffix != ".conll":
        assert config["data"]["label"] not in ([config["data"]["text"]] if isinstance(config["data"]["text"], str)
                                               else config["data"]["text"])


# --- --set and the task file ---------------------------------------------------------------------------------------

KEY = st.lists(st.sampled_from(["training", "epochs", "0", "1", "head", "name", "data", "augment", "x", ""]),
               min_size=1, max_size=4).map(".".join)
OVERRIDE = st.tuples(KEY, st.sampled_from(["=", "", "=="]), st.one_of(CELL, JSON_VALUE.map(json.dumps))).map("".join)
TASKISH = st.dictionaries(st.sampled_from(["task", "training", "head", "augment", "data", "x"]), JSON_VALUE, max_size=4)


@SETTINGS
@given(raw=TASKISH, overrides=st.lists(OVERRIDE, max_size=4))
def test_set_overrides_apply_or_name_the_key(raw, overrides):
    try:
        result = apply_overrides(raw, overrides)
    except ConfigError as exc:
        assert exc.issues and all(isinstance(i.path, str) for i in exc.issues)
        return
    assert isinstance(result, dict)
    json.dumps(result)


SECTIONS = ["task", "model", "data", "augment", "head", "freeze", "adapter", "optimizer", "scheduler", "training",
            "metrics", "callbacks", "output_dir", "plugins", "search"]


@st.composite
def task_files(draw):
    """A task file with real section names holding random JSON, or a plausible base with one section spoiled."""
    base = {"task": "classification", "data": {"train": "train.tsv"}}
    spoiled = draw(st.dictionaries(st.sampled_from(SECTIONS), JSON_VALUE, max_size=3))
    return {**base, **spoiled} if draw(st.booleans()) else spoiled


@SETTINGS
@given(raw=task_files())
@example(raw={"task": "classification", "data": {"train": "train.tsv"}, "training": []})
def test_a_task_file_resolves_or_every_problem_has_a_path(registry, tmp_path_factory, raw):
    folder = tmp_path_factory.mktemp("task")
    (folder / "train.tsv").write_text("text\tlabel\ngood\tpos\n")
    path = folder / "task.json"
    path.write_text(json.dumps(raw))
    try:
        resolved = resolve(read_task_file(path), registry, source=path, base_dir=folder)
    except ConfigError as exc:
        assert exc.issues and str(path) in str(exc)
        return
    json.dumps(resolved.to_dict(), default=str)


@SETTINGS
@given(content=st.binary(max_size=80))
@example(content=b"\xef\xbb\xbf{}")
@example(content=b"[1, 2]")
def test_the_task_file_loader_reads_or_refuses_any_bytes(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("task") / "task.json"
    path.write_bytes(content)
    try:
        assert isinstance(read_task_file(path), dict)
    except ConfigError as exc:
        assert str(path) in str(exc)


