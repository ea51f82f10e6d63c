"""The run report, `engine report`, `engine compare` and experiment trackers, on tiny runs and hand-made predictions."""

import csv
import json
import math
import struct
from collections import Counter
from xml.etree import ElementTree

import pytest

from engine.report.document import Report
from engine.report.run_report import write_report


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


SVG = "{http://www.w3.org/2000/svg}"


def svg_of(path):
    """The parsed SVG document (a parse error fails the test), and its size in pixels."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == f"{SVG}svg", f"{path} is not an SVG document"
    return root, (float(root.get("width")), float(root.get("height")))


def test_a_run_leaves_a_report_predictions_and_tensorboard_events(tiny_task, run_engine):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = tiny_task(labels=("bad", "good", "great"), rows=48,
                     training={"epochs": 2, "batch_size": 8, "seed": 13, "report_to": ["tensorboard"]},
                     callbacks=[{"name": "history", "every": 1}])
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    run = path.parent / "runs" / "tiny"
    steps = json.loads((run / "manifest.json").read_text())["steps"]

    # The report: its images are SVG documents of a legible size, and the page shows them and the run's numbers.
    page = (run / "report" / "index.html").read_text()
    for image in ("learning_curves.svg", "confusion_matrix.svg"):
        _, (width, height) = svg_of(run / "report" / image)
        assert width >= 400 and height >= 300
        assert f'src="{image}"' in page
    # The loss curve has a point for every logged step; the matrix's cells count every validation row.
    history = [json.loads(line) for line in (run / "history.jsonl").open()]
    curves, _ = svg_of(run / "report" / "learning_curves.svg")
    loss_line = curves.find(f".//{SVG}polyline").get("points").split()
    assert len(loss_line) == sum("loss" in h for h in history if h["event"] == "train") == steps
    matrix, _ = svg_of(run / "report" / "confusion_matrix.svg")
    cells = [int(t.text) for t in matrix.iter(f"{SVG}text") if t.text.isdigit() and t.get("font-size") != "10"]
    assert len(cells) == 9 and sum(cells) == 24
    for title in ("Summary", "Learning curves", "Per-label scores: validation", "Confusion matrix: validation",
                  "Settings", "Manifest"):
        assert f"<h2>{title}" in page
    accuracy = json.loads((run / "metrics.json").read_text())["validation"]["accuracy"]
    assert f"{accuracy:.4f}" in page
    assert "report: " in result.stderr + result.stdout

    # The saved predictions are the best model's: scored again, they give the metrics the run reported.
    records = [json.loads(line) for line in (run / "predictions" / "validation.jsonl").open()]
    assert len(records) == 24 and [r["line"] for r in records] == list(range(2, 26))
    assert sum(r["prediction"]["label"] == r["reference"] for r in records) / len(records) == pytest.approx(accuracy)

    # TensorBoard's event files, read back: the loss at every step, every evaluation, the task file.
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == list(range(1, steps + 1))
    history = [json.loads(line) for line in (run / "history.jsonl").open()]
    logged = [h["loss"] for h in history if h["event"] == "train"]
    assert [e.value for e in losses] == pytest.approx(logged, rel=1e-6)
    assert [e.value for e in events.Scalars("validation/accuracy")][-1] == pytest.approx(
        [h["validation.accuracy"] for h in history if h["event"] == "evaluate"][-1], rel=1e-6)
    assert len(events.Scalars("train/lr")) == steps
    text = events.Tensors("task.json/text_summary")[0].tensor_proto.string_val[0].decode()
    assert 'task.name="classification"' in text and "training.batch_size=8" in text


def test_engine_report_remakes_the_report_of_a_killed_run(tiny_task, run_engine):
    path = tiny_task(training={"epochs": 2, "batch_size": 8, "seed": 13, "report": False},
                     callbacks=[{"name": "history", "every": 1}])
    assert run_engine("run", path).exit_code == 0
    run = path.parent / "runs" / "tiny"
    assert not (run / "report").exists()  # training.report: false
    # What a kill leaves: no model, no metrics, the manifest still says running, the last history line cut short.
    for gone in ("metrics.json",):
        (run / gone).unlink()
    import shutil

    shutil.rmtree(run / "model")
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    with (run / "history.jsonl").open("a") as f:
        f.write('{"epoch": 2, "step": 9, "ev')

    result = run_engine("report", run)
    assert result.exit_code == 0, result.stderr
    page = (run / "report" / "index.html").read_text()
    assert "stopped before it finished" in page
    assert "its last evaluation" in page
    assert "Confusion matrix: validation" in page  # from the best predictions saved while it ran
    assert svg_of(run / "report" / "learning_curves.svg")[1][0] >= 400


def test_engine_report_refuses_what_is_not_a_run(tmp_path, run_engine):
    result = run_engine("report", tmp_path)
    assert result.exit_code != 0
    assert "not a run directory" in result.stderr and "Traceback" not in result.stderr


def test_a_report_that_fails_to_draw_does_not_fail_the_run(tiny_task, run_engine, monkeypatch):
    import engine.report.run_report

    def broken(*args, **kwargs):
        raise ValueError("no room on the canvas")

    monkeypatch.setattr(engine.report.run_report, "learning_curves", broken)
    result = run_engine("run", tiny_task())
    assert result.exit_code == 0
    assert "the run report could not be written (ValueError: no room on the canvas)" in result.stderr
    assert (tiny_task().parent / "runs" / "tiny" / "model" / "engine.json").is_file()


def test_engine_compare_tabulates_what_differs_and_plots_the_runs(tiny_task, run_engine, tmp_path):
    path = tiny_task()
    assert run_engine("run", path, "--set", "output_dir=runs/slow").exit_code == 0
    assert run_engine("run", path, "--set", "output_dir=runs/fast", "--set", "optimizer.lr=0.003").exit_code == 0
    runs = path.parent / "runs"
    result = run_engine("compare", runs / "slow", runs / "fast", "--output", tmp_path / "cmp")
    assert result.exit_code == 0, result.stderr
    rows = {row[0]: row[1:] for row in csv.reader((tmp_path / "cmp" / "comparison.csv").open())}
    assert rows[""] == ["slow", "fast"]
    assert rows["optimizer.lr"] == ["0.0001", "0.003"]  # the default is recorded, so it shows
    assert "training.epochs" not in rows and "output_dir" not in rows  # the same in both, or says nothing
    for name in ("slow", "fast"):
        accuracy = json.loads((runs / name / "metrics.json").read_text())["validation"]["accuracy"]
        assert float(rows["validation.accuracy"][["slow", "fast"].index(name)]) == pytest.approx(accuracy)
    plot, (width, _) = svg_of(tmp_path / "cmp" / "comparison.svg")
    assert width >= 600 and {"slow", "fast"} <= {t.text for t in plot.iter(f"{SVG}text")}  # the legend
    assert "optimizer.lr" in result.stdout

    alone = run_engine("compare", runs / "slow")
    assert alone.exit_code != 0 and "two or more" in alone.stderr


@pytest.mark.parametrize(("value", "message"), [
    (["tensorbord"], "unknown tracker 'tensorbord' (did you mean 'tensorboard'?)"),
    (["aim"], "tracker 'aim' needs the aim package, which is not installed (pip install aim)"),
])
def test_report_to_names_a_tracker_that_is_installed(tiny_task, run_engine, value, message):
    pytest.importorskip("tensorboard")
    result = run_engine("validate", tiny_task(training={"report_to": value}))
    assert result.exit_code != 0
    assert "training.report_to" in result.stderr and message in result.stderr


# --- the built-in tasks' sections, against reference implementations ----------------------------------------------


def sections(report):
    return {s.title: s for s in report.sections}


def table_of(section):
    return next(value for kind, value in section.parts if kind == "table")


def test_classification_sections_match_scikit_learn(tmp_path):
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    from engine_builtins.classification.report import classification_report, matrix_of

    labels = ["neg", "neu", "pos"]
    true = ["neg", "neg", "neu", "pos", "pos", "pos", "neu", "neg", "pos", "neu"]
    predicted = ["neg", "pos", "neu", "pos", "neg", "pos", "pos", "neg", "pos", "neg"]
    report = Report(tmp_path, "t")
    classification_report(report, "validation", [{"label": p} for p in predicted], true, labels)
    _, rows = table_of(sections(report)["Per-label scores: validation"])
    p, r, f, support = precision_recall_fscore_support(true, predicted, labels=labels, zero_division=0)
    assert [row[0] for row in rows] == labels
    for i, row in enumerate(rows):
        assert [float(row[1]), float(row[2]), float(row[3]), int(row[4])] == pytest.approx(
            [p[i], r[i], f[i], support[i]], abs=1e-4)
    pairs = Counter(zip(true, predicted))
    assert (matrix_of(labels, pairs) == confusion_matrix(true, predicted, labels=labels)).all()
    report.write()
    matrix, (width, _) = svg_of(tmp_path / "confusion_matrix.svg")
    assert width >= 300
    texts = [t.text for t in matrix.iter(f"{SVG}text")]
    expected = confusion_matrix(true, predicted, labels=labels)
    assert [int(t) for t in texts[:9]] == expected.ravel().tolist()  # the cells, row by row


def test_multi_label_classification_has_scores_but_no_matrix(tmp_path):
    from engine_builtins.classification.report import classification_report

    report = Report(tmp_path, "t")
    classification_report(report, "test", [{"label": ["a"]}, {"label": ["a", "b"]}], [["a", "b"], ["b"]], ["a", "b"])
    found = sections(report)
    assert "Confusion matrix: test" not in found
    _, rows = table_of(found["Per-label scores: test"])
    assert [row[0] for row in rows] == ["a", "b"]
    assert rows[1][1:] == ["1.0000", "0.5000", "0.6667", "2", "1"]  # b: 1 of 1 predicted right, 1 of 2 found


def test_entity_errors_are_classified_by_kind():
    from engine_builtins.tagging.report import MISSED, SPURIOUS, entity_errors

    references = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG"],
                  ["O", "B-MISC", "O"]]
    predictions = [["B-ORG", "I-ORG", "O", "O", "B-PER", "B-ORG", "I-ORG", "O"],  # type; missed; spurious; boundary
                   {"tags": ["O", "B-MISC", "O"]}]  # right: no error
    assert entity_errors(predictions, references) == Counter({
        ("PER", "ORG", "type"): 1, ("LOC", MISSED, "missed"): 1, (SPURIOUS, "PER", "spurious"): 1,
        ("ORG", "ORG", "boundary"): 1})


def test_tagging_sections_match_seqeval(tmp_path):
    from seqeval.metrics import classification_report as seqeval_report

    from engine_builtins.tagging.report import tagging_report

    references = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O", "B-PER", "O"], ["O", "B-ORG", "I-ORG", "O"]]
    predictions = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "O", "B-LOC", "O"], ["O", "B-ORG", "O", "O"]]
    report = Report(tmp_path, "t")
    tagging_report(report, "validation", [{"tags": p} for p in predictions], references)
    _, rows = table_of(sections(report)["Entity scores by type: validation"])
    expected = seqeval_report(references, predictions, output_dict=True, zero_division=0)
    assert [row[0] for row in rows] == ["LOC", "ORG", "PER"]
    for row in rows:
        scores = expected[row[0]]
        assert [float(v) for v in row[1:4]] == pytest.approx(
            [scores["precision"], scores["recall"], scores["f1-score"]], abs=1e-4)
        assert int(row[4]) == scores["support"]
    _, rows = table_of(sections(report)["Most frequent entity errors: validation"])
    assert sorted(row[:4] for row in rows) == [["LOC", "O (missed)", "missed", "1"], ["ORG", "ORG", "boundary", "1"],
                                               ["PER", "LOC", "type", "1"]]
    report.write()
    bars, (width, _) = svg_of(tmp_path / "entity_f1.svg")
    assert width >= 300 and {"LOC (2)", "ORG (1)", "PER (2)", "f1", "precision", "recall"} <= {
        t.text for t in bars.iter(f"{SVG}text")}


def test_regression_sections_match_numpy(tmp_path):
    import numpy as np

    from engine_builtins.regression.report import regression_report

    rng = np.random.default_rng(0)
    true = rng.uniform(0, 5, size=(40, 2))
    predicted = true + rng.normal(0.2, 0.5, size=true.shape)
    report = Report(tmp_path, "t")
    regression_report(report, "validation", predicted.tolist(), true.tolist(), ["similarity", "fluency"])
    _, rows = table_of(sections(report)["Predicted and true values: validation"])
    for j, row in enumerate(rows):
        residual = predicted[:, j] - true[:, j]
        assert row[0] == ["similarity", "fluency"][j] and row[1] == "40"
        assert [float(v) for v in row[2:]] == pytest.approx(
            [np.abs(residual).mean(), math.sqrt((residual ** 2).mean()), residual.mean(),
             np.corrcoef(predicted[:, j], true[:, j])[0, 1]], abs=1e-4)
    report.write()
    assert {p.name for p in tmp_path.glob("*.svg")} == {"regression_similarity.svg", "regression_fluency.svg"}
    plot, _ = svg_of(tmp_path / "regression_similarity.svg")
    assert len(list(plot.iter(f"{SVG}circle"))) == 2 * 40  # every row, in both panels


def test_a_written_report_escapes_text_and_keeps_only_its_own_images(tmp_path):
    (tmp_path / "old.png").write_bytes(b"stale")
    (tmp_path / "old.svg").write_text("<svg/>")
    report = Report(tmp_path, "<run>")
    section = report.section("a & b")
    section.text("<script>alert(1)</script>")
    section.table(["x"], [[0.5], [1e-5], [None]])
    figure = section.figure("same", "first")
    figure.subplots().plot([0, 1], [0, 1])
    section.figure("same", "second").subplots().plot([1, 0])
    section.svg("same", "third", '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    page = report.write().read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page and "<h2>a &amp; b</h2>" in page
    assert "<td>0.5000</td>" in page and "<td>1e-05</td>" in page
    assert {p.name for p in tmp_path.glob("*.png")} == {"same.png", "same-2.png"}
    assert {p.name for p in tmp_path.glob("*.svg")} == {"same.svg"} and 'src="same.svg"' in page


def test_write_report_needs_a_run_directory(tmp_path):
    from engine.errors import RunDirError

    with pytest.raises(RunDirError, match="not a run directory"):
        write_report(tmp_path)
