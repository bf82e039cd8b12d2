"""Learning-rate schedulers: they rewrite ``group["lr"]`` in an optimizer's param groups.

The formulas and the stepping protocol are ``torch.optim.lr_scheduler``'s (the
chainable, recursive forms), so sequences match PyTorch's: build the scheduler after
the optimizer, call ``optimizer.step()`` then ``scheduler.step()`` once per epoch (or
per batch, when the schedule is counted in steps).

Composition: :class:`SequentialLR` runs schedulers one after another at milestones,
:class:`ChainedScheduler` applies several every step, and :class:`LinearWarmup` is a
linear ramp handing over to another scheduler::

    sched = LinearWarmup(opt, warmup_steps=100, after=CosineAnnealingLR(opt, T_max=900))
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from .optimizer import OptimizerError

__all__ = [
    "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "LambdaLR",
    "ConstantLR", "SequentialLR", "ChainedScheduler", "LinearWarmup",
]


def _check_optimizer(optimizer: Any, owner: str) -> None:
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not all(isinstance(g, dict) and "lr" in g for g in groups):
        raise OptimizerError(f"{owner} needs an optimizer whose param_groups carry an 'lr' (e.g. st.optim.SGD); "
                             f"got {type(optimizer).__name__}")


class LRScheduler:
    """Base class: sets every group's ``lr`` from :meth:`get_lr` at each :meth:`step`.

    Parameters
    ----------
    optimizer : Optimizer
        Whose ``param_groups[i]["lr"]`` are scheduled. ``"initial_lr"`` is recorded in each group.
    last_epoch : int, default -1
        The index of the last step taken; -1 starts a new schedule, anything else resumes
        one (the groups must then have ``"initial_lr"``).

    Attributes
    ----------
    base_lrs : list of float
        Each group's initial learning rate.
    last_epoch : int
        How many times :meth:`step` was called (0 right after construction).
    """

    _is_initial = False

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, type(self).__name__)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise OptimizerError(
                        f"{type(self).__name__}: resuming with last_epoch={last_epoch} needs 'initial_lr' in "
                        f"param_groups[{i}]; load the optimizer's state dict first, or start with last_epoch=-1")
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rates for step ``last_epoch`` (from the groups' current ones)."""
        raise NotImplementedError(f"{type(self).__name__} must define get_lr() (or step(), as the composing "
                                  "schedulers do); see StepLR for a small example")

    def get_last_lr(self) -> list[float]:
        """The learning rate of each group as last set by this scheduler."""
        return list(self._last_lr)

    def step(self) -> None:
        """Advance the schedule by one step and write the new learning rates."""
        self._step_count += 1
        self._update_lr(None)

    def _update_lr(self, epoch: int | None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_get_closed_form_lr", None)
            values = closed() if closed is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _group_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    # ---- state -------------------------------------------------------------------
    _unsaved: tuple[str, ...] = ("optimizer",)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (and functions), to resume the schedule later."""
        return {k: v for k, v in self.__dict__.items() if k not in self._unsaved}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a schedule saved by :meth:`state_dict`."""
        self.__dict__.update({k: v for k, v in state_dict.items() if k not in self._unsaved})

    def __repr__(self) -> str:
        lrs = ", ".join(f"{lr:.6g}" for lr in getattr(self, "_last_lr", []))
        return f"<{type(self).__name__} step={self.last_epoch} lr=[{lrs}]>"


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps.

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> opt = st.optim.SGD([st.zeros(1, requires_grad=True)], lr=1.0)
    >>> s = StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(s.get_last_lr()[0]); opt.step(); s.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        if not isinstance(step_size, int) or step_size < 1:
            raise OptimizerError(f"StepLR: step_size must be a positive integer; got {step_size!r}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` at each of the ``milestones`` (step indices)."""

    def __init__(self, optimizer: Any, milestones: Sequence[int], gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._group_lrs()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._group_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        ms = sorted(self.milestones.elements())
        return [base * self.gamma ** bisect_right(ms, self.last_epoch) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every step."""

    def __init__(self, optimizer: Any, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine decay from the initial learning rate to ``eta_min`` over ``T_max`` steps.

    ``lr_t = eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2``, computed in
    PyTorch's recursive form (so it chains with other schedulers); past ``T_max`` it
    rises again, as PyTorch's does.
    """

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        if not isinstance(T_max, int) or T_max < 1:
            raise OptimizerError(f"CosineAnnealingLR: T_max must be a positive integer; got {T_max!r}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self._group_lrs()
        t, T, eta = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return groups
        if self._step_count == 1 and t > 0:
            return [eta + (base - eta) * (1 + math.cos(t * math.pi / T)) / 2 for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [lr + (base - eta) * (1 - math.cos(math.pi / T)) / 2
                    for base, lr in zip(self.base_lrs, groups, strict=True)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - eta) + eta
                for lr in groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the learning rate linearly from ``start_factor`` to ``end_factor`` over ``total_iters`` steps."""

    def __init__(self, optimizer: Any, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        if not 0 < start_factor <= 1:
            raise OptimizerError(f"LinearLR: start_factor must be in (0, 1]; got {start_factor!r}")
        if not 0 <= end_factor <= 1:
            raise OptimizerError(f"LinearLR: end_factor must be in [0, 1]; got {end_factor!r}")
        if not isinstance(total_iters, int) or total_iters < 1:
            raise OptimizerError(f"LinearLR: total_iters must be a positive integer; got {total_iters!r}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self._group_lrs()
        if self.last_epoch == 0:
            return [lr * self.start_factor for lr in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return groups
        sf, ef = self.start_factor, self.end_factor
        factor = 1.0 + (ef - sf) / (self.total_iters * sf + (self.last_epoch - 1) * (ef - sf))
        return [lr * factor for lr in groups]

    def _get_closed_form_lr(self) -> list[float]:
        sf, ef = self.start_factor, self.end_factor
        frac = min(self.total_iters, self.last_epoch) / self.total_iters
        return [base * (sf + (ef - sf) * frac) for base in self.base_lrs]


class ConstantLR(LRScheduler):
    """Multiply the learning rate by ``factor`` until step ``total_iters``, then restore it."""

    def __init__(self, optimizer: Any, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1) -> None:
        if not 0 <= factor <= 1:
            raise OptimizerError(f"ConstantLR: factor must be in [0, 1]; got {factor!r}")
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self._group_lrs()
        if self.last_epoch == 0:
            return [lr * self.factor for lr in groups]
        if self.last_epoch != self.total_iters:
            return groups
        return [lr * (1.0 / self.factor) for lr in groups]

    def _get_closed_form_lr(self) -> list[float]:
        f = self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor)
        return [base * f for base in self.base_lrs]


class LambdaLR(LRScheduler):
    """``lr = initial_lr * fn(step)``; one function, or one per parameter group."""

    _unsaved = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer: Any, lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
                 last_epoch: int = -1) -> None:
        n = len(optimizer.param_groups)
        fns: list[Callable[[int], float]] = (list(lr_lambda) if isinstance(lr_lambda, list | tuple)
                                             else [lr_lambda] * n)  # type: ignore[list-item]
        if len(fns) != n:
            raise OptimizerError(f"LambdaLR: got {len(fns)} functions for {n} parameter groups; pass one, or one "
                                 "per group")
        self.lr_lambdas = fns
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * fn(self.last_epoch) for base, fn in zip(self.base_lrs, self.lr_lambdas, strict=True)]


class SequentialLR(LRScheduler):
    """Run ``schedulers`` one after another, switching at the step indices in ``milestones``.

    At a milestone the next scheduler starts from its own step 0 (closed form), as in
    PyTorch's ``SequentialLR``.
    """

    _unsaved = ("optimizer", "_schedulers")

    def __init__(self, optimizer: Any, schedulers: Sequence[LRScheduler], milestones: Sequence[int],
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, type(self).__name__)
        schedulers = list(schedulers)
        if not schedulers:
            raise OptimizerError(f"{type(self).__name__} needs at least one scheduler")
        for i, s in enumerate(schedulers):
            if getattr(s, "optimizer", None) is not optimizer:
                raise OptimizerError(f"{type(self).__name__}: scheduler {i} ({type(s).__name__}) drives another "
                                     "optimizer; build every scheduler on the same optimizer")
        if len(milestones) != len(schedulers) - 1:
            raise OptimizerError(f"{type(self).__name__}: {len(schedulers)} schedulers need "
                                 f"{len(schedulers) - 1} milestones; got {len(milestones)}")
        self._schedulers = schedulers
        self._milestones = [int(m) for m in milestones]
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._undo_initial(self)
        idx = bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = self._schedulers[idx].get_last_lr()

    @staticmethod
    def _undo_initial(sched: Any) -> None:
        """Take back the initial step each child made when it was built."""
        stack = list(getattr(sched, "_schedulers", []))
        while stack:
            s = stack.pop()
            if hasattr(s, "_schedulers"):
                stack.extend(s._schedulers)
            elif hasattr(s, "last_epoch"):
                s.last_epoch -= 1

    def step(self) -> None:
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for s, sub in zip(self._schedulers, state_dict.get("_schedulers", []), strict=False):
            s.load_state_dict(sub)


class ChainedScheduler(SequentialLR):
    """Step every scheduler in ``schedulers`` at each step (their effects multiply)."""

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: Any = None) -> None:
        schedulers = list(schedulers)
        if not schedulers:
            raise OptimizerError("ChainedScheduler needs at least one scheduler")
        optimizer = optimizer if optimizer is not None else schedulers[0].optimizer
        for i, s in enumerate(schedulers):
            if getattr(s, "optimizer", None) is not optimizer:
                raise OptimizerError(f"ChainedScheduler: scheduler {i} ({type(s).__name__}) drives another "
                                     "optimizer; build every scheduler on the same optimizer")
        self._schedulers = schedulers
        self.optimizer = optimizer
        self.last_epoch = schedulers[0].last_epoch
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def step(self) -> None:
        for s in self._schedulers:
            s.step()
        self.last_epoch += 1
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]


class LinearWarmup(SequentialLR):
    """Ramp the learning rate up linearly for ``warmup_steps`` steps, then hand over to ``after``.

    Equivalent to ``SequentialLR([LinearLR(start_factor, 1.0, warmup_steps), after],
    milestones=[warmup_steps])``: step ``t < warmup_steps`` uses
    ``base * (start_factor + (1 - start_factor) * t / warmup_steps)``, and from step
    ``warmup_steps`` on ``after`` runs from its own step 0.

    Parameters
    ----------
    optimizer : Optimizer
    warmup_steps : int
        Length of the ramp (>= 1).
    after : LRScheduler, optional
        The schedule that follows, built on the same optimizer; constant when omitted.
    start_factor : float, optional
        The first step's fraction of the base rate; ``1 / (warmup_steps + 1)`` by default,
        so the ramp climbs in equal increments to the full rate.

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> opt = st.optim.SGD([st.zeros(1, requires_grad=True)], lr=1.0)
    >>> s = LinearWarmup(opt, warmup_steps=3, after=CosineAnnealingLR(opt, T_max=2))
    >>> lrs = []
    >>> for _ in range(6):
    ...     lrs.append(round(s.get_last_lr()[0], 3)); opt.step(); s.step()
    >>> lrs
    [0.25, 0.5, 0.75, 1.0, 0.5, 0.0]
    """

    def __init__(self, optimizer: Any, warmup_steps: int, after: LRScheduler | None = None,
                 start_factor: float | None = None, last_epoch: int = -1) -> None:
        if not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise OptimizerError(f"LinearWarmup: warmup_steps must be a positive integer; got {warmup_steps!r}")
        if start_factor is None:
            start_factor = 1.0 / (warmup_steps + 1)
        self.warmup_steps = warmup_steps
        ramp = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup_steps)
        if after is None:
            after = ConstantLR(optimizer, factor=1.0, total_iters=0)
        super().__init__(optimizer, [ramp, after], milestones=[warmup_steps], last_epoch=last_epoch)
