"""Training: the run recipe that builds a run's parts (``recipe``) and the loop that trains them (``trainer``), with
the parts' own modules: batching (``batching``), evaluation (``evaluation``), checkpoints (``checkpointing``), the
training clock (``clock``), the progress bar's view (``progress``), the plan printed first (``plan``), the run
directory's files (``writer``), the precision policy (``precision``), experiment trackers (``trackers``), and for a
multi-task run the task of each batch (``sampler``) and its evaluation and saving (``multitask``)."""
