"""The contract between the engine and its plugins.

Every stage of a run is a hook, and every hook has the same shape: the engine calls it once per plugin with a
``register`` callable, and the plugin declares the components it offers for that stage::

    from engine import hookimpl

    @hookimpl
    def metric(register):
        register("accuracy", Accuracy, options=AccuracyOptions)

A task file then picks a component by name (``"metrics": ["accuracy"]``) and its other keys are validated by the
``options`` pydantic model before any model is loaded. Declaring instead of answering lets the engine validate a
whole task file up front, print its JSON Schema, suggest near-miss names and show who offers what; two plugins
declaring one name is an error that names both.

None of these hooks is ``firstresult``: every plugin is called, and every registration is collected. The *one
answer* of a single-choice stage (the data format, the head, the optimizer) is the component the task file names.

``register(name, factory, *, options=None, description=None, higher_is_better=None, produces=None, shapes=None,
tasks=None)``:
    ``name``        the name a task file uses (lowercase, ``snake_case``).
    ``factory``     what the engine calls to build the component; its arguments are given per hook below.
    ``options``     a ``pydantic.BaseModel`` subclass validating the component's keys in the task file;
                    ``None`` means the component takes no options. The factory receives an instance.
    ``description`` one line for ``engine plugins``; defaults to the first line of the factory's docstring.
    ``higher_is_better``, ``produces``  metrics only: which way their values improve, and the names (fnmatch
                    patterns) of the values computed; checked against monitors by ``engine validate``.
    ``shapes``, ``tasks``  augmentations only: the text shapes handled (``"single"``, ``"pair"``, ``"tokens"``;
                    None: single and pair, as in 0.2) and the task names supported (None: any); checked against
                    the task file by ``engine validate``.

docs/plugins.md is the plugin author's guide: a section per hook, each with the same ``factory`` line as the
docstring here and a working example (tests/plugins/test_hooks.py keeps the two in step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from engine.registry import Register

PROJECT = "engine"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- what is learned -------------------------------------------------------------------------------------------


@hookspec
def task(register: Register) -> None:
    """Declare task types (``"task": "classification"``).

    register: ``register(name, factory, *, options=None, description=None)``, once per task type.
    factory: ``factory(options) -> engine.task.Task``
        An object (a subclass of ``engine.Task``) that learns its label space from the training split, encodes
        batches of rows into model features (``encode_batch``), tells the head what to produce, and turns head
        outputs back into predictions. Building it must be cheap (``engine validate`` builds one to read its
        ``defaults``), and it must pickle (it is sent to the processes that tokenize).
    returns: nothing; declarations go through ``register``.
    firstresult: no (every registration is collected).
    """


# --- data ------------------------------------------------------------------------------------------------------


@hookspec
def load_data(register: Register) -> None:
    """Declare data formats (``"data": {"format": "tsv", ...}``).

    register: ``register(name, factory, *, options=None, description=None)``, once per data format.
    factory: ``factory(options, base_dir: pathlib.Path) -> dict[str, engine.data.Split]``
        Reads the splits the options name (``train``, ``validation``, ``test``), resolving relative paths against
        ``base_dir`` (the task file's folder). Options models should subclass ``engine.data.DataOptions``. Errors
        in the data raise ``engine.DataError`` with the file and line. A split's rows are a list of dicts, a
        ``datasets.Dataset`` or (``data.streaming``) a ``datasets.IterableDataset``. The format also reads
        ``engine predict`` and ``engine evaluate`` inputs, with options whose ``train`` is that file.
    returns: nothing; declarations go through ``register``.
    firstresult: no (every registration is collected).
    """


@hookspec
def augment(register: Register) -> None:
    """Declare augmentations of the training split (``"augment": [{"name": "random_swap", "p": 0.1}]``).

    register: ``register(name, factory, *, options=None, description=None, shapes=None, tasks=None)``, once per
        augmentation. ``shapes``: the rows it can rewrite, any of ``"single"`` (``text`` a string), ``"pair"``
        (``text`` and ``text_pair``), ``"tokens"`` (``text`` a list of words and ``label`` one tag per word, kept
        aligned); None means ``["single", "pair"]``. ``tasks``: the task names it supports (None: any).
        ``engine validate`` refuses an augmentation for a task file whose rows it cannot rewrite.
    factory: ``factory(options) -> Callable[[list[dict], random.Random], list[dict]]``
        The callable takes training rows (a chunk of 1,000) and a random generator seeded for that chunk, and
        returns the augmented rows: the rows it keeps unchanged as the same objects, a changed or new row as a copy
        (``new = dict(row)``), never its input rows edited in place. The engine marks each row that is not one of
        the input rows with ``row["_augmented"] = NAME`` (``row["_origin"]`` says which row of the chunk it came
        from) and counts what each augmentation produced. Augmentations chain in the order the task file lists
        them and never touch validation or test rows. The callable may carry ``fingerprint`` (a string: what else
        identifies its output, e.g. a digest of a model folder), which joins the augmented split's cache key.
    returns: nothing; declarations go through ``register``.
    firstresult: no (every registration is collected).
    """


# --- model -----------------------------------------------------------------------------------------------------


@hookspec
def build_head(register: Register) -> None:
    """Declare heads (``"head": {"name": "linear", "dropout": 0.1}``).

    register: ``register(name, factory, *, options=None, description=None)``, once per head.
    factory: ``factory(options, spec: engine.head.HeadSpec) -> torch.nn.Module``
        A module whose ``forward(backbone_output, batch) -> engine.head.HeadOutput`` maps the encoder's hidden
        states to logits and, when the batch has ``labels``, a loss. ``spec`` says what the task needs: how many
        outputs, at which level (``sequence`` or ``token``), and the loss. Its weights are saved with the model and
        loaded back by ``engine predict`` through the same factory. Optional methods: ``hf_export()`` (transformers'
        equivalent head: a kind such as ``"sequence_classification"`` and its weights, or None) and
        ``no_weight_decay()`` (names of parameters the built-in optimizers must not decay).
    returns: nothing; declarations go through ``register``.
    firstresult: no (every registration is collected).
    """


@hookspec
def freeze(register: Register) -> None:
    """Declare freezing strategies (``"freeze": {"name": "layers", "n": 4}``).

    register: ``register(name, factory, *, options=None, description=None)``, once per freezing strategy.
    factory: ``factory(options) -> object``
        The object has ``apply(model: engine.model.EngineModel, epoch: int) -> None``, called at the start of every
        epoch (0-based), which sets ``requires_grad`` on backbone parameters. Schedules that unfreeze over time act
        at these epoch boundaries. ``apply`` must depend on ``epoch`` alone: before training it is also called once
        for every epoch (a streamed run: its first 1,000 passes), to learn which parameters ever train (the rest
        stay out of DDP and the optimizer's work).
    returns: nothing; declarations go through ``register``.
    firstresult: no (every registration is collected).
    """


# --- optimisation ----------------------------------------------------------------------------------------------


@hookspec
def optimizer(register: Register) -> None:
    """Declare optimizers (``"optimizer": {"name": "adamw", "lr": 1e-4}``).

    register: ``register(name, factory, *, options=None, description=None)``, once per optimizer.
    factory: ``factory(options, model: engine.model.EngineModel) -> torch.optim.Optimizer``
        Usually with parameter groups: no weight decay on biases and norms, a learning rate of its own for the head.
    returns: nothing; declarations go through ``register``.
    firstresult: no (every registration is collected).
    """


@hookspec
def scheduler(register: Register) -> None:
    """Declare learning-rate schedules (``"scheduler": {"name": "linear", "warmup_ratio": 0.06}``).

    register: ``register(name, factory, *, options=None, description=None)``, once per schedule.
    factory: ``factory(options, optimizer: torch.optim.Optimizer, num_training_steps: int) -> LRScheduler``
        Stepped once per optimizer step; ``num_training_steps`` counts the optimizer steps of the whole run.
    returns: nothing; declarations go through ``register``.
    firstresult: no (every registration is collected).
    """


# --- observation -----------------------------------------------------------------------------------------------


@hookspec
def callback(register: Register) -> None:
    """Declare training callbacks (``"callbacks": [{"name": "early_stopping", "patience": 2}]``).

    register: ``register(name, factory, *, options=None, description=None)``, once per callback.
    factory: ``factory(options) -> engine.callbacks.Callback``
        An object with any of the ``on_*`` event methods of ``engine.callbacks.Callback``; it may stop training by
        setting ``state.should_stop``. Callbacks with state implement ``state_dict``/``load_state_dict`` so
        ``--resume`` restores them.
    returns: nothing; declarations go through ``register``.
    firstresult: no (every registration is collected).
    """


@hookspec
def metric(register: Register) -> None:
    """Declare evaluation metrics (``"metrics": ["accuracy", "f1_macro"]``).

    register: ``register(name, factory, *, options=None, description=None)``, once per metric.
    factory: ``factory(options, task: engine.task.Task) -> Callable[[list, list], dict[str, float]]``
        The callable gets the predictions and references of a whole split (as the task's ``predictions`` and
        ``references`` give them, gathered from all processes) and returns named values. Raise
        ``engine.EngineError`` from the factory when the task's outputs are not what the metric measures. Register
        with ``higher_is_better=`` and ``produces=[names or patterns]`` so monitors are checked and directed.
    returns: nothing; declarations go through ``register``.
    firstresult: no (every registration is collected).
    """
