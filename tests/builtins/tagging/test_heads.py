"""The crf and softmax heads: the CRF runs over the tagged positions only, never decodes a forbidden transition,
trains at head_lr, and exports to transformers only where transformers has the head (softmax)."""

from types import SimpleNamespace

import pytest
import torch

from engine import EngineError
from engine.head import HeadSpec
from engine.model.encoder import EngineModel
from engine_builtins.optimizers import AdamWOptions, parameter_groups
from engine_builtins.tagging import CrfOptions, SoftmaxOptions, build_crf, build_softmax
from engine_builtins.tagging.heads import pack, token_cross_entropy
from engine_builtins.tagging.schemes import normalize

TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def spec(level="token"):
    return HeadSpec(8, len(TAGS), level, loss=token_cross_entropy, labels=TAGS)


def batch_of(seed=0, batch=4, seq=9):
    """Random hidden states; tags at some positions of each row (as first subwords would be), -100 elsewhere."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, seq, 8, generator=g)
    tag_mask = torch.rand(batch, seq, generator=g) < 0.6
    tag_mask[:, 0] = False  # [CLS]
    tag_mask[:, 1] = True  # every row has a word
    labels = torch.randint(0, len(TAGS), (batch, seq), generator=g).masked_fill(~tag_mask, -100)
    return SimpleNamespace(last_hidden_state=hidden), {"tag_mask": tag_mask, "labels": labels,
                                                       "attention_mask": torch.ones(batch, seq, dtype=torch.long)}


def test_pack_moves_masked_positions_left_in_order():
    values = torch.arange(12).view(2, 6)
    mask = torch.tensor([[0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    packed, packed_mask, index = pack(values, mask)
    assert packed[0].tolist() == [1, 3, 4] and packed[1, 0].item() == 6
    assert packed_mask.tolist() == [[True, True, True], [True, False, False]]
    assert len(set(index[1].tolist())) == 3  # distinct, so scattering back never collides


def test_crf_loss_is_the_crf_over_the_tagged_positions_only():
    torch.manual_seed(0)
    head = build_crf(CrfOptions(dropout=0.0), spec())
    output, batch = batch_of()
    result = head(output, batch)
    emissions = head.classifier(output.last_hidden_state)
    expected = 0.0
    for row in range(4):
        mask = batch["tag_mask"][row]
        llh = head.crf.log_likelihood(emissions[row, mask][None], batch["labels"][row, mask][None], reduction="sum")
        expected = expected - llh
    assert result.loss.item() == pytest.approx((expected / batch["tag_mask"].sum()).item(), rel=1e-5)
    # Changing hidden states at untagged positions (later subwords, padding) changes nothing.
    output.last_hidden_state[~batch["tag_mask"]] = 100.0
    assert head(output, batch).loss.item() == pytest.approx(result.loss.item(), rel=1e-6)


def test_crf_decodes_only_allowed_sequences_and_only_at_tagged_positions():
    torch.manual_seed(1)
    head = build_crf(CrfOptions(), spec()).eval()
    with torch.no_grad():
        head.crf.transitions.fill_(0.0)
        head.classifier.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0, 5.0]))  # emissions that favour I- everywhere
    for seed in range(20):
        output, batch = batch_of(seed)
        predictions = head(output, batch).predictions
        assert (predictions[~batch["tag_mask"]] == -1).all()
        for row in range(4):
            tags = [TAGS[t] for t in predictions[row, batch["tag_mask"][row]].tolist()]
            assert normalize(tags) == tags, tags  # never I- after O or after another type
    unconstrained = build_crf(CrfOptions(constrained=False), spec())
    assert unconstrained.crf.allowed is None


def test_transitions_learn_at_head_lr():
    head = build_crf(CrfOptions(), spec())
    model = EngineModel(torch.nn.Linear(2, 2), head, [])
    groups = parameter_groups(model, AdamWOptions(lr=1e-5, head_lr=1e-3))
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    for param in (head.crf.transitions, head.crf.start_transitions, head.crf.end_transitions, head.classifier.weight):
        assert lr_of[id(param)] == 1e-3


def test_transitions_are_not_decayed_but_the_emission_layer_is():
    head = build_crf(CrfOptions(), spec())
    model = EngineModel(torch.nn.Linear(2, 2), head, [])
    groups = parameter_groups(model, AdamWOptions(weight_decay=0.1))
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay_of[id(head.crf.transitions)] == 0.0
    assert decay_of[id(head.classifier.weight)] == 0.1


def test_crf_has_no_transformers_export_and_softmax_exports_token_classification():
    assert build_crf(CrfOptions(), spec()).hf_export() is None
    kind, weights = build_softmax(SoftmaxOptions(), spec()).hf_export()
    assert kind == "token_classification" and set(weights) == {"classifier.weight", "classifier.bias"}


def test_softmax_loss_ignores_untagged_positions():
    torch.manual_seed(0)
    head = build_softmax(SoftmaxOptions(dropout=0.0), spec())
    output, batch = batch_of()
    result = head(output, batch)
    logits = head.classifier(output.last_hidden_state)
    mask = batch["tag_mask"]
    expected = torch.nn.functional.cross_entropy(logits[mask], batch["labels"][mask])
    assert result.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_crf_refuses_a_sequence_level_task():
    with pytest.raises(EngineError, match="head 'crf' tags tokens"):
        build_crf(CrfOptions(), spec("sequence"))
