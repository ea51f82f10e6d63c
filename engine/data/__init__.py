"""Data: splits of rows in Arrow (``split``), the data cache (``cache``), rows to features and the augmented training
split (``features``), the row conventions and counts around a chain of augmentations (``augmentation``) and work done
once per node (``node``). What a data format plugin uses is re-exported here."""

from engine.data.split import (
           DELIVERY,
           LINE,
           DataOptions,
           Split,
           cached_rows,
           hold_out,
           resolve_path,
           rows_to_dataset,
           stream_rows,
)

__all__ = ["DELIVERY", "LINE", "DataOptions", "Split", "cached_rows", "hold_out", "resolve_path", "rows_to_dataset",
           "stream_rows"]
