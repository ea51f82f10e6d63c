"""The data cache verifies what it reads and never serves stale rows.

A damaged entry (garbage written into an Arrow file, a file cut short by a full disk or a killed copy) is reported
once, removed and made again, and ``engine cache`` marks it; a data file is known by its content (the sha256 the
run's manifest records), so an edit that keeps the size and the modification time is read again."""

import errno
import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from engine import digests
from engine.data import cache
from engine.data.features import encode_split
from engine.errors import EngineError
from engine.rundir.manifest import fingerprint
from engine.testing import engine_process
from engine_builtins.classification import ClassificationOptions
from engine_builtins.classification.classifier import ClassificationTask
from engine_builtins.formats import TableOptions, load_tsv


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(digests.TRUST_MTIME, raising=False)


def labelled(path: Path, labels: str = "01", rows: int = 40) -> Path:
    path.write_text("text\tlabel\n" + "".join(f"text number {i}\t{labels[i % 2]}\n" for i in range(rows)),
                    encoding="utf-8")
    return path


def entry_of(kind: str, source: Path) -> Path:
    """The one cache entry of ``kind`` made from ``source``."""
    found = [e.path for e in cache.entries() if e.kind == kind and e.info.get("source") == str(source)]
    assert len(found) == 1, found
    return found[0]


def garbage(path: Path, seed: int = 1) -> None:
    """Random bytes over the middle half of a file, its size kept (what a bad disk or a stray write leaves)."""
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    for i in range(len(data) // 4, 3 * len(data) // 4):
        data[i] = rng.randrange(256)
    path.write_bytes(bytes(data))


def cut_short(path: Path) -> None:
    """The file's first half, as a copy killed midway (or a full disk) leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def same_size_edit(path: Path, old: str, new: str) -> None:
    """Replace text by text of the same length and set the modification time back (``touch -r``)."""
    before = path.stat()
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(old, new), encoding="utf-8")
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


# --- damaged entries ----------------------------------------------------------------------------------------------


def test_garbage_in_a_cached_features_file_is_reported_once_and_the_run_succeeds(tiny_task, run_engine, tmp_path):
    """The issue's case: the next run died with a segmentation fault (or an Arrow traceback)."""
    task = tiny_task()
    assert run_engine("run", task).exit_code == 0
    features = entry_of("features", tmp_path / "train.tsv") / "features.arrow"
    garbage(features)
    listed = run_engine("cache")
    assert listed.exit_code == 0 and "DAMAGED: features.arrow holds other bytes than were written" in listed.stdout
    again = engine_process("run", task, "--overwrite", cwd=tmp_path)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output
    assert "Traceback" not in output
    assert output.count("is damaged") == 1
    assert f"data cache entry {features.parent} is damaged: features.arrow holds other bytes" in " ".join(output.split())
    assert "DAMAGED" not in run_engine("cache").stdout  # made again, intact


def test_a_truncated_rows_file_is_removed_and_read_again(tmp_path, capsys):
    path = labelled(tmp_path / "t.tsv")
    first = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    expected = list(first.rows)
    rows = entry_of("rows", path) / "rows.arrow"
    size = rows.stat().st_size
    cut_short(rows)
    capsys.readouterr()
    again = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    assert list(again.rows) == expected
    err = " ".join(capsys.readouterr().err.split())
    assert f"data cache entry {rows.parent} is damaged: rows.arrow has {size // 2:,} bytes where {size:,} were written" \
        in err
    assert cache.damage(rows.parent) is None and rows.stat().st_size == size
    load_tsv(TableOptions(train="t.tsv"), tmp_path)
    assert "damaged" not in capsys.readouterr().err  # reported once: the entry made again is intact


@pytest.mark.parametrize("damage", [garbage, cut_short, lambda p: p.unlink()], ids=["garbage", "cut short", "missing"])
def test_a_damaged_features_entry_is_made_again_with_the_same_features(tmp_path, tiny_model_dir, damage):
    labelled(tmp_path / "t.tsv")
    split = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    task = ClassificationTask(ClassificationOptions())
    task.fit(split)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    expected = encode_split(task, split, tokenizer, 16)[:]
    features = entry_of("features", tmp_path / "t.tsv") / "features.arrow"
    damage(features)
    assert cache.lookup("features", features.parent.name) is None and not features.parent.exists()
    assert encode_split(task, split, tokenizer, 16)[:] == expected


def test_the_cache_command_marks_damaged_entries_and_clear_removes_them(tmp_path, run_engine):
    for name in ("a.tsv", "b.tsv", "c.tsv", "d.tsv"):
        labelled(tmp_path / name)
        load_tsv(TableOptions(train=name), tmp_path)
    garbage(entry_of("rows", tmp_path / "a.tsv") / "rows.arrow")
    cut_short(entry_of("rows", tmp_path / "b.tsv") / "rows.arrow")
    (entry_of("rows", tmp_path / "c.tsv") / "info.json").write_text('{"kind": "ro', encoding="utf-8")
    listed = run_engine("cache")
    assert listed.exit_code == 0
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line.startswith("  ")}
    assert len(lines) == 4  # the entry whose info.json is unreadable is listed too
    damaged = [line for line in lines.values() if "DAMAGED" in line]
    assert len(damaged) == 3 and str(tmp_path / "d.tsv") not in " ".join(damaged)
    assert "rows.arrow holds other bytes than were written" in listed.stdout
    assert "rows.arrow has" in listed.stdout and "its info.json cannot be read" in listed.stdout
    assert "3 damaged entries" in listed.stdout
    assert run_engine("cache", "--clear").stdout.startswith("removed 4 entries")


