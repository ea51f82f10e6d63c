"""Every training event fires, in order, with the state a callback needs."""

from engine.callbacks import EVENTS, Callback, CallbackList

RECORDER = """
from engine import Callback, hookimpl

EVENTS = []


class Recorder(Callback):
    def __init__(self, options):
        pass

    def on_train_begin(self, state): EVENTS.append(("on_train_begin", state.epoch, state.global_step))
    def on_epoch_begin(self, state): EVENTS.append(("on_epoch_begin", state.epoch, state.global_step))
    def on_step_end(self, state, logs): EVENTS.append(("on_step_end", state.epoch, state.global_step, sorted(logs)))
    def on_evaluate(self, state, metrics): EVENTS.append(("on_evaluate", state.epoch, state.global_step, sorted(metrics)))
    def on_epoch_end(self, state): EVENTS.append(("on_epoch_end", state.epoch, state.global_step))
    def on_train_end(self, state): EVENTS.append(("on_train_end", state.epoch, state.global_step))


@hookimpl
def callback(register):
    register("recorder", Recorder)
"""


def test_events_fire_in_order(write_task, tiny_model_dir, run_engine):
    rows = "text\tlabel\n" + "".join(f"word{i % 3} good\tpos\nword{i % 3} bad\tneg\n" for i in range(8))
    path = write_task(
        {"task": "classification", "model": {"name": str(tiny_model_dir)},
         "data": {"train": "t.tsv", "validation": "t.tsv"}, "training": {"epochs": 2, "batch_size": 8, "eval_steps": 1},
         "callbacks": ["recorder"], "plugins": ["recorder_plugin"]},
        {"t.tsv": rows, "recorder_plugin.py": RECORDER},
    )
    assert run_engine("run", path).exit_code == 0, "run failed"
    import recorder_plugin

    names = [e[0] for e in recorder_plugin.EVENTS]
    assert names == [
        "on_train_begin",
        "on_epoch_begin", "on_step_end", "on_evaluate", "on_step_end", "on_evaluate", "on_epoch_end",
        "on_epoch_begin", "on_step_end", "on_evaluate", "on_step_end", "on_evaluate", "on_epoch_end",
        "on_train_end",
    ]
    steps = [e[2] for e in recorder_plugin.EVENTS if e[0] == "on_step_end"]
    assert steps == [1, 2, 3, 4]
    step_logs = next(e[3] for e in recorder_plugin.EVENTS if e[0] == "on_step_end")
    assert step_logs == ["loss", "lr"]
    evaluated = next(e[3] for e in recorder_plugin.EVENTS if e[0] == "on_evaluate")
    assert "validation.accuracy" in evaluated
    assert set(names) == set(EVENTS)


def test_callbacks_without_every_method_are_fine():
    class OnlyEnd:
        def __init__(self):
            self.ended = False

        def on_train_end(self, state):
            self.ended = True

    only = OnlyEnd()
    callbacks = CallbackList([only, Callback()])
    for event in EVENTS:
        callbacks.fire(event, None, {}) if event in ("on_step_end", "on_evaluate") else callbacks.fire(event, None)
    assert only.ended
