"""Work done once per node under several processes: the first process of each node does it (reading, tokenizing
into the data cache), then the others, who find its results there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from engine.errors import EngineError

T = TypeVar("T")


def first_on_node(accelerator: Any, work: Callable[[], T]) -> T:
    """``work()`` on the first process of each node, then on the others (which then find its results in the data
    cache). An error in the first process reaches every process as the same error, rather than as a broken
    barrier on the others."""
    from accelerate.utils import gather_object

    if accelerator.num_processes == 1:
        return work()
    failure: EngineError | None = None
    result: Any = None
    if accelerator.is_local_main_process:
        try:
            result = work()
        except EngineError as exc:
            failure = exc
    messages = [m for m in gather_object([str(failure) if failure else None]) if m]
    if failure is not None:
        raise failure
    if messages:
        shared = EngineError(messages[0])
        shared.reported = True  # the first process prints it; the CLI does not print it again here
        raise shared
    return result if accelerator.is_local_main_process else work()
