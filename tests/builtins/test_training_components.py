"""Freezing strategies, augmentations, optimizer parameter groups and schedules."""

import itertools
import random
import types

import pytest
import torch
from transformers import BertConfig, BertModel

from engine.head import HeadSpec
from engine.model.encoder import EngineModel
from engine_builtins import augmentations, freezing, optimizers
from engine_builtins.heads import LinearOptions, build_linear


@pytest.fixture
def model():
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32)
    backbone = BertModel(config)
    head = build_linear(LinearOptions(), HeadSpec(16, 3, "sequence"))
    return EngineModel(backbone, head, ["input_ids", "attention_mask"])


def trainable_layers(model):
    total = model.backbone.config.num_hidden_layers
    layers = {optimizers.layer_of(n, total) for n, p in model.backbone.named_parameters() if p.requires_grad}
    return sorted(layers)


def test_layer_numbering(model):
    assert optimizers.layer_of("embeddings.word_embeddings.weight", 4) == 0
    assert optimizers.layer_of("encoder.layer.0.attention.self.query.weight", 4) == 1
    assert optimizers.layer_of("encoder.layer.3.output.dense.bias", 4) == 4
    assert optimizers.layer_of("pooler.dense.weight", 4) == 5


@pytest.mark.parametrize(
    "strategy, options, epoch, expected",
    [
        ("none", None, 0, [0, 1, 2, 3, 4, 5]),
        ("embeddings", None, 0, [1, 2, 3, 4, 5]),
        ("layers", freezing.LayersOptions(n=2), 0, [3, 4, 5]),
        ("backbone", None, 0, []),
        ("gradual", freezing.GradualOptions(start=1, step=2), 0, [4, 5]),  # the top layer (and the pooler above it)
        ("gradual", freezing.GradualOptions(start=1, step=2), 1, [2, 3, 4, 5]),
        ("gradual", freezing.GradualOptions(start=1, step=2), 5, [0, 1, 2, 3, 4, 5]),
    ],
)
def test_freezing(model, strategy, options, epoch, expected):
    getattr(freezing, f"build_{strategy}")(options).apply(model, epoch)
    assert trainable_layers(model) == expected
    assert all(p.requires_grad for p in model.head.parameters())


def test_parameter_groups_decay_only_matrices_and_give_the_head_its_rate(model):
    groups = optimizers.parameter_groups(model, optimizers.AdamWOptions(lr=1e-4, head_lr=1e-3, weight_decay=0.1))
    by_param = {id(p): g for g in groups for p in g["params"]}
    for name, p in model.backbone.named_parameters():
        g = by_param[id(p)]
        assert g["lr"] == 1e-4
        assert g["weight_decay"] == (0.1 if p.ndim >= 2 else 0.0), name
    assert {by_param[id(p)]["lr"] for p in model.head.parameters()} == {1e-3}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_layer_decay_lowers_rates_towards_the_embeddings(model):
    groups = optimizers.parameter_groups(model, optimizers.AdamWOptions(lr=1.0, layer_decay=0.5, weight_decay=0))
    by_param = {id(p): g["lr"] for g in groups for p in g["params"]}
    emb = by_param[id(model.backbone.embeddings.word_embeddings.weight)]
    top = by_param[id(model.backbone.encoder.layer[3].output.dense.weight)]
    assert top == 0.5 and emb == 0.5 ** 5


