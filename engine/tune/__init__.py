"""`engine tune`: hyperparameter search with Optuna (``search``)."""
