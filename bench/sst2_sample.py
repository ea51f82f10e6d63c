"""A seeded sample of SST-2 (../shared/data/sst2/train.tsv): training rows, and held-out rows it never trains on."""

from __future__ import annotations

import random
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def read_sst2(data_dir: Path) -> list[tuple[str, str]]:
    lines = (data_dir / "sst2" / "train.tsv").read_text(encoding="utf-8").split("\n")[1:]
    rows = [tuple(line.rsplit("\t", 1)) for line in lines if line.strip()]
    return [(" ".join(s.split()), label.strip()) for s, label in rows]


def sample(data_dir: Path, n_train: int, n_test: int, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Train and test rows drawn without overlap; test sentences never appear verbatim in train."""
    rows = read_sst2(data_dir)
    rng = random.Random(seed)
    rng.shuffle(rows)
    train = rows[:n_train]
    seen = {s for s, _ in train}
    test = [r for r in rows[n_train:] if r[0] not in seen][:n_test]
    return train, test


def write_tsv(rows: list[tuple[str, str]], path: Path) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in rows), encoding="utf-8")
    return path
