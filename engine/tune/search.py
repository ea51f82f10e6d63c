"""`engine tune`: a hyperparameter search over a task file with Optuna, each trial an ordinary run.

    OUTPUT_DIR/
      study.db          the Optuna study (SQLite), unless search.storage names another database
      study.json        every trial: number, state, value, parameters, run directory; the best one
      trials/trial-N/   each trial's run directory (its checkpoints removed once it ends)
      best              the best trial's run directory (a link to trials/trial-N): engine predict OUTPUT_DIR/best
      report/           index.html: value per trial, parameter importance, every trial

The study lives in the storage, not in the process: several ``engine tune`` processes on the same task file (or
storage URL) share one study and finish ``search.trials`` between them, and a search that was killed continues
where it stopped when run again. A trial whose process died (found by its pid on this host, or by its heartbeat
on another) is marked failed and its parameters are tried again.

Trials are pruned through the callback interface: after each evaluation the monitored metric is reported to
Optuna at the number of training rows seen so far (comparable across batch sizes), and a trial the pruner finds
worse than the median of earlier trials at that point stops, as early stopping would stop it.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import os
import random
import shutil
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import console
from engine.atomic import write_json
from engine.callbacks import Callback, TrainerState
from engine.config.choice import ResolvedTask
from engine.config.resolve import resolve, trial_task
from engine.config.sections import SearchConfig
from engine.errors import ConfigError, ConfigIssue, EngineError

if TYPE_CHECKING:
    from engine.report.document import Report

STUDY_FILE, TRIALS_DIR, BEST_LINK = "study.json", "trials", "best"
HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 120
MAX_FAILURES_IN_A_ROW = 3


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise EngineError("engine tune needs Optuna, which is not installed: pip install 'engine[tune]' "
                          "(or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Heartbeats are recorded here (Heartbeat), not by Study.optimize, which this loop does not use; PED-ANOVA's
    # note on few trials is said in the report instead.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    warnings.filterwarnings("ignore", message="Target and region quantiles select the same set")
    return optuna


class PruneTrial(Callback):
    """Reports each evaluation's monitored value to the trial; stops the run when the pruner says so."""

    def __init__(self, trial: Any, monitor: str) -> None:
        self.trial, self.monitor, self.pruned = trial, monitor, False

    def on_evaluate(self, state: TrainerState, metrics: dict[str, float]) -> None:
        value = metrics.get(self.monitor)
        if value is None or not math.isfinite(value) or state.global_step >= state.max_steps:
            return  # the last evaluation ends the trial anyway
        self.trial.report(value, step=state.samples)
        if self.trial.should_prune():
            self.pruned = state.should_stop = True
            console.info(f"Trial {self.trial.number} pruned: {self.monitor} {value:.4f} after {state.samples:,} "
                         "rows is worse than the median of earlier trials there")


# --- parameters --------------------------------------------------------------------------------------------------


def distributions(search: SearchConfig) -> dict[str, Any]:
    """Optuna's distribution for each key. Choices that are not plain values (objects, lists) travel as JSON."""
    optuna = _optuna()
    result: dict[str, Any] = {}
    for key, spec in search.space.items():
        low_high = spec.value_of(spec.kind)
        if spec.kind == "loguniform":
            result[key] = optuna.distributions.FloatDistribution(*low_high, log=True)
        elif spec.kind == "uniform":
            result[key] = optuna.distributions.FloatDistribution(*low_high)
        elif spec.kind == "int":
            result[key] = optuna.distributions.IntDistribution(*low_high)
        else:
            result[key] = optuna.distributions.CategoricalDistribution([_encode(v) for v in low_high])
    return result


def suggest(trial: Any, key: str, distribution: Any) -> Any:
    """The trial's value for ``key`` (an enqueued trial's given value, else the sampler's draw)."""
    if hasattr(distribution, "choices"):
        return trial.suggest_categorical(key, distribution.choices)
    if distribution.__class__.__name__ == "IntDistribution":
        return trial.suggest_int(key, distribution.low, distribution.high)
    return trial.suggest_float(key, distribution.low, distribution.high, log=distribution.log)


