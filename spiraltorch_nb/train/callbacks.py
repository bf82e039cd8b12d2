"""Training-stage callbacks: plugins with the ``sequencer`` capability, and an adapter for plain objects.

The :class:`~spiraltorch_nb.train.Trainer` calls, on every callback, in load order
(dependencies first):

================================================  ====================================================
``on_fit_start(trainer)``                         before the first epoch
``on_epoch_start(trainer, epoch)``                at the start of each epoch (0-based)
``on_step_start(trainer, step)``                  before each training step (``step`` counts from 1)
``on_step_end(trainer, step, logs)``              after each optimizer step (the same ``step``)
``on_validation_end(trainer, epoch, metrics)``    after evaluating on the validation loader
``on_epoch_end(trainer, epoch, logs)``            after each epoch (train and ``val_`` metrics)
``on_fit_end(trainer)``                           after the last epoch, or when stopped
================================================  ====================================================

A hook that raises :class:`StopTraining`, or returns an instance of it, ends the fit
cleanly (``on_fit_end`` still runs); from ``on_step_start``, after that step, so every
step that starts also ends.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from ..errors import PluginError
from ..plugins import Plugin, PluginMetadata

__all__ = ["STAGES", "StopTraining", "Callback", "CallbackAdapter", "LambdaCallback", "EarlyStopping", "as_callback"]

#: the stage hooks, in the order a fit reaches them
STAGES = ("on_fit_start", "on_epoch_start", "on_step_start", "on_step_end", "on_validation_end", "on_epoch_end",
          "on_fit_end")

_counter = itertools.count(1)


class StopTraining(Exception):  # noqa: N818 - a signal, not an error
    """Raise it (or return an instance) from a callback hook to end the fit after the current step.

    Parameters
    ----------
    reason : str
        Recorded as ``trainer.stop_reason`` and in the ``trainer.fit_end`` event.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Callback(Plugin):
    """Base class of training callbacks: a plugin with capability ``sequencer``.

    Override the stage hooks you need (see the module docstring). A subclass may set its
    own ``metadata`` (it must list ``"sequencer"``, and may declare dependencies on other
    plugins); otherwise one is made from the class name.

    Examples
    --------
    >>> class PrintLoss(Callback):
    ...     def on_step_end(self, trainer, step, logs):
    ...         print(step, round(logs["loss"], 2))
    >>> PrintLoss().metadata.capabilities
    ('sequencer',)
    """

    def __init__(self) -> None:
        pass

    @property  # type: ignore[override]
    def metadata(self) -> PluginMetadata:
        meta = self.__dict__.get("_metadata")
        if meta is None:
            meta = PluginMetadata(f"{type(self).__name__}-{next(_counter)}", "1.0", capabilities=("sequencer",),
                                  description=(type(self).__doc__ or "").strip().split("\n")[0])
            self.__dict__["_metadata"] = meta
        return meta

    @metadata.setter
    def metadata(self, value: PluginMetadata) -> None:
        self.__dict__["_metadata"] = value

    def on_fit_start(self, trainer: Any) -> Any:
        """Before the first epoch."""

    def on_epoch_start(self, trainer: Any, epoch: int) -> Any:
        """At the start of each epoch."""

    def on_step_start(self, trainer: Any, step: int) -> Any:
        """Before each training step; ``step`` is the number ``on_step_end`` will get for it."""

    def on_step_end(self, trainer: Any, step: int, logs: dict[str, Any]) -> Any:
        """After each optimizer step; ``logs`` holds ``loss``, ``lr``, ``epoch``, ``batch``, ``batch_size``."""

    def on_validation_end(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> Any:
        """After the validation pass of an epoch; ``metrics`` holds ``loss`` and the trainer's metrics."""

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> Any:
        """After each epoch; ``logs`` holds the epoch's train metrics and ``val_``-prefixed validation ones."""

    def on_fit_end(self, trainer: Any) -> Any:
        """After the fit, also when it was stopped early."""


class CallbackAdapter(Callback):
    """Wrap any object that has some of the stage methods into a ``sequencer`` plugin.

    Methods the object lacks are skipped, so older callback objects (and, e.g., a
    telemetry recorder) work unchanged.

    Examples
    --------
    >>> class Old:
    ...     def on_step_end(self, trainer, step, logs):
    ...         self.last = step
    >>> cb = CallbackAdapter(Old())
    >>> cb.metadata.id.startswith("Old-"), cb.metadata.capabilities
    (True, ('sequencer',))
    """

    def __init__(self, target: Any, plugin_id: str | None = None) -> None:
        self.target = target
        stages = [s for s in STAGES if callable(getattr(target, s, None))]
        if not stages:
            raise PluginError(f"{type(target).__name__} has none of the stage methods {', '.join(STAGES)}; a "
                              "callback needs at least one of them (e.g. def on_step_end(self, trainer, step, logs))")
        self.stages = tuple(stages)
        for s in stages:
            setattr(self, s, getattr(target, s))
        self.metadata = PluginMetadata(plugin_id or f"{type(target).__name__}-{next(_counter)}", "1.0",
                                       capabilities=("sequencer",),
                                       description=f"stage callbacks of a {type(target).__name__}")

    def __repr__(self) -> str:
        return f"<CallbackAdapter {self.metadata.id!r} -> {type(self.target).__name__} {list(self.stages)}>"


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_step_end=lambda trainer, step, logs: ...)``."""

    def __init__(self, **hooks: Any) -> None:
        unknown = sorted(set(hooks) - set(STAGES))
        if unknown:
            raise PluginError(f"LambdaCallback: unknown stage(s) {unknown}; the stages are {', '.join(STAGES)}")
        for name, fn in hooks.items():
            if not callable(fn):
                raise PluginError(f"LambdaCallback: {name} must be callable; got {type(fn).__name__}")
            setattr(self, name, fn)


class EarlyStopping(Callback):
    """Stop when a monitored epoch metric has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A key of the epoch logs: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ...
    patience : int, default 3
        Epochs without improvement before stopping.
    mode : {"auto", "min", "max"}
        ``auto`` maximizes names containing "acc", minimizes the rest.
    min_delta : float, default 0
        The smallest change that counts as an improvement.
    restore_best : bool, default False
        Load the best epoch's weights back into the model when stopping
        (needs ``model.state_dict()`` / ``load_state_dict()``).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, mode: str = "auto", min_delta: float = 0.0,
                 restore_best: bool = False) -> None:
        if mode not in ("auto", "min", "max"):
            raise PluginError(f"EarlyStopping: mode must be 'auto', 'min' or 'max'; got {mode!r}")
        self.monitor = monitor
        self.patience = int(patience)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.min_delta = abs(float(min_delta))
        self.restore_best = restore_best
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.wait = 0
        self._best_state: dict[str, Any] | None = None

    def on_fit_start(self, trainer: Any) -> None:
        self.wait = 0

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> StopTraining | None:
        if self.monitor not in logs:
            raise PluginError(f"EarlyStopping: the epoch logs have no {self.monitor!r}; available: "
                              f"{', '.join(sorted(logs))} (val_ metrics need a val_loader)")
        value = float(logs[self.monitor])
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best and hasattr(trainer.model, "state_dict"):
                self._best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            return None
        self.wait += 1
        if self.wait >= self.patience:
            if self.restore_best and self._best_state is not None:
                trainer.model.load_state_dict(self._best_state)
            return StopTraining(f"{self.monitor} did not improve for {self.patience} epochs "
                                f"(best {self.best:.6g} at epoch {self.best_epoch})")
        return None


def as_callback(obj: Any) -> Plugin:
    """``obj`` as a sequencer plugin: a plugin with that capability as is, any other object adapted.

    Raises
    ------
    PluginError
        For a plugin without the ``sequencer`` capability, or an object with no stage method.
    """
    if isinstance(obj, Plugin):
        meta = obj.metadata
        if "sequencer" not in meta.capabilities:
            raise PluginError(
                f"plugin {meta.id!r} was passed as a trainer callback but does not declare the 'sequencer' "
                f"capability (it has {list(meta.capabilities)}); add capabilities=('sequencer',) to its "
                "PluginMetadata", plugin_id=meta.id)
        return obj
    if isinstance(obj, type):
        raise PluginError(f"got the class {obj.__name__} as a callback; pass an instance: {obj.__name__}()")
    return CallbackAdapter(obj)
