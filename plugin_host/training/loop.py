"""The step loop: progress, cancellation, log lines and checkpoints at the right steps."""
from __future__ import annotations

from collections.abc import Callable, Mapping

from ..progress import CancelToken, Progress
from .records import JsonlLog


def run_steps(total_steps: int, start_step: int, step_fn: Callable[[int], Mapping[str, float]], *,
              progress: Progress | None = None, cancel: CancelToken | None = None, log: JsonlLog | None = None,
              checkpoint_every: int = 0, save_fn: Callable[[int], None] | None = None,
              log_every: int = 1) -> int:
    """Call ``step_fn(i)`` for ``i`` in ``start_step .. total_steps - 1``; return ``total_steps``.

    Step counts are of completed steps: after ``step_fn(i)`` returns, ``i + 1`` are done. Then the
    progress advances by one with the returned values, ``log`` gets them every ``log_every``
    steps and ``save_fn(done)`` runs every ``checkpoint_every`` steps, both also at the end
    (0: only at the end).
    The caller starts the progress stage. Cancellation is checked before each step: the current
    state is saved (unless just saved) so that training resumes there, then Cancelled is raised.
    """
    progress = progress or Progress()
    saved = start_step
    for index in range(start_step, total_steps):
        if cancel is not None and cancel.cancelled:
            if save_fn is not None and saved != index:
                save_fn(index)
            cancel.raise_if_cancelled()
        values = {name: float(value) for name, value in step_fn(index).items()}
        done = index + 1
        progress.advance(1, **values)
        if log is not None and ((log_every and done % log_every == 0) or done == total_steps):
            log.write(done, **values)
        if save_fn is not None and ((checkpoint_every and done % checkpoint_every == 0) or done == total_steps):
            save_fn(done)
            saved = done
    return total_steps
