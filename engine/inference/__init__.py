"""Inference: a saved model loaded back (``loading``), the inference loop (``loop``), and scores and predictions
(``scores``). Every door (evaluation in training, `engine predict`, `engine evaluate`) goes through it."""
