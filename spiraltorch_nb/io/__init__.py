"""Saving and loading: checkpoints (``st.save``/``st.load``), foreign weights, and key maps.

* :func:`save` / :func:`load` (also ``st.save`` / ``st.load``): models, optimizer states and
  metadata in one safetensors file, written atomically and checksummed.
* :func:`load_state_dict`: weights from PyTorch ``.pt``/``.pth`` or safetensors files, with key maps.
* :func:`check_state_dict`: how a state dict fits a model, before loading it.
* :func:`rename_keys`, :func:`strip_prefix`, :func:`add_prefix`, :func:`replace_prefix`,
  :func:`select_prefix`: key fixes.
"""

from __future__ import annotations

from ..errors import CheckpointError
from ..nn._state import StateDictError, StateDictReport
from .checkpoints import load, read_header, save
from .keymap import KeyMap, add_prefix, rename_keys, replace_prefix, select_prefix, strip_prefix
from .weights import check_state_dict, load_state_dict

__all__ = [
    "save", "load", "read_header", "load_state_dict", "check_state_dict", "StateDictReport", "StateDictError",
    "CheckpointError", "KeyMap", "rename_keys", "strip_prefix", "add_prefix", "replace_prefix", "select_prefix",
]
