"""The `adapter` section (peft): what trains, what is saved, and that every saved form predicts the same."""

import json
import random

import pytest
import torch
from safetensors.torch import load_file

from engine.config.sections import AdapterConfig
from engine.model.adapters import Adapter, FreezeWithAdapter


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lora_trains_only_the_adapter_and_the_head_and_saves_both_forms(tiny_task, tiny_model_dir, run_engine):
    path = tiny_task(rows=48, training={"epochs": 2, "batch_size": 8},
                     adapter={"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0}, optimizer={"lr": 5e-3})
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    run = path.parent / "runs/tiny"
    manifest = json.loads((run / "manifest.json").read_text())
    # Tiny BERT: hidden 32, 2 layers; LoRA r 4 on query and value = 2 layers x 2 modules x (32x4 + 4x32) weights.
    assert manifest["adapter"] == {"method": "lora", "peft_type": "LORA", "target_modules": ["query", "value"],
                                   "parameters": 2 * 2 * (32 * 4 + 4 * 32)}
    assert manifest["parameters"]["trainable"] == 1024 + 32 * 2 + 2  # the adapter and the linear head, nothing else
    assert "adapter lora r 4 on query, value: 1,024 weights" in " ".join(result.stderr.split())
    assert json.loads((run / "task.json").read_text())["adapter"]["r"] == 4

    # model/: the adapter merged into the encoder. Only the adapted matrices moved from the pretrained weights, by
    # exactly B @ A * alpha / r from adapter/ (brute force against peft's merge).
    merged = load_file(str(run / "model/model.safetensors"))
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    lora = load_file(str(run / "adapter/adapter_model.safetensors"))
    changed = set()
    for name, weight in base.items():
        key = next(k for k in merged if k.endswith(name.removeprefix("bert.")))
        if not torch.equal(merged[key], weight):
            changed.add(name.removeprefix("bert."))
    assert changed == {f"encoder.layer.{i}.attention.self.{m}.weight" for i in range(2) for m in ("query", "value")}
    for name in changed:
        stem = name.removesuffix(".weight")
        a, b = (next(v for k, v in lora.items() if k.endswith(f"{stem}.lora_{x}.weight")) for x in "AB")
        expected = base[next(k for k in base if k.endswith(name))] + b @ a * (8 / 4)
        actual = merged[next(k for k in merged if k.endswith(name))]
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)

    # Every saved form predicts the same: engine predict on model/ and on adapter/, and plain transformers.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = [line.split("\t")[0] for line in (path.parent / "validation.tsv").read_text().splitlines()[1:]]
    for source, output in ((run, "merged.jsonl"), (run / "adapter", "adapter.jsonl")):
        assert run_engine("predict", source, "--input", path.parent / "validation.tsv", "--output",
                          path.parent / output).exit_code == 0
    from_merged, from_adapter = read(path.parent / "merged.jsonl"), read(path.parent / "adapter.jsonl")
    assert [p["label"] for p in from_merged] == [p["label"] for p in from_adapter]
    for a, b in zip(from_merged, from_adapter):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)
    assert manifest["transformers_loadable"] is True
    model = AutoModelForSequenceClassification.from_pretrained(run / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    with torch.no_grad():
        probabilities = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1)
    for row, p in zip(probabilities.tolist(), from_merged):
        assert row == pytest.approx([p["scores"]["negative"], p["scores"]["positive"]], abs=1e-5)


@pytest.mark.parametrize("name", ["dora", "ia3"])
def test_other_peft_methods_train_and_predict(name, tiny_task, run_engine):
    path = tiny_task(rows=24, adapter=name)
    assert run_engine("run", path).exit_code == 0
    run = path.parent / "runs/tiny"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["adapter"]["method"] == name and manifest["adapter"]["parameters"] > 0
    assert run_engine("predict", run / "adapter", "--input", path.parent / "validation.tsv").exit_code == 0


def test_an_adapter_works_with_the_crf_tagger_and_regression(write_task, tiny_model_dir, run_engine):
    rng = random.Random(0)
    sentences = "".join("".join(f"{w} {'B-PER' if w in ('john', 'mary') else 'O'}\n"
                                for w in rng.sample(["john", "mary", "the", "was", "good", "film", "here"], 4)) + "\n"
                        for _ in range(24))
    rows = "".join(f"{' '.join(rng.sample(['good', 'bad', 'film', 'the', 'very'], 3))}\t{rng.random():.3f}\n"
                   for _ in range(24))
    files = {"train.conll": sentences, "validation.conll": sentences, "train.tsv": "text\tlabel\n" + rows,
             "validation.tsv": "text\tlabel\n" + rows}
    tagging = {"task": "tagging", "model": {"name": str(tiny_model_dir)}, "head": "crf", "adapter": "lora",
               "data": {"train": "train.conll", "validation": "validation.conll"}, "training": {"epochs": 1},
               "output_dir": "runs/tagging"}
    regression = {"task": "regression", "model": {"name": str(tiny_model_dir)}, "adapter": "lora",
                  "data": {"train": "train.tsv", "validation": "validation.tsv"}, "training": {"epochs": 1},
                  "output_dir": "runs/regression"}
    for config, data in ((tagging, "validation.conll"), (regression, "validation.tsv")):
        path = write_task(config, files, name=f"{config['task']}.json")
        assert run_engine("run", path).exit_code == 0
        run = path.parent / config["output_dir"]
        outputs = []
        for source in (run, run / "adapter"):
            result = run_engine("predict", source, "--input", path.parent / data)
            assert result.exit_code == 0, result.stderr
            outputs.append(result.stdout)
        assert outputs[0] == outputs[1]
        assert (run / "adapter/head.safetensors").is_file()  # the head trains whole and is saved whole
    assert json.loads((tmp := path.parent / "runs/tagging/manifest.json").read_text())["transformers_loadable"] is False, tmp


