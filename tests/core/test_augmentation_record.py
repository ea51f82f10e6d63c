"""What a run says of its augmentations: the plan's counts, manifest.json's record and the report's pairs."""

import json

from engine.report.run_report import write_report


def test_a_run_with_random_swap_counts_it_in_the_plan_the_manifest_and_the_report(tiny_task, run_engine):
    path = tiny_task(rows=32, augment=[{"name": "random_swap", "p": 0.5, "keep_original": True}])  # copies added
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    run = path.parent / "runs" / "tiny"
    (record,) = json.loads((run / "manifest.json").read_text())["augmentation"]
    assert set(record) == {"name", "rows_in", "rows_out", "produced", "examples"}
    produced = record["produced"]
    assert (record["name"], record["rows_in"], record["rows_out"]) == ("random_swap", 32, 32 + produced)
    assert produced > 16  # the rows it changed, each added beside its original (a swap of equal words changes none)
    err = " ".join(result.stderr.split())
    assert (f"data train 32 rows, augmented to {32 + produced} rows, validation 16 rows augment random_swap: 32 -> {32 + produced} "
            f"(+{produced}) training") in err
    originals = {line.split("\t")[0]: line.split("\t")[1] for line in (path.parent / "train.tsv").read_text().splitlines()[1:]}
    assert 1 <= len(record["examples"]) <= 3
    for pair in record["examples"]:
        original, augmented = pair["original"], pair["augmented"]
        assert originals[original["text"]] == original["label"] == augmented["label"]  # a training row, label kept
        assert sorted(augmented["text"].split()) == sorted(original["text"].split()) != augmented["text"].split()

    page = (run / "report" / "index.html").read_text()
    assert "<h2>Augmentation</h2>" in page
    assert f"<td>random_swap</td><td>32</td><td>{32 + produced}</td><td>{produced}</td>" in page
    first = record["examples"][0]
    assert f"<td>{first['original']['text']}  [{first['original']['label']}]</td>" in page
    assert f"<td>{first['augmented']['text']}  [{first['augmented']['label']}]</td>" in page


def test_the_reports_augmentation_pairs_are_escaped_and_show_tags_word_by_word(tmp_path):
    examples = [{"original": {"text": "<b>bold</b> & co", "label": "x"}, "augmented": {"text": "co & <b>bold</b>", "label": "x"}},
                {"original": {"text": ["EU", "rejects"], "label": ["B-ORG", "O"]},
                 "augmented": {"text": ["UN", "rejects"], "label": ["B-ORG", "O"]}},
                {"original": {"text": "a", "text_pair": "b", "label": 1}, "augmented": {"text": "A", "text_pair": "b", "label": 1}},
                {"original": {"text": "fourth"}, "augmented": {"text": "not shown"}}]
    manifest = {"status": "completed", "augmentation": [
        {"name": "<swap>", "rows_in": 10, "rows_out": 12, "produced": 2, "examples": examples},
        {"name": "filter", "rows_in": 12, "rows_out": 11, "produced": 0, "examples": [], "streamed": True}]}
    (tmp_path / "task.json").write_text(json.dumps({"task": {"name": "tagging"}}))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    page = write_report(tmp_path).read_text()
    assert "<b>" not in page and "<td>&lt;b&gt;bold&lt;/b&gt; &amp; co  [x]</td>" in page
    assert "<td>&lt;swap&gt;</td><td>10</td><td>12</td><td>2</td>" in page
    assert "<td>UN/B-ORG rejects/O</td>" in page and "<td>A ‖ b  [1]</td>" in page
    assert "not shown" not in page  # three pairs per augmentation at most
    assert "the counts cover the rows read when the run was set up" in page
    manifest_part = page.split("<h2>Manifest</h2>")[1]
    assert "rows_in" not in manifest_part  # the section above shows them
