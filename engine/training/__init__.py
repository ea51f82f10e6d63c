"""Training: the run recipe (``recipe``), batching (``batching``), the precision policy (``precision``) and
experiment trackers (``trackers``)."""
