"""The pieces that choose or behave differently on CUDA: device and precision selection, fused AdamW, and the
first-token layer under CUDA's sdpa kernels (whose masks must be laid out as the kernel wants)."""

import pytest
import torch
from transformers import AutoModel

from engine.head import HeadSpec
from engine.model.encoder import EngineModel
from engine.model.first_token import only_first_token
from engine.training.precision import resolve_precision, training_device
from engine_builtins.heads.modules import LinearHead
from engine_builtins.optimizers import AdamWOptions, build_adamw


def test_a_run_trains_on_the_gpu_in_bf16_unless_told_otherwise():
    device = training_device()
    assert device.type == "cuda"
    assert resolve_precision("auto", device) == ("bf16" if torch.cuda.is_bf16_supported() else "no")
    for asked in ("no", "bf16", "fp16"):
        assert resolve_precision(asked, device) == asked


@pytest.mark.xfail(strict=True, reason="training_device() asks torch, not Accelerate, so ACCELERATE_USE_CPU=1 on a "
                   "GPU machine gets auto's bf16 for a CPU run, unchecked by the CPU's bf16 refusal")
def test_a_run_sent_to_the_cpu_on_a_gpu_machine_resolves_its_precision_for_the_cpu(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")  # docs/scaling.md: several CPU processes, debugging
    assert training_device().type == "cpu"


def encoder(tiny_model_dir):
    torch.manual_seed(0)
    model = AutoModel.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # the same function both ways
    return model.cuda().train()


def padded_batch():
    torch.manual_seed(1)
    ids = torch.randint(5, 60, (6, 11))
    mask = torch.ones_like(ids)
    for row, length in enumerate([11, 3, 7, 1, 9, 5]):
        mask[row, length:] = 0
        ids[row, length:] = 0
    return {"input_ids": ids.cuda(), "attention_mask": mask.cuda(), "token_type_ids": torch.zeros_like(ids).cuda()}


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-4), (torch.bfloat16, 3e-2)])
def test_the_first_token_layer_under_cuda_sdpa_gives_the_whole_layers_output_and_gradients(tiny_model_dir, dtype,
                                                                                           tolerance):
    model, inputs = encoder(tiny_model_dir), padded_batch()
    results = []
    for first in (False, True):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            if first:
                with only_first_token(model) as applied:
                    assert applied
                    output = model(**inputs)
            else:
                output = model(**inputs)
            cls = output.last_hidden_state[:, 0].float()
        (output.pooler_output.float().square().sum() + cls.sin().sum()).backward()
        results.append((cls.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (cls, grads), (cls_1, grads_1) = results
    torch.testing.assert_close(cls_1, cls, rtol=tolerance, atol=tolerance)
    assert grads.keys() == grads_1.keys()
    scale = max(g.abs().max().item() for g in grads.values())
    for name in grads:  # key biases have gradient zero in exact arithmetic: compared against the overall scale
        torch.testing.assert_close(grads_1[name], grads[name], rtol=tolerance * 10, atol=tolerance * scale, msg=name)


def test_the_engine_model_reads_the_first_token_alone_on_cuda(tiny_model_dir):
    spec = HeadSpec(hidden_size=32, num_outputs=3, level="sequence", loss=torch.nn.functional.cross_entropy)
    model = EngineModel(encoder(tiny_model_dir), LinearHead(spec, 0.0, "pooler"),
                        ["input_ids", "attention_mask", "token_type_ids"]).cuda().eval()
    seen = []
    model.backbone.encoder.layer[-1].register_forward_hook(lambda module, args, output: seen.append(output.shape[1]))
    inputs = {**padded_batch(), "labels": torch.tensor([0, 1, 2, 0, 1, 2]).cuda()}
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        fast = model(**inputs)
        reference = model.head(model.backbone(**padded_batch()), inputs)
    assert seen == [1, 11]
    torch.testing.assert_close(fast.logits.float(), reference.logits.float(), rtol=3e-2, atol=3e-2)


def test_adamw_is_fused_on_cuda_and_steps_as_the_unfused_one(tiny_model_dir):
    from accelerate import Accelerator

    accelerator = Accelerator()
    assert accelerator.device.type == "cuda"
    spec = HeadSpec(hidden_size=32, num_outputs=2, level="sequence", loss=torch.nn.functional.cross_entropy)
    models, optimizers = [], []
    for fused in (None, False):  # None: the engine's default
        torch.manual_seed(0)
        model = EngineModel(encoder(tiny_model_dir), LinearHead(spec, 0.0, "pooler"),
                            ["input_ids", "attention_mask", "token_type_ids"]).cuda()
        optimizer = build_adamw(AdamWOptions(lr=1e-3, fused=fused), model)
        inputs = {**padded_batch(), "labels": torch.tensor([0, 1, 0, 1, 0, 1]).cuda()}
        for _ in range(3):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(**inputs).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        models.append(model)
        optimizers.append(optimizer)
    assert optimizers[0].defaults["fused"] is True and not optimizers[1].defaults["fused"]
    fused_weights, loop_weights = (dict(m.named_parameters()) for m in models)
    for name, weight in fused_weights.items():
        if not name.endswith("attention.self.key.bias"):  # gradient zero but for float noise, which AdamW scales up
            torch.testing.assert_close(weight, loop_weights[name], rtol=1e-4, atol=1e-5, msg=name)
