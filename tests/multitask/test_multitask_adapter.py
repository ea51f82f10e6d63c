"""An adapter with several tasks: one LoRA on the shared encoder, trained with every task's head; the run saves
adapter/ (the adapter and every head) and model/ (the adapter merged), and both predict every task the same."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

import engine

TEXTS = ["john was good", "the film was a good paris", "mary", "a good film paul berlin"]


def test_a_lora_adapter_is_shared_by_every_task_and_saved_in_both_forms(multitask_files, tiny_model_dir, tmp_path,
                                                                         assert_close):
    task = multitask_files(tmp_path, epochs=1)
    task["adapter"] = {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0}
    (tmp_path / "task.json").write_text(json.dumps(task), encoding="utf-8")
    result = engine.train(tmp_path / "task.json")
    run = result.run_dir
    manifest = json.loads((run / "manifest.json").read_text())
    lora_weights = 2 * 2 * (32 * 4 + 4 * 32)  # tiny BERT: 2 layers x (query, value) x (A and B at r 4, 32 wide)
    assert manifest["adapter"]["parameters"] == lora_weights
    from_merged, from_adapter = engine.load(run), engine.load(run / "adapter")
    heads = sum(p.numel() for t in from_merged.tasks.values() for p in t.model.head.parameters())
    assert manifest["parameters"]["trainable"] == lora_weights + heads  # the encoder's own weights stay frozen

    # model/: only the adapted matrices moved from the pretrained encoder.
    merged = load_file(str(run / "model/model.safetensors"))
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    changed = {name.removeprefix("bert.") for name, weight in base.items()
               if not torch.equal(merged[next(k for k in merged if k.endswith(name.removeprefix("bert.")))], weight)}
    assert changed == {f"encoder.layer.{i}.attention.self.{m}.weight" for i in range(2) for m in ("query", "value")}

    # adapter/: peft's adapter, the tokenizer and every task's head; it names its base model.
    adapter = run / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and not (adapter / "model.safetensors").exists()
    listed = json.loads((adapter / "engine.json").read_text())
    assert list(listed["tasks"]) == ["sentiment", "entities", "score"]
    assert listed["adapter"]["base_model"] == str(tiny_model_dir)
    for name in listed["tasks"]:
        assert load_file(str(adapter / f"heads/{name}/head.safetensors")).keys() == \
            load_file(str(run / f"model/heads/{name}/head.safetensors")).keys()

    assert len({id(t.model.backbone) for t in from_adapter.tasks.values()}) == 1
    for name in ("sentiment", "entities", "score"):
        assert_close(from_merged.predict(TEXTS, task=name), from_adapter.predict(TEXTS, task=name))


