"""The run directory: its layout and the refusals to clobber it (``layout``), the lock (``lock``), manifest.json
(``manifest``), checkpoints (``checkpoints``), and reading a run back (``reading``)."""
