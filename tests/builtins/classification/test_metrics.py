"""Classification metrics agree with scikit-learn on random single- and multi-label data."""

import random

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.preprocessing import MultiLabelBinarizer

from engine_builtins.classification import metrics

SKLEARN = {"precision": precision_score, "recall": recall_score, "f1": f1_score}


def compute(name, predictions, references):
    if name == "accuracy":
        return metrics.accuracy(None, None)(predictions, references)["accuracy"]
    base, average = name.rsplit("_", 1)
    return metrics.prf(base, average)(None, None)(predictions, references)[name]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("name", ["precision", "recall", "f1"])
@pytest.mark.parametrize("average", ["macro", "micro"])
def test_single_label_matches_sklearn(seed, name, average):
    rng = random.Random(seed)
    labels = ["a", "b", "c", "d"]
    refs = [rng.choice(labels[:3]) for _ in range(60)]  # 'd' only ever predicted: counts in macro, as sklearn
    preds = [{"label": rng.choice(labels)} for _ in range(60)]
    expected = SKLEARN[name](refs, [p["label"] for p in preds], average=average, zero_division=0)
    assert compute(f"{name}_{average}", preds, refs) == pytest.approx(expected)
    assert compute("accuracy", preds, refs) == pytest.approx(accuracy_score(refs, [p["label"] for p in preds]))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("name", ["precision", "recall", "f1"])
@pytest.mark.parametrize("average", ["macro", "micro"])
def test_multi_label_matches_sklearn(seed, name, average):
    rng = random.Random(seed)
    labels = ["x", "y", "z"]
    refs = [[label for label in labels if rng.random() < 0.4] for _ in range(50)]
    preds = [{"label": [label for label in labels if rng.random() < 0.4]} for _ in range(50)]
    binarize = MultiLabelBinarizer(classes=labels).fit([labels])
    y_true, y_pred = binarize.transform(refs), binarize.transform([p["label"] for p in preds])
    # sklearn's macro average over all classes equals ours when every class occurs somewhere:
    assert np.all((y_true + y_pred).sum(0) > 0)
    expected = SKLEARN[name](y_true, y_pred, average=average, zero_division=0)
    assert compute(f"{name}_{average}", preds, refs) == pytest.approx(expected)
    assert compute("accuracy", preds, refs) == pytest.approx(accuracy_score(y_true, y_pred))
