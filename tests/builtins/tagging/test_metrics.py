"""Entity metrics agree with seqeval's defaults (conlleval-style spans) on BIO, IOB1, BIOES and ill-formed tags,
also after the task has converted the tags to BIO, as it does before scoring."""

import random

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

from engine import EngineError
from engine_builtins.tagging import PerTypeOptions, TaggingOptions
from engine_builtins.tagging.metrics import entity_metric, entity_per_type, token_accuracy
from engine_builtins.tagging.schemes import normalize
from engine_builtins.tagging.tagger import TaggingTask

TASK = TaggingTask(TaggingOptions())

CASES = {
    "bio": (
        [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG"]],
        [["B-PER", "I-PER", "O", "O"], ["O", "B-ORG", "I-ORG", "O"]],
    ),
    "iob1": (
        [["I-PER", "I-PER", "B-PER", "O"], ["I-LOC", "O", "I-MISC", "I-MISC"]],
        [["I-PER", "I-PER", "I-PER", "O"], ["I-LOC", "O", "I-MISC", "B-MISC"]],
    ),
    "bioes": (
        [["B-PER", "E-PER", "O", "S-LOC"], ["S-ORG", "B-ORG", "I-ORG", "E-ORG"]],
        [["B-PER", "E-PER", "O", "B-LOC"], ["S-ORG", "B-ORG", "E-ORG", "O"]],
    ),
    "ill-formed": (
        [["O", "I-PER", "I-PER", "O"], ["B-LOC", "I-PER", "O", "I-LOC"]],
        [["B-PER", "I-LOC", "I-PER", "O"], ["I-LOC", "I-LOC", "O", "O"]],
    ),
    "no entities predicted": ([["B-PER", "O"]], [["O", "O"]]),
}


def ours(true, pred):
    references = [normalize(t) for t in true]
    predictions = [{"tags": normalize(p)} for p in pred]
    values = {}
    for which in ("precision", "recall", "f1"):
        for average in ("micro", "macro"):
            values.update(entity_metric(which, average)(None, TASK)(predictions, references))
    values.update(entity_per_type(PerTypeOptions(values=["precision", "recall", "f1", "support"]), TASK)(predictions, references))
    return values


def theirs(true, pred):
    values = {}
    for name, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        values[f"entity_{name}"] = fn(true, pred, zero_division=0)
        values[f"entity_{name}_macro"] = fn(true, pred, average="macro", zero_division=0)
    report = classification_report(true, pred, output_dict=True, zero_division=0)
    for kind, scores in report.items():
        if kind.endswith(" avg"):
            continue
        values.update({f"entity_{k}/{kind}": float(scores[k if k != "f1" else "f1-score"])
                       for k in ("precision", "recall", "f1", "support")})
    return values


@pytest.mark.parametrize("case", CASES)
def test_matches_seqeval(case):
    true, pred = CASES[case]
    assert ours(true, pred) == pytest.approx(theirs(true, pred))


def test_matches_seqeval_on_random_corpora():
    rng = random.Random(5)
    alphabet = ["O", "O", "O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "S-LOC", "E-LOC", "I-ORG"]
    for _ in range(200):
        true = [[rng.choice(alphabet) for _ in range(rng.randint(1, 8))] for _ in range(rng.randint(1, 6))]
        pred = [[rng.choice(alphabet) if rng.random() < 0.4 else t for t in sentence] for sentence in true]
        assert ours(true, pred) == pytest.approx(theirs(true, pred))


def test_a_known_case_by_hand():
    # Gold: PER(0-2), LOC(3). Predicted: PER(0-2) right, LOC missed, ORG(4) spurious.
    values = ours([["B-PER", "I-PER", "O", "B-LOC", "O"]], [["B-PER", "I-PER", "O", "O", "B-ORG"]])
    assert values["entity_precision"] == pytest.approx(1 / 2)
    assert values["entity_recall"] == pytest.approx(1 / 2)
    assert values["entity_f1_macro"] == pytest.approx(1 / 3)  # PER 1, LOC 0, ORG 0


def test_token_accuracy_counts_o_tokens_too():
    compute = token_accuracy(None, TASK)
    assert compute([{"tags": ["B-PER", "O", "O"]}], [["B-PER", "O", "B-LOC"]]) == {"token_accuracy": pytest.approx(2 / 3)}


def test_per_type_lists_every_type_of_the_model_even_when_absent():
    task = TaggingTask(TaggingOptions(types=["LOC", "PER"]))
    values = entity_per_type(PerTypeOptions(), task)([{"tags": ["B-PER"]}], [["B-PER"]])
    assert values == {"entity_f1/LOC": 0.0, "entity_f1/PER": 1.0}


def test_entity_metrics_refuse_a_task_that_does_not_tag():
    with pytest.raises(EngineError, match="'entity_f1' scores entities in tag sequences"):
        entity_metric("f1", "micro")(None, object())