def test_layer_decay_gives_each_layer_below_the_top_a_share_of_the_rate_above(model):
    """At 0.9 (the sentence tasks' default): the pooler at lr, layer i of n at lr * 0.9 ** (n - i), the embeddings at
    lr * 0.9 ** (n + 1); the same where the encoder's config does not count its layers."""
    layers = model.backbone.config.num_hidden_layers
    for config_counts in (True, False):
        if not config_counts:
            model.backbone.config = types.SimpleNamespace()  # e.g. an encoder of another library
        groups = optimizers.parameter_groups(model, optimizers.AdamWOptions(lr=1.0, head_lr=2.0, layer_decay=0.9))
        by_param = {id(p): g["lr"] for g in groups for p in g["params"]}
        expected = {id(model.backbone.embeddings.word_embeddings.weight): 0.9 ** (layers + 1),
                    id(model.backbone.pooler.dense.weight): 1.0,
                    **{id(model.backbone.encoder.layer[i].output.dense.weight): 0.9 ** (layers - i)
                       for i in range(layers)}}
        assert {k: by_param[k] for k in expected} == pytest.approx(expected)
        assert {by_param[id(p)] for p in model.head.parameters()} == {2.0}


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_the_default_optimizer_is_fused_on_the_cpu_and_steps_as_torchs_reference_loop(name):
    """Fused by default where torch has the kernel; its updates equal torch's per-tensor implementation."""
    def trained(fused):
        torch.manual_seed(0)
        config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=32)
        spec = HeadSpec(16, 3, "sequence", loss=torch.nn.functional.cross_entropy)
        net = EngineModel(BertModel(config), build_linear(LinearOptions(), spec),
                          ["input_ids", "attention_mask"])
        if name == "adamw":
            optimizer = optimizers.build_adamw(optimizers.AdamWOptions(lr=1e-2, weight_decay=0.1, fused=fused), net)
        else:
            optimizer = optimizers.build_sgd(optimizers.SgdOptions(lr=1e-2, weight_decay=0.1, fused=fused), net)
        ids = torch.randint(0, 50, (4, 7))
        for _ in range(5):
            out = net(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 2, 0]))
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return optimizer, net

    default, net = trained(None)
    assert all(group["fused"] for group in default.param_groups)
    reference, reference_net = trained(False)
    assert not any(group["fused"] or group["foreach"] for group in reference.param_groups)
    for (key, value), expected in zip(net.state_dict().items(), reference_net.state_dict().values()):
        if "self.key.bias" in key:  # softmax ignores it: its gradient is rounding noise, which Adam normalizes
            continue
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=key)
    torch.manual_seed(0)
    initial = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=32)).encoder.layer[0].output.dense.weight
    assert (net.backbone.encoder.layer[0].output.dense.weight - initial).abs().max() > 1e-4  # it did train


@pytest.mark.parametrize("shape", ["linear", "cosine", "constant"])
def test_schedules_warm_up_then_decay(shape):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = optimizers._schedule(shape)(optimizers.ScheduleOptions(warmup_steps=4), opt, 20)
    rates = []
    for _ in range(20):
        rates.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert rates[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert rates[4] == pytest.approx(1.0)
    if shape == "constant":
        assert rates[-1] == 1.0
    else:
        assert rates[-1] < 0.1 and all(a >= b for a, b in itertools.pairwise(rates[4:]))


ROWS = [{"text": "one two three four five six seven eight nine ten", "label": "a", "_line": i} for i in range(50)]


@pytest.mark.parametrize("name", ["random_swap", "random_deletion"])
def test_augmentations_are_seeded_and_keep_labels(name):
    factory = getattr(augmentations, name)
    apply = factory(augmentations.WordOptions(p=0.3))
    first = apply(ROWS, random.Random(1))
    assert first == apply(ROWS, random.Random(1))
    assert first != apply(ROWS, random.Random(2))
    assert len(first) == len(ROWS) and all(r["label"] == "a" for r in first)
    assert sum(r["text"] != ROWS[0]["text"] for r in first) > 40
    for row in first:
        words = row["text"].split()
        if name == "random_swap":
            assert sorted(words) == sorted(ROWS[0]["text"].split())
        else:
            assert 1 <= len(words) < 10 or words == ROWS[0]["text"].split()


def test_augmentation_can_keep_originals_and_swaps_only_the_untagged_words_of_token_lists():
    apply = augmentations.random_swap(augmentations.WordOptions(p=0.5, keep_original=True))
    tagged = [{"text": ["John", "lives", "in", "Paris"], "label": ["B-PER", "O", "O", "B-LOC"]}]
    out = apply(ROWS[:3] + tagged, random.Random(0))
    assert out[:4] == ROWS[:3] + tagged and len(out) == 8
    # The entities stay where they were, with their tags; only the two words tagged O trade places.
    assert out[-1] == {"text": ["John", "in", "lives", "Paris"], "label": ["B-PER", "O", "O", "B-LOC"]}


@pytest.mark.parametrize(("task", "decay"), [("classification", 0.9), ("regression", 0.9), ("tagging", None)])
def test_the_sentence_tasks_default_to_layer_decay_and_tagging_to_one_rate(task, decay):
    """The defaults study's choice, per task; a task file's own optimizer wins whole, its layer_decay too."""
    from engine.api.plugins import plugin_manager
    from engine.config.resolve import resolve

    registry = plugin_manager().registry()
    data = {"train": "train.conll" if task == "tagging" else "train.tsv"}
    assert resolve({"task": task, "data": data}, registry).optimizer.options.layer_decay == decay
    sgd = resolve({"task": task, "data": data, "optimizer": "sgd"}, registry).optimizer
    assert sgd.name == "sgd" and sgd.options.layer_decay is None
    one_rate = resolve({"task": task, "data": data, "optimizer": {"layer_decay": None, "lr": 3e-5}}, registry)
    assert one_rate.optimizer.options.layer_decay is None and one_rate.optimizer.options.lr == 3e-5