def _encode(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else "json:" + json.dumps(value)


def decode(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's parameters as task-file values."""
    return {k: json.loads(v[5:]) if isinstance(v, str) and v.startswith("json:") else v for k, v in params.items()}


def describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {_short(v)}" for k, v in decode(params).items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return value if isinstance(value, str) else json.dumps(value)


# --- the study ---------------------------------------------------------------------------------------------------


def storage_url(search: SearchConfig, output_dir: Path) -> str:
    return search.storage or f"sqlite:///{(output_dir / 'study.db').resolve()}"


def public_url(url: str) -> str:
    """The storage URL without its password, for files and messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def startup_trials(search: SearchConfig) -> int:
    return search.startup_trials if search.startup_trials is not None else min(10, max(2, search.trials // 4))


def trial_seed(seed: int, number: int) -> int:
    """A seed of its own for each trial (hashed: numpy's generators from neighbouring seeds start alike)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{number}".encode()).digest()[:4], "little")


def make_sampler(search: SearchConfig, seed: int) -> Any:
    optuna = _optuna()
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(search), constant_liar=True)


def open_study(resolved: ResolvedTask, name: str | None = None) -> tuple[Any, str]:
    """The study in its storage, created on first use; a study made with another space or objective refuses."""
    optuna = _optuna()
    search = resolved.search
    assert search is not None
    url = storage_url(search, resolved.output_dir)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    monitor, direction = objective(resolved)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=startup_trials(search), n_warmup_steps=0)
              if search.pruner == "median" else optuna.pruners.NopPruner())
    study_name = name or search.study_name or resolved.output_dir.name
    # Processes that start together race to create the tables and the study: the loser finds them made, next try.
    for attempt in range(6):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                                 grace_period=GRACE_SECONDS, heartbeat_stale_trial_callback=_retry)
            study = optuna.create_study(storage=storage, study_name=study_name, load_if_exists=True, pruner=pruner,
                                        sampler=make_sampler(search, resolved.training.seed if search.seed is None
                                                             else search.seed),
                                        direction="maximize" if direction == "max" else "minimize")
            break
        except Exception as exc:  # sqlalchemy's: a bad URL, an unreachable database, a missing driver, a race
            if attempt == 5:
                raise EngineError(f"search.storage: cannot open {public_url(url)}: {str(exc).splitlines()[0]}") \
                    from None
            time.sleep(0.5 + random.random())
    signature = {"space": {k: v.model_dump(mode="json", by_alias=True, exclude_none=True)
                           for k, v in search.space.items()}, "monitor": monitor, "direction": direction}
    recorded = study.user_attrs.get("engine")
    if recorded is None:
        study.set_user_attr("engine", signature)
    elif recorded != signature:
        raise EngineError(f"the study {study_name!r} in {public_url(url)} was made with another search space or "
                          f"monitor ({json.dumps(recorded)}); set search.study_name or output_dir to start another")
    return study, url


def objective(resolved: ResolvedTask) -> tuple[str, str]:
    """What the search optimizes: the run's monitor (a validation metric) and its direction."""
    monitor = resolved.monitor
    if monitor not in resolved.directions:
        raise ConfigError([ConfigIssue("data.validation", "missing: engine tune scores each trial on a validation "
                                       "split; set data.validation or data.validation_split")], resolved.source)
    return monitor, resolved.directions[monitor]


def _retry(study: Any, trial: Any) -> None:
    """A trial whose process died: failed, and its parameters queued to run again (once)."""
    if "retry_of" in trial.user_attrs:
        return
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
    console.warn(f"trial {trial.number} stopped without finishing (its process died); its parameters run again")


def reclaim(study: Any) -> None:
    """Trials left running by dead processes: on this host, known by their pid at once; elsewhere, by their
    heartbeat, after ``GRACE_SECONDS``."""
    optuna = _optuna()
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        dead = trial.user_attrs.get("host") == host and pid and pid != os.getpid() and not _alive(int(pid))
        if dead and study._storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL):
            _retry(study, trial)
    optuna.storages.fail_stale_trials(study)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def counts(study: Any) -> dict[str, int]:
    """Trials by state (surplus asks, which never ran, left out)."""
    result: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        if not trial.user_attrs.get("surplus"):
            result[trial.state.name] = result.get(trial.state.name, 0) + 1
    return result


def _used(study: Any, below: int | None = None) -> int:
    """Trials that count against search.trials: finished (completed, pruned) or running; ``below``: only those
    numbered lower (asked earlier)."""
    states = {"COMPLETE", "PRUNED", "RUNNING"}
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state.name in states and not t.user_attrs.get("surplus") and (below is None or t.number < below))


