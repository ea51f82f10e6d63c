"""`engine`: run, tune, init, validate, schema, predict, evaluate, serve, export, report, compare, plugins, cache.

Heavy imports wait until a command needs them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from engine.atomic import check_not_an_input
from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.data.split import Split
    from engine.inference.loading import LoadedModel


def _model_flags(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--format", "-f",
                        help=f"data format of the {what} (default: from its extension, else the training format)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--task", metavar="NAME", help="a multi-task model's task (docs/multitask.md)")
    parser.add_argument("--quantize", choices=["int8"],
                        help="CPU serving: the encoder's linear layers in int8 (dynamic quantization); a little "
                             "faster, predictions change slightly (docs/benchmarks.md: speed and accuracy change)")
    parser.add_argument("--trust-plugins", action="store_true",
                        help="import the plugin modules the run's task file named, from where the run recorded them "
                             "(a run directory is data: without this flag engine runs no code it points to)")
    _plugin_flags(parser)


def _plugin_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugins", metavar="NAMES",
                        help="comma-separated third-party plugins to load (default: all installed; env ENGINE_PLUGINS)")
    parser.add_argument("--block-plugins", metavar="NAMES", default="",
                        help="comma-separated plugins not to load (env ENGINE_BLOCK_PLUGINS)")


def _task_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task_file", type=Path, help="the task.json to use")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a task-file value, e.g. --set training.epochs=1 "
                        "(repeatable; VALUE is JSON or a string)")
    _plugin_flags(parser)


def _training_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands on a task file (and `engine init`, which writes one)."""
    p = commands.add_parser("run", help="train a model as a task file says, and evaluate it")
    _task_flags(p)
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in output_dir")
    p.add_argument("--resume", action="store_true", help="continue the run in output_dir from its last checkpoint")
    p.add_argument("--dry-run", action="store_true",
                   help="load the data and model, print the plan, time one batch forward and backward; train and "
                   "write nothing")

    p = commands.add_parser("tune", help="search hyperparameters as the task file's search section says (Optuna); "
                            "each trial is a run under OUTPUT_DIR/trials/, the best linked as OUTPUT_DIR/best")
    _task_flags(p)

    p = commands.add_parser("init", help="write a starter task file for a data file, saying what it found")
    p.add_argument("data_file", type=Path, help="training data: .tsv, .csv, .jsonl or .conll")
    p.add_argument("--task", help="the task type (default: chosen from the labels)")
    p.add_argument("--output", "-o", type=Path, default=Path("task.json"), help="where to write the task file")
    p.add_argument("--force", action="store_true", help="replace an existing output file")

    p = commands.add_parser("validate", help="check a task file without loading any model")
    _task_flags(p)

    p = commands.add_parser("schema", help="print the JSON Schema of task files, the plugins' sections included")
    _plugin_flags(p)


