"""Published scores of well-known encoders on public benchmarks: what `engine run` prints beside a run's own scores
when its task file names the benchmark (``"data": {"benchmark": "sst2", ...}``), so that a user can see whether a
result is good. Each figure is as its source reports it, on the scale of engine's metric of the same name; only
figures whose source states them plainly are here.

Published figures come from full training sets, the benchmark's own evaluation split (often a test set engine's
user does not have) and tuned settings: read them as where a model of that size can get, not as a target for any
split.
"""

from __future__ import annotations

from engine.task import PublishedScore

DEVLIN = "Devlin et al. 2019 (BERT), Table 1"
CLASSIFICATION = (
    PublishedScore("sst2", "accuracy", 0.935, "BERT-base, uncased", "GLUE test", DEVLIN, 12, 768),
    PublishedScore("sst2", "accuracy", 0.930, "MiniLM-L12-H384", "GLUE dev",
                   "Wang et al. 2020 (MiniLM), microsoft/MiniLM-L12-H384-uncased's model card", 12, 384),
    PublishedScore("sst2", "accuracy", 0.904, "DistilBERT, cased", "GLUE test",
                   "Sanh et al. 2019, distilbert-base-cased's model card", 6, 768),
)
REGRESSION = (
    # GLUE scores STS-B by Spearman correlation in BERT's Table 1.
    PublishedScore("stsb", "spearman", 0.858, "BERT-base, uncased", "GLUE test", DEVLIN, 12, 768),
)
TAGGING = (
    PublishedScore("conll2003", "entity_f1", 0.924, "BERT-base, cased", "test",
                   "Devlin et al. 2019 (BERT), Table 7, fine-tuning", 12, 768),
    PublishedScore("conll2003", "entity_f1", 0.928, "BERT-large, cased", "test",
                   "Devlin et al. 2019 (BERT), Table 7, fine-tuning", 24, 1024),
)
