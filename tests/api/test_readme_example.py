"""The README's Python API example runs as written, on a few rows of the sentiment example and the tiny model in place
of the packaged one (a few seconds instead of a minute)."""

import re
import shutil
from pathlib import Path

import engine

ROOT = Path(__file__).resolve().parents[2]


def python_api_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return block


def test_the_readme_example_runs(tiny_model_dir, tmp_path, monkeypatch):
    example = tmp_path / "examples" / "sentiment"
    example.mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "sentiment" / "task.json", example)
    for name, lines in (("train.tsv", 41), ("validation.tsv", 17)):
        text = (ROOT / "examples" / "sentiment" / name).read_text(encoding="utf-8")
        (example / name).write_text("".join(text.splitlines(keepends=True)[:lines]), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    train = engine.train

    def on_the_tiny_model(task, overrides=None, *args, **kwargs):
        return train(task, {**dict(overrides or {}), "model.name": str(tiny_model_dir)}, *args, **kwargs)

    monkeypatch.setattr(engine, "train", on_the_tiny_model)
    namespace: dict = {}
    exec(compile(python_api_example(), "README.md", "exec"), namespace)
    predictor = namespace["predictor"]
    assert predictor.predict("a gripping, beautifully acted film")["label"] in {"negative", "positive"}
    assert set(predictor.evaluate(Path("examples/sentiment/validation.tsv"))) == {"loss", "accuracy", "f1_macro"}