class Heartbeat:
    """Records a running trial's heartbeat in the storage, so that other processes can tell it is alive."""

    def __init__(self, study: Any, trial: Any) -> None:
        self.study, self.trial_id, self.stop_event = study, trial._trial_id, threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(Exception):  # a busy database: the next beat will do
                self.study._storage.record_heartbeat(self.trial_id)
            self.stop_event.wait(HEARTBEAT_SECONDS)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)


# --- the search --------------------------------------------------------------------------------------------------


@dataclass
class TuneResult:
    output_dir: Path
    study: Any
    monitor: str
    counts: dict[str, int]
    report: Path | None


def tune(resolved: ResolvedTask, manager: Any) -> TuneResult:
    """Run trials until the study has ``search.trials`` finished ones (counting every process's)."""
    optuna = _optuna()
    search = _search_of(resolved)
    out = resolved.output_dir
    out.mkdir(parents=True, exist_ok=True)
    study, url = open_study(resolved)
    monitor, _ = objective(resolved)
    seed = resolved.training.seed if search.seed is None else search.seed
    space = distributions(search)
    console.info(f"Study [bold]{study.study_name}[/] in {public_url(url)}: {search.trials} trials, "
                 f"{'maximizing' if study.direction.name == 'MAXIMIZE' else 'minimizing'}")
    console.info(f"  objective {monitor}; sampler {search.sampler}, pruner {search.pruner}; "
                 f"{_finished(study)} trial(s) already finished")
    failures = 0
    while (trial := _next_trial(study, search)) is not None:
        # The sampler is seeded by the trial's number: reproducible alone, and no two processes draw alike.
        study.sampler = make_sampler(search, trial_seed(seed, trial.number))
        params = {key: suggest(trial, key, distribution) for key, distribution in space.items()}
        run_dir = out / TRIALS_DIR / f"trial-{trial.number:03d}"
        for key, value in {"host": socket.gethostname(), "pid": os.getpid(),
                           "run_dir": str(run_dir.relative_to(out))}.items():
            trial.set_user_attr(key, value)
        console.info(f"[bold]Trial {trial.number}[/] ({_finished(study) + 1} of {search.trials}): {describe(params)}")
        try:
            _run_trial(study, trial, decode(params), run_dir, resolved, manager, monitor)
        except EngineError as exc:
            trial.set_user_attr("error", str(exc))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            console.warn(f"trial {trial.number} failed: {exc}")
            failures += 1
            if failures >= MAX_FAILURES_IN_A_ROW:
                raise EngineError(f"{failures} trials in a row failed; the last: {exc}") from None
            continue
        failures = 0
        update_best(study, out)
        write_study(study, out, url, monitor, search)
    update_best(study, out)
    write_study(study, out, url, monitor, search)
    report = write_search_report(study, out, monitor, search)
    return TuneResult(out, study, monitor, counts(study), report)


def _search_of(resolved: ResolvedTask) -> SearchConfig:
    """The task file's search section; a search runs one trial per process."""
    if resolved.search is None:
        raise ConfigError([ConfigIssue("search", 'missing: engine tune searches the space a search section gives, '
                                       'e.g. {"trials": 12, "space": {"optimizer.lr": {"loguniform": [1e-5, 3e-4]}}}')],
                          resolved.source)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise EngineError("engine tune runs each trial in one process; to use several, start several engine tune "
                          "processes on the same task file (they share the study), not accelerate launch")
    return resolved.search


def _finished(study: Any) -> int:
    """Trials completed or pruned, in every process."""
    finished = counts(study)
    return finished.get("COMPLETE", 0) + finished.get("PRUNED", 0)


def _next_trial(study: Any, search: SearchConfig) -> Any:
    """A new trial, or None when the study has ``search.trials`` trials finished or running."""
    reclaim(study)
    if _used(study) >= search.trials:
        return None
    trial = study.ask()
    if _used(study, below=trial.number) >= search.trials:  # another process asked first for the last one
        trial.set_user_attr("surplus", True)
        study.tell(trial, state=_optuna().trial.TrialState.FAIL)
        return None
    return trial


