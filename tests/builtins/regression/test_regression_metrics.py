"""Regression metrics against scipy and scikit-learn, per target and averaged, with ties and constant inputs."""

import math
import random

import pytest
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from engine import EngineError
from engine_builtins.regression import metrics


def sample(n, seed, ties=False):
    rng = random.Random(seed)
    actual = [rng.uniform(0, 5) for _ in range(n)]
    predicted = [a + rng.gauss(0, 1) for a in actual]
    if ties:  # scores on a coarse grid, as STS-B's, so many values tie
        actual = [round(a * 2) / 2 for a in actual]
        predicted = [round(p) for p in predicted]
    return predicted, actual


REFERENCES = {
    "mse": mean_squared_error,
    "rmse": lambda a, p: math.sqrt(mean_squared_error(a, p)),
    "mae": mean_absolute_error,
    "r2": r2_score,
    "pearson": lambda a, p: stats.pearsonr(a, p).statistic,
    "spearman": lambda a, p: stats.spearmanr(a, p).statistic,
}


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_each_metric_equals_the_reference_implementation(name, seed, ties):
    predicted, actual = sample(200, seed, ties)
    assert metrics.SCORES[name](predicted, actual) == pytest.approx(REFERENCES[name](actual, predicted), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_ranks_average_ties_as_scipy(seed):
    rng = random.Random(seed)
    values = [rng.choice([0.0, 0.5, 1.0, 2.5, 5.0]) for _ in range(50)]
    assert metrics.ranks(values) == stats.rankdata(values, method="average").tolist()
    assert metrics.ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]


def test_constant_inputs_give_finite_values():
    # A NaN would freeze the best-model selection: every later comparison with it is false.
    assert metrics.pearson([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]) == 0.0
    assert metrics.spearman([0.0, 1.0, 2.0], [2.0, 2.0, 2.0]) == 0.0
    assert metrics.r2([2.0, 2.0], [2.0, 2.0]) == r2_score([2.0, 2.0], [2.0, 2.0]) == 1.0
    assert metrics.r2([1.0, 3.0], [2.0, 2.0]) == r2_score([2.0, 2.0], [1.0, 3.0]) == 0.0


class FakeTask:
    def __init__(self, targets):
        self.targets = targets


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_several_targets_get_a_value_each_and_the_plain_name_is_their_mean(name):
    (p1, a1), (p2, a2) = sample(80, 3), sample(80, 4, ties=True)
    compute = metrics.factory(name)(None, FakeTask(["sim", "rel"]))
    values = compute([[x, y] for x, y in zip(p1, p2)], [[x, y] for x, y in zip(a1, a2)])
    assert set(values) == {name, f"{name}_sim", f"{name}_rel"}
    assert values[f"{name}_sim"] == pytest.approx(REFERENCES[name](a1, p1), rel=1e-9)
    assert values[f"{name}_rel"] == pytest.approx(REFERENCES[name](a2, p2), rel=1e-9)
    assert values[name] == pytest.approx((values[f"{name}_sim"] + values[f"{name}_rel"]) / 2)


def test_one_target_gives_only_the_plain_name():
    predicted, actual = sample(30, 5)
    compute = metrics.factory("pearson")(None, FakeTask(["value"]))
    assert compute([[p] for p in predicted], [[a] for a in actual]) == {"pearson": pytest.approx(stats.pearsonr(actual, predicted).statistic)}


def test_a_task_that_predicts_no_numbers_is_refused():
    class Labels:
        labels = ("negative", "positive")

    with pytest.raises(EngineError, match="'spearman' scores numeric predictions"):
        metrics.factory("spearman")(None, Labels())


def test_the_plugin_registers_every_metric(plugin_manager):
    registry = plugin_manager.registry()
    for name in REFERENCES:
        component = registry.find("metric", name)
        assert component is not None and component.plugin == "regression"