def test_freezing_still_applies_but_never_to_the_pretrained_weights(tiny_model_dir, plugin_manager):
    from transformers import AutoModel

    from engine.model.encoder import EngineModel

    registry = plugin_manager.registry()
    backbone = AutoModel.from_pretrained(tiny_model_dir)
    adapter = Adapter(AdapterConfig(name="lora", r=2), backbone)
    model = EngineModel(backbone, torch.nn.Linear(32, 2), ["input_ids"])
    for strategy, epoch, layers in (("none", 0, {0, 1}), ("gradual", 0, {1}), ("gradual", 1, {0, 1}),
                                    ("backbone", 0, set())):
        freeze = FreezeWithAdapter(registry.find("freeze", strategy).build(None if strategy != "gradual" else
                                   registry.find("freeze", "gradual").options()), adapter)
        freeze.apply(model, epoch)
        trainable = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
        assert all(".lora_" in n for n in trainable), strategy
        assert {int(n.split("layer.")[1].split(".")[0]) for n in trainable} == layers, (strategy, epoch)


@pytest.mark.parametrize(("adapter", "message"), [
    ({"name": "ia3", "r": 4}, "IA3 takes no r (those are LoRA's)"),
    ({"name": "lorra"}, "adapter.name: input should be 'lora', 'dora' or 'ia3'"),
    ({"name": "lora", "rank": 4}, "adapter.rank: unknown key; allowed keys: name, r, alpha, dropout, target_modules, peft"),
])
def test_adapter_sections_are_validated(adapter, message, tiny_task, run_engine):
    result = run_engine("validate", tiny_task(adapter=adapter))
    assert result.exit_code != 0
    assert message in " ".join(result.stderr.split())


def test_modules_that_are_not_in_the_model_are_one_clear_error(tiny_task, run_engine):
    result = run_engine("run", tiny_task(adapter={"name": "lora", "target_modules": ["q_proj"]}))
    assert result.exit_code != 0
    err = " ".join(result.stderr.split())
    assert "adapter:" in err and "q_proj" in err and "Traceback" not in err


def test_an_adapter_learns_at_ten_times_the_default_rate_unless_the_file_sets_one(tiny_task, run_engine):
    from engine.config.resolve import ADAPTER_LR, read_task_file, resolve
    from engine.plugins.manager import load_plugins

    registry = load_plugins([]).registry()
    path = tiny_task(adapter="lora")
    assert resolve(read_task_file(path), registry, source=path).optimizer.options.lr == ADAPTER_LR == 1e-3
    written = {**read_task_file(path), "optimizer": {"lr": 2e-4}}
    assert resolve(written, registry, source=path).optimizer.options.lr == 2e-4
    plain = {k: v for k, v in read_task_file(path).items() if k != "adapter"}
    assert resolve(plain, registry, source=path).optimizer.options.lr == 1e-4  # without an adapter: adamw's default


def test_an_adapter_trains_every_layer_at_one_rate_unless_the_file_sets_a_layer_decay(tiny_task):
    """The default layer decay was chosen for full fine-tuning; adapters were measured without it."""
    from engine.config.resolve import read_task_file, resolve
    from engine.plugins.manager import load_plugins

    registry = load_plugins([]).registry()
    path = tiny_task(adapter="lora")
    assert resolve(read_task_file(path), registry, source=path).optimizer.options.layer_decay is None
    written = {**read_task_file(path), "optimizer": {"layer_decay": 0.8}}
    assert resolve(written, registry, source=path).optimizer.options.layer_decay == 0.8
    plain = {k: v for k, v in read_task_file(path).items() if k != "adapter"}
    assert resolve(plain, registry, source=path).optimizer.options.layer_decay == 0.9  # adamw's default


def test_a_rank_above_the_encoders_width_is_one_clear_error(tiny_task, run_engine):
    path = tiny_task(adapter={"name": "lora", "r": 4096})  # the tiny encoder is 32 wide
    result = run_engine("run", path)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "adapter.r 4096 is larger than the encoder's hidden size 32" in " ".join(result.stderr.split())
    assert not (path.parent / "runs").exists()


def test_freezing_the_whole_encoder_under_an_adapter_is_refused_before_training(tiny_task, run_engine):
    path = tiny_task(adapter="lora", freeze="backbone")
    result = run_engine("run", path)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "freeze 'backbone' freezes every weight of the adapter" in " ".join(result.stderr.split())
    assert not (path.parent / "runs").exists()
