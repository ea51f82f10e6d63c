"""The run directory: its layout and the lock (``layout``), checkpoints (``checkpoints``), and reading a run back
(``reading``)."""