def _model_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands on a trained model."""
    p = commands.add_parser("predict", help="predict with a trained model")
    p.add_argument("run_dir", type=Path, help="a run directory (or its model/ folder)")
    p.add_argument("--input", "-i", type=Path, required=True, help="CSV, TSV, JSONL... with the training text fields")
    p.add_argument("--output", "-o", type=Path, help="JSONL to write (default: standard output)")
    _model_flags(p, "input")

    p = commands.add_parser("evaluate", help="score a trained model on labelled data")
    p.add_argument("run_dir", type=Path, help="a run directory (or its model/ folder)")
    p.add_argument("--data", "-d", type=Path, required=True, help="labelled data in the training format")
    p.add_argument("--output", "-o", type=Path, help="write the metrics as JSON here too")
    _model_flags(p, "file")

    _serve_command(commands)

    p = commands.add_parser("export", help="write one task of a multi-task run as a one-task model folder, which "
                            "engine predict takes and plain transformers loads where the head is one it knows "
                            "(docs/multitask.md)")
    p.add_argument("run_dir", type=Path, help="a multi-task run directory (or its model/ folder)")
    p.add_argument("output_dir", type=Path, help="the folder to write the task's model to")
    p.add_argument("--task", metavar="NAME", help="the task to export (required; a missing or unknown one is refused "
                   "with the names of the model's tasks)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in output_dir")
    p.add_argument("--trust-plugins", action="store_true",
                   help="import the plugin modules the run's task file named, from where the run recorded them "
                        "(a run directory is data: without this flag engine runs no code it points to)")
    _plugin_flags(p)


def _serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from engine.serve.settings import ServeSettings

    default = ServeSettings(Path("."))
    p = commands.add_parser("serve", help="serve a trained model over HTTP: POST /predict, /health, /ready, /info, "
                            "/metrics, /docs (docs/serving.md)")
    p.add_argument("run_dir", type=Path, help="a run directory (or its model/ folder)")
    p.add_argument("--host", default=default.host,
                   help="address to listen on: this machine only by default; 0.0.0.0: every interface")
    p.add_argument("--port", type=int, default=default.port, help="port to listen on")
    p.add_argument("--workers", type=int, default=default.workers, metavar="N",
                   help="processes, each with its model, behind the one port (pays on a CPU with many cores)")
    p.add_argument("--streams", type=int, default=default.streams, metavar="N",
                   help="threads running the model, each on a batch of its own (default: 2 on a CPU, 1 on a GPU)")
    p.add_argument("--max-batch-tokens", type=int, default=default.max_batch_tokens, metavar="N",
                   help="tokens in a batch, padding included (default: 1024 on a CPU, 16384 on a GPU, shared by the "
                        "streams)")
    p.add_argument("--max-batch-requests", type=int, default=default.max_batch_requests, metavar="N",
                   help="requests whose inputs share a batch (default: no limit; 1: no batching across requests)")
    p.add_argument("--max-wait-ms", type=float, default=default.max_wait_ms, metavar="MS",
                   help="how long a batch may wait for more inputs (default: 0, a batch forms when the model is free)")
    p.add_argument("--max-client-batch", type=int, default=default.max_client_batch, metavar="N",
                   help="inputs in one request (more: 413)")
    p.add_argument("--max-payload", type=int, default=default.max_payload, metavar="BYTES",
                   help="bytes in one request's body (more: 413)")
    p.add_argument("--max-concurrent-requests", type=int, default=default.max_concurrent_requests, metavar="N",
                   help="requests in progress at once (more: 429)")
    p.add_argument("--max-queue-ms", type=float, default=default.max_queue_ms, metavar="MS",
                   help="refuse a request (429) when the queue ahead of it holds more than this much work")
    p.add_argument("--quantize", choices=["int8"],
                   help="CPU serving: the encoder's linear layers in int8, as engine predict --quantize int8")
    p.add_argument("--task", metavar="NAME", help="a multi-task model's task to serve (docs/multitask.md)")
    p.add_argument("--trust-plugins", action="store_true",
                   help="import the plugin modules the run's task file named, from where the run recorded them "
                        "(a run directory is data: without this flag engine runs no code it points to)")
    _plugin_flags(p)


def _run_dir_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands on finished (or killed) runs' directories."""
    p = commands.add_parser("report", help="write a run's report again (RUN_DIR/report/index.html), also for a run "
                            "that was killed")
    p.add_argument("run_dir", type=Path, help="a run directory")
    p.add_argument("--trust-plugins", action="store_true",
                   help="import the plugin modules the run's task file named, from where the run recorded them, for "
                        "the task's own sections")
    _plugin_flags(p)

    p = commands.add_parser("compare", help="compare runs: one table of their differing settings and metrics, one plot")
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="run directories (two or more)")
    p.add_argument("--output", "-o", type=Path, default=Path("comparison"),
                   help="folder for index.html, comparison.svg and comparison.csv (default: ./comparison)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engine", description="Fine-tune pretrained transformer encoders from one task.json.",
        epilog="Start with: engine run examples/sentiment/task.json",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _training_commands(commands)
    _model_commands(commands)
    _run_dir_commands(commands)

    p = commands.add_parser("plugins", help="list plugins, their versions, sources and hooks")
    p.add_argument("task_file", type=Path, nargs="?", help="also load the plugin modules this task file names")
    p.add_argument("--hook", help="only plugins implementing this hook, e.g. build_head")
    p.add_argument("--components", action="store_true", help="also list the components each plugin declares")
    _plugin_flags(p)

    p = commands.add_parser("cache", help="show the data cache (parsed data, tokenized features), or clear it")
    p.add_argument("--clear", action="store_true", help="remove every entry (or, with --older-than, the unused ones)")
    p.add_argument("--older-than", type=float, metavar="DAYS", help="with --clear: only entries unused for DAYS days")
    return parser


def _manager(args: argparse.Namespace, modules: Sequence[str] = (), base_dir: Path | None = None) -> Any:
    from engine.api.plugins import plugin_manager

    return plugin_manager(modules, base_dir, only=args.plugins, block=args.block_plugins or ())


def _task_file_manager(args: argparse.Namespace, raw: dict[str, Any], path: Path) -> Any:
    """The plugins, with the modules the task file at ``path`` names (looked for next to it first)."""
    modules = raw.get("plugins", [])
    return _manager(args, modules if isinstance(modules, list) else [], path.resolve().parent)


def _resolve(args: argparse.Namespace) -> tuple[Any, Any]:
    """The task file checked and resolved as ``engine.train`` does it (``engine.api.tasks``), and its plugins."""
    from engine.api.tasks import resolve_task

    return resolve_task(args.task_file, args.overrides, plugins=args.plugins, block_plugins=args.block_plugins or ())


def cmd_validate(args: argparse.Namespace) -> int:
    from engine import console

    resolved, _ = _resolve(args)
    if resolved.tasks is not None:
        tasks = ", ".join(f"{name}: {t.task.name} ({t.data.name}, head {t.head.name})"
                          for name, t in resolved.tasks.items())
        console.info(f"[green]ok[/]: {args.task_file} is a valid multi-task file ({tasks}; output: "
                     f"{resolved.output_dir})")
        return 0
    console.info(f"[green]ok[/]: {args.task_file} is a valid {resolved.task.name} task "
                 f"(data: {resolved.data.name}, head: {resolved.head.name}, output: {resolved.output_dir})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from engine import console

    resolved, manager = _resolve(args)
    from engine.training.recipe import run

    result = run(resolved, manager, overwrite=args.overwrite, resume=args.resume, dry_run=args.dry_run)
    if result is None:  # --dry-run
        return 0
    if result.metrics:
        console.metrics_table(result.metrics, baseline=result.baseline, baseline_name=result.baseline_name)
        console.published_table(result.published)
    report = f", report: {result.report}" if result.report else ""
    console.info(f"Saved to [bold]{result.run_dir}[/] (model: {result.run_dir / 'model'}{report})")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from engine import console
    from engine.tune.search import BEST_LINK, STUDY_FILE, best_trial, describe, tune, wait_note

    resolved, manager = _resolve(args)
    result = tune(resolved, manager)
    best = best_trial(result.study)
    counts = result.counts
    console.info(f"Trials: {counts.get('COMPLETE', 0)} completed, {counts.get('PRUNED', 0)} pruned, "
                 f"{counts.get('FAIL', 0)} failed{wait_note(result)}")
    if best is None:
        raise EngineError(f"no trial completed; see {result.output_dir / STUDY_FILE}")
    console.info(f"Best: trial {best.number}, {result.monitor} {best.value:.4f} ({describe(best.params)})")
    report = f", report: {result.report}" if result.report else ""
    console.info(f"Saved to [bold]{result.output_dir}[/] (best run: {result.output_dir / BEST_LINK}, trials: "
                 f"{result.output_dir / STUDY_FILE}{report})")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from engine import console
    from engine.atomic import write_json
    from engine.cli.starter import starter, summary

    if args.output.exists() and not args.force:
        raise EngineError(f"{args.output} exists; pass --force to replace it, or --output another path")
    check_not_an_input([args.output], [args.data_file])
    config, found = starter(args.data_file, args.output, args.task)
    validation = config["data"].get("validation")
    if validation:
        check_not_an_input([args.output], [args.output.parent / validation])
    write_json(args.output, config)
    for line in summary(found):
        console.console.print(line, markup=False)
    console.info(f"Wrote {args.output}. Check it with: engine validate {args.output}; train with: engine run "
                 f"{args.output} (every key: docs/reference.md)")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from engine.config.schema import task_schema

    print(json.dumps(task_schema(_manager(args).registry()), indent=2))
    return 0


def _model_and_input(args: argparse.Namespace, manager: Any, file: Path, *,
                     labelled: bool) -> tuple[LoadedModel, Split]:
    """The run's model (args.run_dir) and ``file`` read as its training data was (or as --format says)."""
    from engine.inference.loading import load_model, read_input

    loaded = load_model(args.run_dir, manager, trust_plugins=args.trust_plugins, task=args.task)
    return loaded, read_input(loaded, manager, file, labelled=labelled, fmt=args.format)


def cmd_predict(args: argparse.Namespace) -> int:
    from engine import console
    from engine.inference.loop import is_main_process
    from engine.inference.predict import predict_split
    from engine.inference.scores import write_jsonl

    if args.output is not None:
        check_not_an_input([args.output], [args.input, args.run_dir])
    manager = _manager(args)
    loaded, split = _model_and_input(args, manager, args.input, labelled=False)
    rows = predict_split(loaded, split, batch_size=args.batch_size, quantize=args.quantize)
    if is_main_process():
        write_jsonl(rows, args.output)
        if args.output:
            console.info(f"Wrote {len(rows)} predictions to {args.output}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine import console
    from engine.atomic import write_json
    from engine.inference.loop import is_main_process
    from engine.inference.predict import evaluate_split

    if args.output is not None:
        check_not_an_input([args.output], [args.data, args.run_dir])
    manager = _manager(args)
    loaded, split = _model_and_input(args, manager, args.data, labelled=True)
    values = evaluate_split(loaded, manager, split, batch_size=args.batch_size, quantize=args.quantize)
    if is_main_process():
        console.metrics_table({args.data.name: values})
        if args.output:
            write_json(args.output, values)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise EngineError(f"engine serve needs FastAPI and uvicorn ({exc.name} is not installed): "
                          "pip install 'engine[serve]'") from None
    from engine.inference.loading import model_dir_of, task_refusal
    from engine.model.saved import read_engine_file
    from engine.serve.server import serve
    from engine.serve.settings import ServeSettings

    model_dir = model_dir_of(args.run_dir)  # a folder without a model fails here, before a server starts
    tasks = list(read_engine_file(model_dir).get("tasks") or [])
    if (args.task is None) != (not tasks) or (args.task is not None and args.task not in tasks):
        raise EngineError(task_refusal(model_dir, args.task, tasks))
    settings = ServeSettings(
        run_dir=args.run_dir, host=args.host, port=args.port, workers=args.workers, streams=args.streams,
        max_batch_tokens=args.max_batch_tokens, max_batch_requests=args.max_batch_requests,
        max_wait_ms=args.max_wait_ms, max_client_batch=args.max_client_batch, max_payload=args.max_payload,
        max_concurrent_requests=args.max_concurrent_requests, max_queue_ms=args.max_queue_ms,
        quantize=args.quantize, task=args.task, trust_plugins=args.trust_plugins, plugins=args.plugins,
        block_plugins=args.block_plugins,
    )
    problems = settings.problems()
    if problems:
        raise EngineError("\n".join(problems))
    return serve(settings)


def cmd_export(args: argparse.Namespace) -> int:
    from engine import console
    from engine.api.exporting import export

    exported = export(args.run_dir, args.task, args.output_dir, overwrite=args.overwrite,
                      trust_plugins=args.trust_plugins, plugins=args.plugins, block_plugins=args.block_plugins or ())
    where = exported.model_dir
    if exported.transformers_class is not None:
        loads = f"plain transformers loads it whole: {exported.transformers_class}.from_pretrained({str(where)!r})"
    else:
        loads = (f"plain transformers cannot load its {exported.head!r} head (it loads the encoder alone: "
                 f"AutoModel.from_pretrained({str(where)!r})); predict with engine")
    console.info(f"Wrote task {exported.task!r} of {args.run_dir} as a one-task model to [bold]{where}[/] "
                 f"(engine predict {where} --input FILE; {loads})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from engine import console
    from engine.inference.loading import task_of_run
    from engine.report.run_report import write_report
    from engine.rundir.reading import read_task_json

    read_task_json(args.run_dir)
    task, note = task_of_run(args.run_dir, _manager(args), trust_plugins=args.trust_plugins)
    if note:
        console.warn(note)
    if isinstance(task, dict):  # a multi-task run: each task's sections
        console.info(f"Report: {write_report(args.run_dir, note=note, tasks=task)}")
    else:
        console.info(f"Report: {write_report(args.run_dir, task, note=note)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from engine import console
    from engine.report.compare import compare

    check_not_an_input([args.output / name for name in ("index.html", "comparison.svg", "comparison.csv")],
                       args.run_dirs)
    table = compare(args.run_dirs, args.output)
    Console(highlight=False).print(table)  # the command's output: standard output
    console.info(f"Comparison: {args.output / 'index.html'} (plot: {args.output / 'comparison.svg'}, table: "
                 f"{args.output / 'comparison.csv'})")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from engine.registry import KINDS

    if args.task_file is not None:
        from engine.config.resolve import read_task_file

        manager = _task_file_manager(args, read_task_file(args.task_file), args.task_file)
    else:
        manager = _manager(args)
    registry = manager.registry()
    if args.hook and args.hook not in KINDS:
        from engine.errors import did_you_mean

        raise EngineError(f"--hook: unknown hook {args.hook!r}{did_you_mean(args.hook, KINDS)}; "
                          f"expected one of: {', '.join(KINDS)}")
    header = ["plugin", "version", "source", "hooks", *(["components"] if args.components else [])]
    rows = []
    for info in manager.infos.values():
        if args.hook and args.hook not in info.hooks:
            continue
        row = [info.name, info.version, info.source, ", ".join(info.hooks)]
        if args.components:
            row.append(", ".join(f"{KINDS[h]}:{c.name}" for h in KINDS for c in registry.components[h].values()
                                 if c.plugin == info.name))
        rows.append(row)
    console = Console(highlight=False)
    if not console.is_terminal:  # a file, a pipe, a pager: tab-separated lines, one per plugin
        print("\n".join("\t".join(cells) for cells in [header, *rows]))
        return 0
    table = Table(title="engine plugins", title_justify="left")
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    import time

    from engine.data import cache

    root = cache.cache_root()
    if args.clear:
        count, freed = cache.clear(args.older_than)
        print(f"removed {count} entr{'y' if count == 1 else 'ies'} ({_size(freed)}) from {root}")
        return 0
    found = cache.entries()
    print(f"{root}: {len(found)} entr{'y' if len(found) == 1 else 'ies'}, {_size(sum(e.size for e in found))} "
          "(set ENGINE_CACHE to move it; engine cache --clear empties it)")
    damaged = 0
    for e in found:
        items = e.info.get("features", e.info.get("rows"))
        items = items if isinstance(items, int) else 0
        what = f"{e.info.get('split', '')} features" if e.kind == "features" else "rows"
        days = (time.time() - e.last_used) / 86400
        problem = cache.damage(e.path)
        damaged += problem is not None
        print(f"  {e.kind}/{e.key}  {_size(e.size):>9}  {items:>11,} {what:<16} used {days:.1f} days ago  "
              f"{e.info.get('source', '')}" + (f"  DAMAGED: {problem}" if problem else ""))
    if damaged:
        print(f"{damaged} damaged entr{'y' if damaged == 1 else 'ies'}: the next run that needs one removes it and "
              "makes it again; engine cache --clear removes every entry")
    return 0


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


COMMANDS = {"cache": cmd_cache, "init": cmd_init, "run": cmd_run, "tune": cmd_tune, "validate": cmd_validate,
            "schema": cmd_schema,
            "predict": cmd_predict, "evaluate": cmd_evaluate, "serve": cmd_serve, "export": cmd_export,
            "report": cmd_report,
            "compare": cmd_compare,
            "plugins": cmd_plugins}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return COMMANDS[args.command](args)
    except EngineError as exc:
        if args.debug:
            raise
        from engine import console

        if not exc.reported:
            console.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `engine plugins | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def command() -> NoReturn:
    """The `engine` command (and `python -m engine`): main, then an exit without the interpreter's slow teardown
    (``engine.cli.shutdown``)."""
    code = main()
    from engine.cli.shutdown import exit_process

    exit_process(code)


if __name__ == "__main__":
    command()
