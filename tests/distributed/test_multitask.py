"""A multi-task run under two processes follows the one-task rule: two processes at batch B train on the very
batches one process at 2 x B does (every process draws the same task for a batch and takes its share of it), so
the weights agree up to float summation order (docs/multitask.md)."""

import json
import random

import pytest
from safetensors.torch import load_file

from engine.testing import build_tiny_model, labelled_rows

TOLERANCE = 1e-5  # as tests/distributed/test_matrix.py: only summation order and padding lengths differ
WORDS = ["john", "paul", "paris", "berlin", "the", "a", "good", "film"]


def conll(rng: random.Random, n: int) -> str:
    return "\n".join("".join(f"{w}\t{'B-PER' if w in ('john', 'paul') else 'B-LOC' if w in ('paris', 'berlin') else 'O'}\n"
                             for w in rng.sample(WORDS, rng.randint(2, 6))) for _ in range(n))


def write(folder, model, streamed=False):
    rng = random.Random(4)
    files = {
        "cls.tsv": "text\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in labelled_rows(["neg", "pos"], 40, 1)),
        "cls_dev.tsv": "text\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in labelled_rows(["neg", "pos"], 9, 2)),
        "tag.conll": conll(rng, 24), "tag_dev.conll": conll(rng, 7),
        "reg.tsv": "text\tscore\n" + "".join(f"{' '.join(rng.sample(WORDS, 3))}\t{rng.random():.3f}\n" for _ in range(20)),
        "reg_dev.tsv": "text\tscore\n" + "".join(f"{' '.join(rng.sample(WORDS, 3))}\t{rng.random():.3f}\n" for _ in range(7)),
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    paths = []
    for name, batch in (("two", 4), ("one", 8)):
        config = {
            "model": {"name": str(model)}, "optimizer": {"name": "adamw", "lr": 1e-3},
            "tasks": {
                "sentiment": {"task": "classification", "data": {"train": "cls.tsv", "validation": "cls_dev.tsv",
                                                                 "streaming": streamed},
                              "head": {"name": "linear", "dropout": 0.0}},
                "entities": {"task": "tagging", "head": {"name": "crf", "dropout": 0.0},
                             "data": {"format": "conll", "train": "tag.conll", "validation": "tag_dev.conll",
                                      "separator": "\t"}},
                "score": {"task": "regression", "head": {"name": "linear", "dropout": 0.0}, "weight": 0.5,
                          "data": {"train": "reg.tsv", "validation": "reg_dev.tsv", "label": "score"}},
            },
            "training": {"epochs": 2, "batch_size": batch, "seed": 5, "sampler": "uniform"},
            "output_dir": f"runs/{name}",
        }
        path = folder / f"{name}.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        paths.append(path)
    return paths


def weights(run_dir):
    found = {f"encoder.{k}": v for k, v in load_file(str(run_dir / "model/model.safetensors")).items()}
    for head in sorted((run_dir / "model/heads").iterdir()):
        found.update({f"{head.name}.{k}": v for k, v in load_file(str(head / "head.safetensors")).items()})
    return found


@pytest.mark.slow
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_a_multi_task_run_on_two_processes_matches_one(streamed, tmp_path, torchrun, run_engine):
    model = build_tiny_model(tmp_path / "model", dropout=0.0)
    two, one = write(tmp_path, model, streamed)  # a streamed task: each process reads its share of each batch
    result = torchrun("-m", "engine", "run", two)
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_engine("run", one).exit_code == 0
    a, b = weights(tmp_path / "runs/two"), weights(tmp_path / "runs/one")
    assert a.keys() == b.keys()
    gap, where = max((float((a[k].double() - v.double()).abs().max()), k) for k, v in b.items())
    assert gap <= TOLERANCE, f"weights differ by {gap:.2e} ({where})"
    reported = json.loads((tmp_path / "runs/two/metrics.json").read_text())["validation"]
    single = json.loads((tmp_path / "runs/one/metrics.json").read_text())["validation"]
    # Spearman ranks near-equal predictions of a barely trained regression: float noise reorders ties.
    unstable = {"score.spearman"}
    assert {k: v for k, v in reported.items() if k not in unstable} == \
        pytest.approx({k: v for k, v in single.items() if k not in unstable}, rel=1e-4, abs=1e-4)
    steps = [json.loads((tmp_path / f"runs/{n}/manifest.json").read_text())["steps"] for n in ("two", "one")]
    assert steps[0] == steps[1]
