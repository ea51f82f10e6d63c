"""Inference: a saved model loaded back (``loading``), the inference loop (``loop``), scores and predictions
(``scores``), inputs given in memory as a split (``inputs``), predicting and scoring an input with a loaded model
(``predict``), and every task of a multi-task model in one encoder pass (``multitask``). Every door (evaluation in
training, `engine predict`, `engine evaluate`, ``engine.load``) goes through it."""
