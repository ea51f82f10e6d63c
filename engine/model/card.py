"""The model card: a saved model folder's README.md in the Hugging Face Hub's format (YAML metadata, then Markdown)
saying what the model is, how it scored, what data it learned from (by fingerprint), and how to call it: with
engine's Python API, with `engine serve`, and with plain transformers where the head is one transformers knows.

``model_card`` writes the text from what a run records; ``write_model_card`` writes it into a run's model/ folder
from the files beside it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from engine.atomic import write_text
from engine.model.encoder import PACKAGED_MODELS
from engine.model.saved import ENGINE_FILE, HF_AUTO_CLASSES
from engine.version import __version__

CARD_FILE = "README.md"
# A head's level (HeadSpec.level) -> the Hub's pipeline tag, and the transformers auto class's kind
PIPELINE_TAGS = {"sequence": "text-classification", "token": "token-classification"}
KINDS = {"sequence": "sequence_classification", "token": "token_classification"}


def model_card(meta: dict[str, Any], metrics: dict[str, dict[str, float]], manifest_data: dict[str, Any], *,
               task_config: dict[str, Any] | None = None, level: str | None = None, name: str | None = None,
               model_path: str = "path/to/model") -> str:
    """The README.md of a saved model.

    ``meta``: the model's engine.json; ``metrics``: the run's metrics.json (``{split: {metric: value}}``);
    ``manifest_data``: its manifest.json (the data files' fingerprints, versions, seed); ``task_config``: its
    task.json (the base model); ``level``: the head's level (``HeadSpec.level``: ``"sequence"`` or ``"token"``), for
    the pipeline tag; ``name``: the title (the run's name); ``model_path``: the folder as the usage examples name
    it.
    """
    task = _name(meta.get("task"))
    head = _name(meta.get("head"))
    base = base_model((task_config or {}).get("model", {}).get("name"))
    files = data_files(manifest_data)
    front = metadata(meta, metrics, files, task=task, head=head, base=base, level=level)
    lines = ["---", yaml_text(front).rstrip("\n"), "---", "", f"# {name or task}", "",
             f"A `{task}` model (head: `{head}`) fine-tuned with engine {__version__} "
             + (f"from `{base}`" if base else "from a local model")
             + f"; it reads {meta.get('max_length', '?')} tokens at a time.", ""]
    lines += results_section(metrics, files)
    lines += usage_section(meta, model_path, level)
    lines += data_section(files)
    lines += training_section(manifest_data)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_model_card(model_dir: Path, *, level: str | None = None) -> Path:
    """``model_dir``/README.md from its engine.json and the run's metrics.json, manifest.json and task.json beside
    it (each optional); returns its path. ``level`` (the head's): by default, told by the transformers class the
    saved config names, when it names one."""
    meta = _read(model_dir / ENGINE_FILE)
    run_dir = model_dir.parent
    if level is None:
        architectures = _read(model_dir / "config.json").get("architectures") or [""]
        level = next((lv for lv, kind in KINDS.items()
                      if str(architectures[0]).endswith(HF_AUTO_CLASSES[kind].removeprefix("AutoModel"))), None)
    text = model_card(meta, _read(run_dir / "metrics.json"), _read(run_dir / "manifest.json"),
                      task_config=_read(run_dir / "task.json"), level=level, name=run_dir.name,
                      model_path=str(model_dir))
    path = model_dir / CARD_FILE
    write_text(path, text)
    return path


# --- the YAML metadata -------------------------------------------------------------------------------------------


def metadata(meta: dict[str, Any], metrics: dict[str, dict[str, float]], files: dict[str, dict[str, Any]], *,
             task: str, head: str, base: str | None, level: str | None) -> dict[str, Any]:
    """The card's YAML metadata, in the Hub's keys (``library_name``, ``pipeline_tag``, ``base_model``, ``tags``,
    ``metrics``, ``model-index``), and engine's own (``engine``: the task, head and the data's fingerprints)."""
    pipeline_tag = PIPELINE_TAGS.get(level or "")
    data: dict[str, Any] = {"library_name": "engine"}
    if pipeline_tag:
        data["pipeline_tag"] = pipeline_tag
    if base:
        data["base_model"] = base
    data["tags"] = ["engine", task, *(["transformers"] if meta.get("transformers_loadable") else [])]
    names = list(dict.fromkeys(name for values in metrics.values() for name in values if name != "loss"))
    if names:
        data["metrics"] = names
    results = []
    for split, values in metrics.items():
        file = files.get(split, {})
        dataset: dict[str, Any] = {"name": file.get("file", split), "type": file.get("file", split), "split": split}
        if file.get("fingerprint"):
            dataset["args"] = dict(file["fingerprint"])
        results.append({
            "task": {"type": pipeline_tag or task, "name": task},
            "dataset": dataset,
            "metrics": [{"type": name, "value": _number(value), "name": f"{split} {name}"}
                        for name, value in values.items()],
        })
    if results:
        data["model-index"] = [{"name": task, "results": results}]
    data["engine"] = {"version": __version__, "task": meta.get("task"), "head": meta.get("head"),
                      "max_length": meta.get("max_length"),
                      "data": {split: {"file": f["file"], **f["fingerprint"]} for split, f in files.items()}}
    return data


def yaml_text(data: dict[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120))


def base_model(name: str | None) -> str | None:
    """The base model as the Hub names it: a packaged short name's hub id, a hub id as given; None for a local
    folder (a path, which the Hub cannot link)."""
    if not name:
        return None
    if name in PACKAGED_MODELS:
        return next((n for n in PACKAGED_MODELS if "/" in n and PACKAGED_MODELS[n] == PACKAGED_MODELS[name]), name)
    if name.startswith((".", "/", "~")) or Path(name).expanduser().exists() or name.count("/") > 1:
        return None
    return name


def data_files(manifest_data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each split's data file: its name and fingerprint (``sha256`` and ``bytes``, as the manifest records them)."""
    found = {}
    for split, described in (manifest_data.get("data") or {}).items():
        if isinstance(described, dict):
            fingerprint = {k: v for k, v in described.items() if k != "path"}
            found[split] = {"file": Path(str(described.get("path", split))).name, "fingerprint": fingerprint}
    return found


# --- the Markdown ------------------------------------------------------------------------------------------------


def results_section(metrics: dict[str, dict[str, float]], files: dict[str, dict[str, Any]]) -> list[str]:
    if not metrics:
        return []
    lines = ["## Results", "", "The best model's scores (the one saved here):", "",
             "| split | data | metric | value |", "|---|---|---|---|"]
    for split, values in metrics.items():
        file = files.get(split, {}).get("file", "")
        lines += [f"| {split} | {file} | {name} | {_shown(value)} |" for name, value in values.items()]
    return [*lines, ""]


def usage_section(meta: dict[str, Any], model_path: str, level: str | None) -> list[str]:
    options = (meta.get("data") or {}).get("options") or {}
    pair = isinstance(options.get("text"), list) and len(options["text"]) == 2
    one, other = (('("a first text", "its second text")', '("another text", "and its pair")') if pair
                  else ('"a text to predict"', '"another text"'))
    path = json.dumps(model_path)
    lines = ["## Use it", "", "With engine's Python API (engine installed, with the plugins that declare this "
             "model's task and head):", "", "```python", "import engine", "", f"predictor = engine.load({path})",
             f"predictor.predict({one})",
             f"predictor.predict([{one}, {other}])  # or a pandas DataFrame with the training data's columns", "```",
             "", "The records are those `engine predict` writes. Over HTTP:", "", "```bash",
             f"engine serve {model_path}", "```", ""]
    auto = HF_AUTO_CLASSES.get(KINDS.get(level or "", ""))
    if meta.get("transformers_loadable") and auto:
        texts = one.strip("()")
        lines += ["With plain transformers (the head's raw outputs; engine turns them into its predictions):", "",
                  "```python", f"from transformers import {auto}, AutoTokenizer", "",
                  f"model = {auto}.from_pretrained({path})", f"tokenizer = AutoTokenizer.from_pretrained({path})",
                  f'logits = model(**tokenizer({texts}, return_tensors="pt")).logits', "```", ""]
    else:
        lines += [f"Plain transformers loads the encoder alone (`AutoModel.from_pretrained({path})`), not the "
                  f"`{_name(meta.get('head'))}` head: predict with engine.", ""]
    return lines


def data_section(files: dict[str, dict[str, Any]]) -> list[str]:
    if not files:
        return []
    lines = ["## Data", "", "| split | file | sha256 | bytes |", "|---|---|---|---|"]
    for split, file in files.items():
        fingerprint = file["fingerprint"]
        lines.append(f"| {split} | {file['file']} | {fingerprint.get('sha256', '')} | {fingerprint.get('bytes', '')} |")
    return [*lines, ""]


def training_section(manifest_data: dict[str, Any]) -> list[str]:
    if not manifest_data:
        return []
    best = manifest_data.get("best") or {}
    packages = manifest_data.get("packages") or {}
    facts = [f"seed {manifest_data.get('seed')}"]
    if manifest_data.get("steps") is not None:
        facts.append(f"{manifest_data['steps']} steps")
    if best.get("monitor"):
        facts.append(f"best {best['monitor']} {_shown(best.get('value'))} at epoch {best.get('epoch')}")
    versions = ", ".join(f"{name} {version}" for name, version in packages.items())
    return ["## Training", "", "; ".join(facts) + "." + (f" Packages: {versions}." if versions else ""),
            "Every setting is in the run's task.json, and what ran in its manifest.json.", ""]


def _name(section: Any) -> str:
    return str(section.get("name") if isinstance(section, dict) else section)


def _number(value: Any) -> Any:
    """A metric value for YAML: a float (None for NaN, which the Hub's metadata cannot hold), or as it is."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return value


def _shown(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}