def test_an_entry_without_checksums_is_damaged(tmp_path):
    labelled(tmp_path / "t.tsv")
    load_tsv(TableOptions(train="t.tsv"), tmp_path)
    entry = entry_of("rows", tmp_path / "t.tsv")
    info = json.loads((entry / "info.json").read_text(encoding="utf-8"))
    del info[cache.FILES]
    (entry / "info.json").write_text(json.dumps(info), encoding="utf-8")
    assert cache.damage(entry) == "its info.json records no checksums"
    (entry / "stray.arrow").write_bytes(b"x")
    info[cache.FILES] = cache.record(entry)
    del info[cache.FILES]["stray.arrow"]
    (entry / "info.json").write_text(json.dumps(info), encoding="utf-8")
    assert cache.damage(entry) == "it holds stray.arrow, which it did not write"


def test_a_damaged_entry_that_cannot_be_removed_is_one_clear_error(tmp_path, monkeypatch):
    labelled(tmp_path / "t.tsv")
    load_tsv(TableOptions(train="t.tsv"), tmp_path)
    entry = entry_of("rows", tmp_path / "t.tsv")
    garbage(entry / "rows.arrow")

    def refuse(self, target):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "rename", refuse)
    with pytest.raises(EngineError, match=f"entry {entry} is damaged: .* It cannot be removed .*remove that folder"):
        load_tsv(TableOptions(train="t.tsv"), tmp_path)


def test_a_full_disk_while_writing_the_cache_is_one_clear_error(tmp_path):
    def make(folder):
        (folder / "rows.arrow").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(EngineError, match=r"cannot write to the data cache at .*: No space left on device\. Free"):
        cache.build("rows", "k", make)
    assert cache.lookup("rows", "k") is None and not list((tmp_path / "cache" / "rows").iterdir())


# --- stale rows ---------------------------------------------------------------------------------------------------


def test_a_same_size_edit_with_the_modification_time_restored_is_read_again(tmp_path):
    path = labelled(tmp_path / "t.tsv")
    first = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    assert {row["label"] for row in first.rows} == {"0", "1"}
    same_size_edit(path, "\t0\n", "\tn\n")
    same_size_edit(path, "\t1\n", "\tp\n")
    again = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    assert {row["label"] for row in again.rows} == {"n", "p"}
    assert again.fingerprint != first.fingerprint


def test_a_file_copied_in_with_its_times_kept_is_read_again(tmp_path):
    """``cp -p`` of another version of the file, of the same size and modification time."""
    old, new = labelled(tmp_path / "old.tsv", "01"), labelled(tmp_path / "new.tsv", "np")
    os.utime(new, ns=(old.stat().st_atime_ns, old.stat().st_mtime_ns))
    shutil.copy2(old, tmp_path / "t.tsv")
    assert {row["label"] for row in load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"].rows} == {"0", "1"}
    shutil.copy2(new, tmp_path / "t.tsv")
    assert {row["label"] for row in load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"].rows} == {"n", "p"}


def test_the_run_trains_on_what_its_manifest_records(tiny_task, run_engine, tmp_path):
    """The cache key and the manifest are one sha256: a run after a same-size edit trains on the new labels."""
    task = tiny_task(labels=["0", "1"])
    assert run_engine("run", task).exit_code == 0
    for name in ("train.tsv", "validation.tsv"):
        same_size_edit(tmp_path / name, "\t0\n", "\tn\n")
        same_size_edit(tmp_path / name, "\t1\n", "\tp\n")
    assert run_engine("run", task, "--overwrite").exit_code == 0
    run = tmp_path / "runs" / "tiny"
    assert json.loads((run / "model" / "engine.json").read_text())["task_state"]["labels"] == ["n", "p"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["data"]["train"]["sha256"] == hashlib.sha256((tmp_path / "train.tsv").read_bytes()).hexdigest()


def test_a_data_file_is_hashed_once_per_process_while_unchanged(tmp_path, monkeypatch):
    path = labelled(tmp_path / "t.tsv")
    opened = []

    def counting_open(file, *args, **kwargs):
        if str(file) == str(path):
            opened.append(file)
        return open(file, *args, **kwargs)

    monkeypatch.setattr(digests, "open", counting_open, raising=False)
    monkeypatch.setattr(digests, "RACY", 0)  # the file was written just now; see the next test
    load_tsv(TableOptions(train="t.tsv"), tmp_path)
    assert fingerprint(path)["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    fingerprint(path)
    assert opened == [str(path)]  # the format's cache key and the manifest's two records: one read
    os.utime(path)  # the change time moves: read again
    fingerprint(path)
    assert len(opened) == 2


def test_a_file_changed_in_the_clock_tick_it_was_hashed_is_hashed_again(tmp_path):
    """The change time has the kernel clock's coarse grain: a file changed within ``RACY`` of being hashed is not
    remembered, so a same-size edit with its times restored in the same tick is still seen."""
    path = labelled(tmp_path / "t.tsv")
    before = digests.sha256(path)
    same_size_edit(path, "\t0\n", "\tn\n")
    assert digests.sha256(path) != before


def test_trusting_modification_times_skips_hashing_and_says_so_in_the_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv(digests.TRUST_MTIME, "1")
    path = labelled(tmp_path / "t.tsv")
    described = fingerprint(path)
    assert "sha256" not in described and described["bytes"] == path.stat().st_size
    assert described["mtime_ns"] == path.stat().st_mtime_ns
    first = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    same_size_edit(path, "\t0\n", "\tn\n")
    again = load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"]
    assert again.fingerprint == first.fingerprint  # the trade the user opted into
    os.utime(path)
    assert load_tsv(TableOptions(train="t.tsv"), tmp_path)["train"].fingerprint != first.fingerprint
