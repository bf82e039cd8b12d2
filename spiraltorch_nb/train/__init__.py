"""Training loops: DataLoader, Trainer with stage callbacks and events, background fits.

>>> import spiraltorch_nb as st
>>> st.train.Trainer, st.train.DataLoader, st.train.Callback  # doctest: +ELLIPSIS
(<class '...Trainer'>, <class '...DataLoader'>, <class '...Callback'>)

See ``docs/training.md``.
"""

from __future__ import annotations

from .background import FitHandle
from .callbacks import (
    STAGES,
    Callback,
    CallbackAdapter,
    EarlyStopping,
    LambdaCallback,
    StopTraining,
    as_callback,
)
from .data import DataLoader, DataLoaderError
from .history import HISTORY_SCHEMA, History
from .trainer import LOSSES, METRICS, Trainer, TrainingError, accuracy

__all__ = [
    "DataLoader", "DataLoaderError", "Trainer", "TrainingError", "History", "HISTORY_SCHEMA", "FitHandle",
    "Callback", "CallbackAdapter", "LambdaCallback", "EarlyStopping", "StopTraining", "as_callback", "STAGES",
    "LOSSES", "METRICS", "accuracy",
]
