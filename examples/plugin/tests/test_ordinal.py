"""engine-ordinal's tests, on the fixtures engine ships for plugin authors (tiny_task, run_engine, plugin_manager,
tiny_model_dir), which pytest loads by itself wherever engine is installed. Run them with the plugin installed:
``pip install -e examples/plugin && python -m pytest examples/plugin``."""

import json

import pytest
import torch
from engine_ordinal import OrdinalOptions
from engine_ordinal.attention import AttentionPoolingHead
from engine_ordinal.metrics import kappa
from engine_ordinal.ranks import OrdinalTask, cumulative_loss, level_probabilities, monotone

from engine import DataError, EngineError, Split
from engine.head import HeadSpec


def split(*labels):
    rows = [{"text": "x", "label": label, "_line": i + 2} for i, label in enumerate(labels)]
    return Split("train", rows, "train.tsv")


# --- the task ------------------------------------------------------------------------------------------------------


def test_numeric_levels_are_ordered_as_numbers():
    task = OrdinalTask(OrdinalOptions())
    task.fit(split("10", "2", "1", "2"))
    assert task.levels == ["1", "2", "10"]


def test_word_levels_need_their_order_in_the_task_file():
    with pytest.raises(DataError, match=r"'high', 'low' are not numbers.*\"levels\": \[\.\.\.\]"):
        OrdinalTask(OrdinalOptions()).fit(split("low", "high"))
    task = OrdinalTask(OrdinalOptions(levels=["low", "medium", "high"]))
    task.fit(split("low", "high"))
    assert task.rank("high") == 2


def test_an_unknown_level_points_at_its_line():
    task = OrdinalTask(OrdinalOptions(levels=["low", "high"]))
    with pytest.raises(DataError, match=r"train.tsv, line 3: unknown level 'mid'"):
        task.check(split("low", "mid"))


def test_the_loss_asks_each_threshold_whether_the_rank_is_above_it():
    # Logits that are confidently right for rank 1 of 3 levels: above threshold 0, not above threshold 1.
    right = cumulative_loss(torch.tensor([[9.0, -9.0]]), torch.tensor([1]))
    wrong = cumulative_loss(torch.tensor([[-9.0, 9.0]]), torch.tensor([1]))
    assert right < 1e-3 < 8 < wrong


def test_predictions_are_consistent_even_when_the_thresholds_disagree():
    above = monotone([0.4, 0.7, 0.2])  # P(rank > 1) cannot exceed P(rank > 0)
    assert above == [0.4, 0.4, 0.2]
    probabilities = level_probabilities(above)
    assert probabilities == pytest.approx([0.6, 0.0, 0.2, 0.2]) and sum(probabilities) == pytest.approx(1.0)


# --- the metrics ---------------------------------------------------------------------------------------------------


def test_kappa_is_one_for_agreement_minus_one_for_reversal_and_zero_for_chance():
    assert kappa([0, 1, 2], [0, 1, 2], 3) == 1.0
    assert kappa([2, 1, 0], [0, 1, 2], 3) == pytest.approx(-1.0)
    assert kappa([0, 0, 1, 1], [0, 1, 0, 1], 2) == pytest.approx(0.0)


def test_kappa_weighs_far_misses_more_than_near_ones():
    actual = [0, 1, 2, 3, 4] * 4
    near = [min(a + 1, 4) for a in actual]
    far = [min(a + 3, 4) for a in actual]
    assert kappa(near, actual, 5) > kappa(far, actual, 5)


def test_metrics_refuse_a_task_without_ordered_labels(plugin_manager):
    import engine_ordinal

    plugin_manager.add_module("ordinal", engine_ordinal)
    qwk = plugin_manager.registry().get("metric", "qwk")
    with pytest.raises(EngineError, match="'qwk' measures ordered single labels"):
        qwk.build(None, object())


# --- the head ------------------------------------------------------------------------------------------------------


def test_attention_pooling_ignores_padding():
    torch.manual_seed(0)
    head = AttentionPoolingHead(HeadSpec(8, 2, "sequence"), dropout=0.0, attention_size=4)
    hidden = torch.randn(1, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    changed = hidden.clone()
    changed[:, 3:] = 100.0  # what padding holds must not matter
    with torch.no_grad():
        pooled, weights = head.pool(hidden, mask)
        assert torch.allclose(pooled, head.pool(changed, mask)[0])
    assert weights[0, 3:].sum().item() == 0 and weights.sum().item() == pytest.approx(1.0)


def test_attention_pooling_refuses_token_level_tasks():
    with pytest.raises(EngineError, match="pools a sequence into one vector"):
        AttentionPoolingHead(HeadSpec(8, 3, "token"), dropout=0.0, attention_size=None)


# --- whole runs, through the installed entry point -----------------------------------------------------------------


def test_an_ordinal_run_uses_the_plugins_head_and_metrics_and_reloads(tiny_task, run_engine, tmp_path):
    path = tiny_task("ordinal", ["1", "2", "3"])
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    run_dir = path.parent / "runs/tiny"
    resolved = json.loads((run_dir / "task.json").read_text())
    assert resolved["head"]["name"] == "attention_pooling"  # the task's default
    metrics = json.loads((run_dir / "metrics.json").read_text())["validation"]
    assert set(metrics) == {"loss", "qwk", "rank_mae"}
    (tmp_path / "in.tsv").write_text("text\nthe film was great\nthe film was awful\n")
    predicted = run_engine("predict", run_dir, "--input", tmp_path / "in.tsv")
    assert predicted.exit_code == 0, predicted.stderr
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["label"] for r in rows] == [["1", "2", "3"][r["rank"]] for r in rows]
    assert all(sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-4) for r in rows)
    evaluated = run_engine("evaluate", run_dir, "--data", path.parent / "validation.tsv",
                           "--output", tmp_path / "m.json")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads((tmp_path / "m.json").read_text()) == pytest.approx(metrics)  # the same model, the same rows


def test_classification_with_the_attention_pooling_head(tiny_task, run_engine):
    path = tiny_task(head="attention_pooling", metrics=["accuracy", "qwk"], rows=16)
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    assert {"accuracy", "qwk"} <= set(json.loads((path.parent / "runs/tiny/metrics.json").read_text())["validation"])


def test_stop_at_target_ends_training_once_reached(tiny_task, run_engine):
    path = tiny_task("ordinal", ["1", "2", "3"], training={"epochs": 3, "batch_size": 8, "seed": 5},
                     callbacks=[{"name": "stop_at_target", "monitor": "validation.rank_mae", "target": 2.0}], rows=16)
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    history = [json.loads(line) for line in (path.parent / "runs/tiny/history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history if h["event"] == "evaluate"] == [1]  # rank_mae <= 2 always, of 3 levels


def test_a_misspelt_option_is_caught_before_training(tiny_task, run_engine):
    result = run_engine("validate", tiny_task("ordinal", ["1", "2"], head={"name": "attention_pooling", "dropot": 0.1}))
    assert result.exit_code == 2
    assert "head.dropot: unknown key (did you mean 'dropout'?)" in " ".join(result.stderr.split())


def test_declaring_imports_no_torch():
    """engine validate and engine plugins import every plugin; they stay fast only if declaring is light."""
    import subprocess
    import sys

    code = "import sys, engine_ordinal; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "[]"