def _run_trial(study: Any, trial: Any, params: dict[str, Any], run_dir: Path, resolved: ResolvedTask,
               manager: Any, monitor: str) -> None:
    """Train the task file with ``params`` set into ``run_dir`` and tell the study how the trial ended; a run that
    fails raises its EngineError, with the trial left for the caller to tell."""
    from engine.training.recipe import run

    optuna = _optuna()
    pruning = PruneTrial(trial, monitor)
    try:
        trial_raw = trial_task(resolved.raw_as_written, params)
        trial_raw["output_dir"] = str(run_dir.resolve())
        trial_resolved = resolve(trial_raw, manager.registry(), source=resolved.source, base_dir=resolved.base_dir)
        with Heartbeat(study, trial):
            result = run(trial_resolved, manager, callbacks=[pruning])
    finally:
        _release_accelerate()
    assert result is not None
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # the run is over: no resume needs them
    if pruning.pruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    value = result.metrics.get("validation", {}).get(monitor.split(".", 1)[1])
    if value is None or not math.isfinite(value):
        trial.set_user_attr("error", f"the run computed no finite {monitor}")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, value)


def _release_accelerate() -> None:
    """Each trial is a run of its own: Accelerate's process-wide state and the last model's memory go."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    gc.collect()


def best_trial(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def update_best(study: Any, out: Path) -> None:
    """OUTPUT_DIR/best: a link to the best trial's run directory, replaced in one step."""
    best = best_trial(study)
    if best is None or "run_dir" not in best.user_attrs:
        return
    target = Path(best.user_attrs["run_dir"])
    link = out / BEST_LINK
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    tmp = out / f".{BEST_LINK}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp, target_is_directory=True)
        if link.exists() and not link.is_symlink():
            shutil.rmtree(link)
        os.replace(tmp, link)
    except OSError:  # no symbolic links here (some Windows setups): a copy
        tmp.unlink(missing_ok=True)
        copy = out / f".{BEST_LINK}.copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(out / target, copy)
        if link.is_symlink():
            link.unlink()
        shutil.rmtree(link, ignore_errors=True)
        os.replace(copy, link)


def trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue
        value = t.value if t.state.name == "COMPLETE" else (
            t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and \
            t.datetime_start else None
        rows.append({"number": t.number, "state": t.state.name.lower(), "value": value,
                     "params": decode(t.params), "run_dir": t.user_attrs.get("run_dir"),
                     "seconds": round(seconds, 1) if seconds is not None else None,
                     "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
                     **({"error": t.user_attrs["error"]} if "error" in t.user_attrs else {}),
                     **({"retry_of": t.user_attrs["retry_of"]} if "retry_of" in t.user_attrs else {})})
    return rows


def write_study(study: Any, out: Path, url: str, monitor: str, search: SearchConfig) -> None:
    """OUTPUT_DIR/study.json: the search at a glance (the storage stays the record)."""
    best = best_trial(study)
    write_json(out / STUDY_FILE, {
        "study": study.study_name, "storage": public_url(url), "monitor": monitor,
        "direction": study.direction.name.lower(), "trials_wanted": search.trials, "sampler": search.sampler,
        "pruner": search.pruner, "counts": {k.lower(): v for k, v in counts(study).items()},
        "best": None if best is None else {"number": best.number, "value": best.value, "params": decode(best.params),
                                           "run_dir": best.user_attrs.get("run_dir")},
        "trials": trial_rows(study),
    })


# --- the search's report -----------------------------------------------------------------------------------------


def write_search_report(study: Any, out: Path, monitor: str, search: SearchConfig) -> Path | None:
    """OUTPUT_DIR/report/index.html; a failure to draw costs the search nothing."""
    try:
        return _search_report(study, out, monitor, search)
    except Exception as exc:
        console.warn(f"the search report could not be written ({type(exc).__name__}: {exc}); {out / STUDY_FILE} "
                     "has every trial")
        return None


def _search_report(study: Any, out: Path, monitor: str, search: SearchConfig) -> Path:
    from engine.report.document import Report

    rows = trial_rows(study)
    report = Report(out / "report", f"Search: {study.study_name}")
    _summary_section(report, study, out, monitor, search)
    _value_per_trial_section(report, rows, monitor, maximize=study.direction.name == "MAXIMIZE")
    _importance_section(report, study)
    _value_per_parameter_section(report, rows, monitor, search)
    keys = list(search.space)
    section = report.section("Trials")
    section.table(["trial", "state", monitor, *keys, "seconds", "run"],
                  [[r["number"], r["state"], r["value"], *(_short(r["params"].get(k, "")) for k in keys),
                    r["seconds"], r["run_dir"] or r.get("error", "")] for r in rows])
    return report.write()


def _summary_section(report: Report, study: Any, out: Path, monitor: str, search: SearchConfig) -> None:
    best = best_trial(study)
    n = counts(study)
    section = report.section("Summary")
    section.table(["", ""], [
        ["objective", f"{monitor} ({study.direction.name.lower()})"],
        ["trials", f"{n.get('COMPLETE', 0)} completed, {n.get('PRUNED', 0)} pruned, {n.get('FAIL', 0)} failed, "
                   f"{n.get('RUNNING', 0)} running (of {search.trials} wanted)"],
        ["sampler, pruner", f"{search.sampler}, {search.pruner} (first {startup_trials(search)} trials: random, "
                            "not pruned)"],
        ["best", "none yet" if best is None else f"trial {best.number}: {best.value:.4f} ({describe(best.params)}), "
                                                  f"{out / BEST_LINK}"],
    ])


def _value_per_trial_section(report: Report, rows: list[dict[str, Any]], monitor: str, *, maximize: bool) -> None:
    section = report.section("Value per trial")
    section.text(f"{monitor} of each trial: completed trials their best model's, pruned trials their last "
                 "evaluation's; the line is the best so far.")
    figure = section.figure("trials", f"{monitor} by trial.", size=(7, 3.6))
    ax = figure.subplots()
    for state, marker, colour in (("complete", "o", "tab:blue"), ("pruned", "x", "tab:red")):
        points = [(r["number"], r["value"]) for r in rows if r["state"] == state and r["value"] is not None]
        if points:
            ax.scatter(*zip(*points), marker=marker, color=colour, label=state, zorder=3)
    complete = sorted((r["number"], r["value"]) for r in rows if r["state"] == "complete")
    if complete:
        xs, best_so_far, current = [], [], None
        for number, value in complete:
            current = value if current is None else (max if maximize else min)(current, value)
            xs.append(number)
            best_so_far.append(current)
        ax.step(xs, best_so_far, where="post", color="tab:green", label="best so far")
    ax.set(xlabel="trial", ylabel=monitor, title=f"{monitor} by trial")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def _importance_section(report: Report, study: Any) -> None:
    section = report.section("Parameter importance")
    importances = param_importances(study)
    if not importances:
        section.text("Not enough completed trials with different parameters to tell yet.")
        return
    section.text("How much of the variation in the objective each parameter explains (Optuna's "
                 "PED-ANOVA over the completed trials).")
    figure = section.figure("importance", "Parameter importance.", size=(7, 1.2 + 0.5 * len(importances)))
    ax = figure.subplots()
    names = list(importances)
    ax.barh(names, [importances[k] for k in names], color="tab:blue")
    ax.invert_yaxis()
    ax.set(xlabel="importance (sums to 1)", xlim=(0, 1), title="Parameter importance")
    ax.grid(axis="x", alpha=0.3)


def _value_per_parameter_section(report: Report, rows: list[dict[str, Any]], monitor: str,
                                 search: SearchConfig) -> None:
    keys = list(search.space)
    section = report.section("Value against each parameter")
    figure = section.figure("parameters", f"{monitor} against each parameter (completed and pruned trials).",
                            size=(min(4 * len(keys), 14), 3.4))
    axes = figure.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        spec = search.space[key]
        marks = [(r["params"].get(key), r["value"], r["state"]) for r in rows
                 if r["value"] is not None and key in r["params"]]
        if spec.kind == "choice":
            labels = [_short(v) for v in spec.value_of("choice")]
            xs = [labels.index(_short(p)) for p, _, _ in marks]
            ax.set_xticks(range(len(labels)), labels)
            ax.set_xlim(-0.5, len(labels) - 0.5)
        else:
            xs = [p for p, _, _ in marks]
            if spec.kind == "loguniform":
                ax.set_xscale("log")
        colours = ["tab:red" if state == "pruned" else "tab:blue" for _, _, state in marks]
        ax.scatter(xs, [v for _, v, _ in marks], c=colours, zorder=3)
        ax.set(xlabel=key, ylabel=monitor)
        ax.grid(alpha=0.3)


def param_importances(study: Any) -> dict[str, float]:
    optuna = _optuna()
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 3:
        return {}
    try:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def wait_note(result: TuneResult) -> str:
    running = result.counts.get("RUNNING", 0)
    return f"; {running} trial(s) still running in other processes" if running else ""
