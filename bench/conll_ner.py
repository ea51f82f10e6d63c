"""Entity F1 of `engine run` with default tagging settings on CoNLL-2003 English: the first N training sentences,
scored on the first M sentences of valid.txt, which it never trains on. Writes bench/results/conll_ner.md.

    python bench/conll_ner.py [--data-dir ../shared/data] [--train-sentences 2000] [--validation-sentences 1000]
                              [--epochs 3] [--set head=softmax ...]

The CoNLL-2003 text is research-use only: the excerpts live in a temporary folder and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sentences(path: Path, limit: int | None) -> list[list[str]]:
    """The first ``limit`` sentences of a CoNLL file as their raw lines (document markers dropped)."""
    blocks: list[list[str]] = [[]]
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            if blocks[-1]:
                if limit is not None and len(blocks) == limit:
                    break
                blocks.append([])
        elif not line.startswith("-DOCSTART-"):
            blocks[-1].append(line)
    return [b for b in blocks if b]


def write_conll(blocks: list[list[str]], path: Path) -> None:
    path.write_text("".join("\n".join(block) + "\n\n" for block in blocks), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data",
                        help="folder holding conll2003/train.txt and valid.txt (default: ../shared/data)")
    parser.add_argument("--train-sentences", type=int, default=2000, help="first N sentences of train.txt; 0 for all")
    parser.add_argument("--validation-sentences", type=int, default=1000, help="first M sentences of valid.txt; 0 for all")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to `engine run --set` (everything else stays default)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "conll_ner.md")
    args = parser.parse_args()

    source = args.data_dir / "conll2003"
    train = sentences(source / "train.txt", args.train_sentences or None)
    valid = sentences(source / "valid.txt", args.validation_sentences or None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_conll(train, folder / "train.conll")
        write_conll(valid, folder / "valid.conll")
        task = {"task": "tagging", "data": {"format": "conll", "train": "train.conll", "validation": "valid.conll"},
                "training": {"epochs": args.epochs}, "output_dir": "run"}
        (folder / "task.json").write_text(json.dumps(task))
        command = [sys.executable, "-m", "engine", "run", str(folder / "task.json"),
                   *(part for item in args.overrides for part in ("--set", item))]
        start = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        wall = time.perf_counter() - start
        metrics = json.loads((folder / "run" / "metrics.json").read_text())["validation"]
        resolved = json.loads((folder / "run" / "task.json").read_text())
        history = [json.loads(line) for line in (folder / "run" / "history.jsonl").read_text().splitlines()]

    evaluations = [h for h in history if h.get("event") == "evaluate"]
    per_type = sorted(k.split("/", 1)[1] for k in metrics if k.startswith("entity_f1/"))
    invocation = " ".join(["python bench/conll_ner.py", f"--train-sentences {args.train_sentences}",
                           f"--validation-sentences {args.validation_sentences}", f"--epochs {args.epochs}",
                           *(f"--set {item}" for item in args.overrides)])
    lines = [
        f"# CoNLL-2003 NER: {len(train):,} training sentences, {args.epochs} epoch(s), default tagging settings",
        "",
        f"Date {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, torch threads default; run under `nice` "
        "on a machine shared with other work, so times are indicative.",
        f"Command: `{invocation}`",
        "",
        f"Training: the first {len(train):,} sentences of conll2003/train.txt. Scored on the first {len(valid):,} "
        "sentences of conll2003/valid.txt (never trained on; also used to pick the best epoch). Entity scores are "
        "strict span matches (as seqeval / conlleval).",
        "",
        f"Settings as resolved: model `{resolved['model']['name']}`, head `{json.dumps(resolved['head'])}`, "
        f"optimizer `{json.dumps(resolved['optimizer'])}`, batch size {resolved['training']['batch_size']}, "
        f"scheduler `{json.dumps(resolved['scheduler'])}`.",
        "",
        "| entity F1 (micro) | precision | recall | entity F1 (macro) | token accuracy | wall time (s) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {metrics['entity_f1']:.4f} | {metrics['entity_precision']:.4f} | {metrics['entity_recall']:.4f} | "
        f"{metrics['entity_f1_macro']:.4f} | {metrics['token_accuracy']:.4f} | {wall:.0f} |",
        "",
        "Per type (F1): " + ", ".join(f"{t} {metrics['entity_f1/' + t]:.4f}" for t in per_type),
        "",
        "Entity F1 after each epoch: " + ", ".join(f"{h['validation.entity_f1']:.4f}" for h in evaluations),
        "",
        "Wall time is the whole `engine run` process: imports, loading, tokenizing, training, evaluation, saving.",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
