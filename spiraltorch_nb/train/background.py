"""Fitting on a worker thread: the notebook stays interactive while the model trains.

``trainer.fit(..., background=True)`` returns a :class:`FitHandle` at once. The worker
thread has its own grad mode (grad mode is thread-local), so ``st.no_grad()`` blocks in
the notebook never change what training records. Read progress and history at any
time; ask for a device change and it happens at the next step boundary.

>>> # handle = trainer.fit(loader, epochs=20, background=True)
>>> # handle.progress            -> {'epoch': 3, 'step': 412, 'fraction': 0.21, 'loss': 0.31, ...}
>>> # handle.request_device("wgpu"); handle.stop(); history = handle.wait()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from .history import History
    from .trainer import Trainer

__all__ = ["FitHandle"]


class FitHandle:
    """A fit running on a background thread.

    Attributes
    ----------
    trainer : Trainer
        The trainer doing the work.
    thread : threading.Thread
        The worker (a daemon thread, so a closing kernel does not wait for it).
    """

    def __init__(self, trainer: Trainer, run: Callable[[], History]) -> None:
        self.trainer = trainer
        self._run = run
        self._result: History | None = None
        self._exception: BaseException | None = None
        self._done = threading.Event()
        self.thread = threading.Thread(target=self._work, name="spiraltorch-fit", daemon=True)

    def _start(self) -> FitHandle:
        self.thread.start()
        return self

    def _work(self) -> None:
        try:
            self._result = self._run()
        except BaseException as exc:  # kept for wait() to re-raise in the caller's thread
            self._exception = exc
        finally:
            self._done.set()

    # ---- state --------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Whether the fit has finished (completed, stopped, or failed)."""
        return self._done.is_set()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    @property
    def result(self) -> History | None:
        """The :class:`History` once the fit has finished without error; None before."""
        return self._result

    @property
    def exception(self) -> BaseException | None:
        """The exception that ended the fit, if any."""
        return self._exception

    @property
    def progress(self) -> dict[str, Any]:
        """A snapshot: ``epoch``, ``epochs``, ``step``, ``total_steps``, ``fraction``, ``loss``, ``device``, ...

        ``step`` counts the optimizer steps of this fit; ``fraction`` is ``step / total_steps``
        (None when the loader has no length).
        """
        return self.trainer.progress

    @property
    def history(self) -> pl.DataFrame:
        """The history so far, as a Polars frame (a consistent snapshot, even mid-step)."""
        return self.trainer.history.history

    # ---- control ----------------------------------------------------------------------
    def stop(self, reason: str = "stopped by the user") -> None:
        """Ask the fit to end after the current step (returns at once; see :meth:`wait`)."""
        self.trainer.stop(reason)

    def request_device(self, device: Any) -> None:
        """Move model and optimizer state to ``device`` at the next step boundary."""
        self.trainer.request_device(device)

    def wait(self, timeout: float | None = None) -> History:
        """Block until the fit ends; return its History, or re-raise the worker's exception.

        Raises
        ------
        TimeoutError
            When ``timeout`` seconds pass first (the fit goes on).
        """
        if not self._done.wait(timeout):
            p = self.progress
            raise TimeoutError(f"the fit is still running after {timeout} s (step {p.get('step')} of "
                               f"{p.get('total_steps')}); wait longer, or call .stop() first")
        if self._exception is not None:
            raise self._exception
        assert self._result is not None  # set whenever the worker ended without an exception
        return self._result

    def __repr__(self) -> str:
        p = self.progress
        state = "done" if self.done else "running"
        if self._exception is not None:
            state = f"failed ({type(self._exception).__name__})"
        frac = p.get("fraction")
        pct = f" ({frac:.0%})" if isinstance(frac, float) else ""
        loss = p.get("loss")
        loss_txt = f", loss {loss:.4g}" if isinstance(loss, float) else ""
        return (f"<FitHandle {state}: epoch {p.get('epoch', 0) + 1}/{p.get('epochs')}, step {p.get('step')}/"
                f"{p.get('total_steps')}{pct}{loss_txt}, device {p.get('device')}>")
