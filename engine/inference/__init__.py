"""Inference: a saved model loaded back (``loading``), the inference loop (``loop``), scores and predictions
(``scores``), and predicting and scoring an input with a loaded model (``predict``). Every door (evaluation in
training, `engine predict`, `engine evaluate`) goes through it."""
