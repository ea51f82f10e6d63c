"""The first-token forward of the encoder's last layer gives a first-token head what the whole layer gives it:
the same outputs and the same gradients, with and without padding, under both attention implementations; and it
stays out of the way of every head and encoder it does not fit."""

import threading

import pytest
import torch
from transformers import AutoModel, BertConfig, BertModel

from engine.head import HeadSpec
from engine.model.encoder import EngineModel
from engine.model.first_token import first_token_layer, only_first_token
from engine_builtins.heads.modules import LinearHead, MlpHead


def encoder(tiny_model_dir, implementation="sdpa", dropout=None):
    torch.manual_seed(0)
    model = AutoModel.from_pretrained(tiny_model_dir, attn_implementation=implementation)
    if dropout is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = dropout
    return model


def batch(padded: bool):
    torch.manual_seed(1)
    ids = torch.randint(5, 60, (6, 11))
    mask = torch.ones_like(ids)
    if padded:
        for row, length in enumerate([11, 3, 7, 1, 9, 5]):
            mask[row, length:] = 0
            ids[row, length:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def full_and_first(model, inputs):
    """The pooled output and the gradients of a loss on it, from the whole last layer and from the first token."""
    results = []
    for first in (False, True):
        model.zero_grad(set_to_none=True)
        if first:
            with only_first_token(model) as applied:
                assert applied
                output = model(**inputs)
        else:
            output = model(**inputs)
        pooled, cls = output.pooler_output, output.last_hidden_state[:, 0]
        (pooled.square().sum() + cls.sin().sum()).backward()
        results.append((pooled.detach(), cls.detach(),
                        {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}))
    return results


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("padded", [True, False])
def test_the_first_token_and_every_gradient_equal_the_whole_layers(tiny_model_dir, implementation, padded):
    model = encoder(tiny_model_dir, implementation, dropout=0.0)
    model.train()  # the training path (dropout 0: the same function both ways)
    (pooled, cls, grads), (pooled_1, cls_1, grads_1) = full_and_first(model, batch(padded))
    torch.testing.assert_close(pooled_1, pooled, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cls_1, cls, rtol=1e-5, atol=1e-6)
    assert grads.keys() == grads_1.keys() and len(grads) == len(list(model.parameters()))
    scale = max(g.abs().max().item() for g in grads.values())
    for name in grads:  # (key biases have gradient zero in exact arithmetic: compare against the overall scale)
        torch.testing.assert_close(grads_1[name], grads[name], rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_the_last_layer_is_itself_again_after_the_block_and_after_an_error(tiny_model_dir):
    model = encoder(tiny_model_dir)
    layer = model.encoder.layer[-1]
    with only_first_token(model):
        assert model(**batch(True)).last_hidden_state.shape == (6, 1, 32)
    assert "forward" not in vars(layer)
    assert model(**batch(True)).last_hidden_state.shape == (6, 11, 32)
    hook = layer.intermediate.register_forward_hook(lambda *_: 1 / 0)  # fails inside the first-token forward
    with pytest.raises(ZeroDivisionError), only_first_token(model):
        model(**batch(True))
    hook.remove()
    assert "forward" not in vars(layer)
    assert model(**batch(False)).last_hidden_state.shape == (6, 11, 32)


def test_encoders_it_does_not_fit_run_unchanged():
    decoder = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16, is_decoder=True))
    assert first_token_layer(decoder) is None
    assert first_token_layer(torch.nn.Linear(3, 3)) is None
    checkpointed = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=16))
    assert first_token_layer(checkpointed) is not None
    enable = getattr(checkpointed, "activation_checkpointing_enable", None) or \
        checkpointed.gradient_checkpointing_enable  # (transformers 5 renamed it)
    enable()  # recomputation in the backward pass would run the layer's own forward
    assert first_token_layer(checkpointed) is None
    with only_first_token(torch.nn.Linear(3, 3)) as applied:
        assert not applied


def head(kind, level, pooling):
    spec = HeadSpec(hidden_size=32, num_outputs=3, level=level, loss=torch.nn.functional.cross_entropy)
    return LinearHead(spec, 0.1, pooling) if kind == "linear" else MlpHead(spec, 0.1, pooling, 16, "gelu")


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_only_heads_that_read_the_first_token_alone_say_so(kind):
    assert head(kind, "sequence", "pooler").first_token_only
    assert head(kind, "sequence", "cls").first_token_only
    assert not head(kind, "sequence", "mean").first_token_only
    assert not head(kind, "token", "pooler").first_token_only


@pytest.mark.parametrize("pooling", ["pooler", "cls", "mean"])
def test_the_engine_model_scores_as_with_the_whole_layer(tiny_model_dir, pooling):
    whole = EngineModel(encoder(tiny_model_dir), head("linear", "sequence", pooling),
                        ["input_ids", "attention_mask", "token_type_ids"]).eval()
    layer = whole.backbone.encoder.layer[-1]
    seen = []
    layer.register_forward_hook(lambda module, args, output: seen.append(output.shape[1]))
    inputs = {**batch(True), "labels": torch.tensor([0, 1, 2, 0, 1, 2])}
    with torch.inference_mode():
        fast = whole(**inputs)
        reference = whole.head(whole.backbone(**batch(True)), inputs)  # the whole layer, by hand
    assert seen == ([1, 11] if pooling != "mean" else [11, 11])
    torch.testing.assert_close(fast.logits, reference.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.loss, reference.loss, rtol=1e-5, atol=1e-6)


def test_threads_sharing_the_model_each_get_the_forward_they_asked_for(tiny_model_dir):
    # engine serve's streams run one model from two threads: one inside the block, one not, at the same time.
    model = encoder(tiny_model_dir)
    layer = model.encoder.layer[-1]
    with torch.inference_mode():
        full = model(**batch(True)).last_hidden_state
    entered, leave = threading.Barrier(2), threading.Event()
    shapes: dict[str, tuple[int, ...]] = {}

    def first_only() -> None:
        with torch.inference_mode(), only_first_token(model):
            entered.wait()
            shapes["inside"] = tuple(model(**batch(True)).last_hidden_state.shape)
            leave.wait(10)
            shapes["inside, after the other left"] = tuple(model(**batch(True)).last_hidden_state.shape)

    def whole() -> None:
        entered.wait()
        with torch.inference_mode():
            out = model(**batch(True)).last_hidden_state
        torch.testing.assert_close(out, full)
        shapes["outside"] = tuple(out.shape)
        with only_first_token(model):  # a second thread in the block, leaving first
            shapes["both inside"] = tuple(model(**batch(True)).last_hidden_state.shape)
        leave.set()

    threads = [threading.Thread(target=first_only), threading.Thread(target=whole)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert shapes == {"inside": (6, 1, 32), "outside": (6, 11, 32), "both inside": (6, 1, 32),
                      "inside, after the other left": (6, 1, 32)}
    assert "forward" not in vars(layer)
