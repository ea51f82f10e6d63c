"""Benchmark the engine's CRF against pytorch-crf (kmkurn/pytorch-crf) on CPU.

Both models get the same parameters. For each scenario it times

* log-likelihood forward + backward (``reduction="sum"``), and
* Viterbi decoding under ``torch.no_grad()`` (pytorch-crf returns lists, ours a
  padded tensor; ``decode_list`` is timed as well so both sides end in Python lists),

reports the median of ``--repeats`` runs after warm-up, checks that both
implementations return identical best paths and matching log-likelihoods, and writes
a markdown table to ``--output``.

Run from the repository root::

    python bench/crf_vs_pytorch_crf.py --repeats 30 --threads 2
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
import torchcrf

REPO_ROOT = Path(__file__).resolve().parents[1]
CRF_PATH = REPO_ROOT / "plugins/engine_builtins/tagging/crf.py"
DEFAULT_OUTPUT = REPO_ROOT / "bench/results/crf_vs_pytorch_crf.md"


def load_crf_module() -> ModuleType:
    # crf.py is torch-only, so load it by path instead of relying on plugin packaging.
    spec = importlib.util.spec_from_file_location("_engine_builtin_crf_bench", CRF_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Scenario:
    name: str
    batch: int
    max_len: int
    num_tags: int
    mixed: bool


@dataclass
class Row:
    scenario: str
    task: str
    ours_ms: float
    theirs_ms: float

    @property
    def ratio(self) -> float:
        return self.theirs_ms / self.ours_ms


def median_ms(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def run_scenario(
    crf_cls: type, scenario: Scenario, repeats: int, warmup: int, seed: int
) -> list[Row]:
    g = torch.Generator().manual_seed(seed)
    b, n, k = scenario.batch, scenario.max_len, scenario.num_tags
    ours = crf_cls(k)
    theirs = torchcrf.CRF(k, batch_first=True)
    with torch.no_grad():
        for name in ("start_transitions", "end_transitions", "transitions"):
            value = torch.randn(getattr(ours, name).shape, generator=g)
            getattr(ours, name).copy_(value)
            getattr(theirs, name).copy_(value)

    if scenario.mixed:
        lengths = torch.randint(10, n + 1, (b,), generator=g)
        lengths[0] = n  # pin the padded length so both scenarios share seq_len
    else:
        lengths = torch.full((b,), n)
    mask = torch.arange(n).unsqueeze(0) < lengths.unsqueeze(1)
    emissions = torch.randn(b, n, k, generator=g).requires_grad_(True)
    tags = torch.randint(0, k, (b, n), generator=g)

    # Correctness first: same log-likelihood, same best paths.
    torch.testing.assert_close(
        ours(emissions, tags, mask, reduction="none"),
        theirs(emissions, tags, mask, reduction="none"),
        rtol=1e-5,
        atol=1e-3,
    )
    with torch.no_grad():
        ours_paths = ours.decode_list(emissions, mask)
        theirs_paths = theirs.decode(emissions, mask)
    if ours_paths != theirs_paths:
        raise AssertionError(f"{scenario.name}: best paths differ between implementations")

    def train_step(model: torch.nn.Module) -> Callable[[], None]:
        def step() -> None:
            model.zero_grad(set_to_none=True)
            emissions.grad = None
            model(emissions, tags, mask, reduction="sum").backward()

        return step

    def decode(fn: Callable[..., object]) -> Callable[[], object]:
        def step() -> object:
            with torch.no_grad():
                return fn(emissions, mask)

        return step

    rows = [
        Row(
            scenario.name,
            "log-likelihood fwd+bwd",
            median_ms(train_step(ours), repeats, warmup),
            median_ms(train_step(theirs), repeats, warmup),
        )
    ]
    theirs_decode = median_ms(decode(theirs.decode), repeats, warmup)
    rows.append(
        Row(
            scenario.name,
            "Viterbi decode (tensor)",
            median_ms(decode(ours.decode), repeats, warmup),
            theirs_decode,
        )
    )
    rows.append(
        Row(
            scenario.name,
            "Viterbi decode (lists)",
            median_ms(decode(ours.decode_list), repeats, warmup),
            theirs_decode,
        )
    )
    return rows


def render(
    rows: list[Row], args: argparse.Namespace, command: str, scenarios: list[Scenario]
) -> str:
    lines = [
        "# CRF benchmark: engine CRF vs pytorch-crf",
        "",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- command: `{command}`",
        f"- torch {torch.__version__}, pytorch-crf {getattr(torchcrf, '__version__', '?')}, "
        f"Python {platform.python_version()}",
        f"- machine: {platform.machine()} {platform.processor() or ''}".rstrip()
        + f", {os.cpu_count()} CPU cores, torch threads = {torch.get_num_threads()}",
        f"- median of {args.repeats} runs after {args.warmup} warm-up runs "
        "(time.perf_counter); decoding under torch.no_grad()",
        "- scenarios: "
        + "; ".join(
            f"{s.name} = batch {s.batch}, "
            + (f"lengths uniform 10..{s.max_len}" if s.mixed else f"all length {s.max_len}")
            + f", {s.num_tags} tags"
            for s in scenarios
        ),
        "- best paths checked identical and log-likelihoods equal (atol 1e-3) before timing",
        "- pytorch-crf's decode always returns lists; it is the baseline for both of our rows",
        "",
        "| scenario | task | ours (ms) | pytorch-crf (ms) | speed-up (pytorch-crf / ours) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.task} | {r.ours_ms:.2f} | {r.theirs_ms:.2f} | {r.ratio:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown file")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    crf_cls = load_crf_module().CRF
    scenarios = [
        Scenario("(a) full length", batch=32, max_len=128, num_tags=9, mixed=False),
        Scenario("(b) mixed lengths", batch=32, max_len=128, num_tags=9, mixed=True),
    ]
    rows: list[Row] = []
    for i, scenario in enumerate(scenarios):
        rows.extend(run_scenario(crf_cls, scenario, args.repeats, args.warmup, args.seed + i))

    command = "python " + shlex.join([os.path.relpath(__file__, REPO_ROOT), *sys.argv[1:]])
    report = render(rows, args, command, scenarios)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
