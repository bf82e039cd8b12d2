"""Compiling WGSL kernels into compute pipelines, once per variant.

A kernel is a file in ``kernels/wgsl``. Its element types are WGSL aliases (``TA``,
``TO``, ``C``...) and its compile-time choices are ``const`` declarations; both come
from a short prelude written here, followed by the shared helpers
(``common.wgsl``, and ``math.wgsl`` for kernels that need it) and the kernel itself.
The prelude is the only WGSL generated in Python: every operation lives in the
``.wgsl`` files.

Pipelines are cached by (kernel, entry point, types, constants, workgroup size); the
bind group layouts by their binding signature, so bind groups can be cached too.
"""

from __future__ import annotations

import threading
from typing import Any

from ..._assets import read_asset

__all__ = ["PipelineCache", "Pipeline"]

#: helper files each kernel needs in front of it
KERNEL_DEPS: dict[str, tuple[str, ...]] = {
    "unary": ("common", "math"),
    "binary": ("common", "math", "binary_ops"),
    "binary_inplace": ("common", "math", "binary_ops"),
    "where": ("common",),
    "update": ("common",),
    "copy": ("common",),
    "fill": ("common",),
    "reduce": ("common",),
    "scan": ("common",),
    "softmax": ("common",),
    "softmax_grad": ("common",),
    "losses": ("common",),
    "layernorm": ("common",),
    "matmul": ("common",),
    "index": ("common",),
    "scatter": ("common",),
    "im2col": ("common",),
    "random": ("common", "math", "philox"),
    "sort": ("common", "philox"),
}

#: size in bytes of the parameter window every dispatch gets (128 u32 words)
PARAMS_BYTES = 512


class Pipeline:
    """A compiled compute pipeline and the layout its bind groups follow."""

    __slots__ = ("pipeline", "layout", "signature", "key")

    def __init__(self, pipeline: Any, layout: Any, signature: str, key: tuple) -> None:
        self.pipeline = pipeline
        self.layout = layout
        self.signature = signature
        self.key = key


class PipelineCache:
    """Pipelines by variant; ``stats`` counts hits and compiles (misses)."""

    def __init__(self, device: Any, has_f16: bool) -> None:
        self._device = device
        self._has_f16 = has_f16
        self._sources: dict[str, str] = {}
        self._pipelines: dict[tuple, Pipeline] = {}
        self._layouts: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        self.stats = {"hits": 0, "misses": 0}

    def source(self, name: str) -> str:
        src = self._sources.get(name)
        if src is None:
            src = read_asset("kernels", f"wgsl/{name}.wgsl")
            self._sources[name] = src
        return src

    def layout(self, signature: str) -> tuple[Any, Any]:
        """(bind group layout, pipeline layout) for ``signature``: one letter per data binding.

        ``r`` is a read-only storage buffer, ``w`` a read-write one; binding 0 is always the
        parameter window (read-only storage with a dynamic offset).
        """
        found = self._layouts.get(signature)
        if found is not None:
            return found
        import wgpu

        stage = wgpu.ShaderStage.COMPUTE
        entries = [{"binding": 0, "visibility": stage,
                    "buffer": {"type": "read-only-storage", "has_dynamic_offset": True,
                               "min_binding_size": PARAMS_BYTES}}]
        for i, kind in enumerate(signature):
            entries.append({"binding": i + 1, "visibility": stage,
                            "buffer": {"type": "read-only-storage" if kind == "r" else "storage"}})
        bgl = self._device.create_bind_group_layout(entries=entries)
        pl = self._device.create_pipeline_layout(bind_group_layouts=[bgl])
        self._layouts[signature] = (bgl, pl)
        return bgl, pl

    def get(self, kernel: str, signature: str, *, entry: str = "main", types: dict[str, str] | None = None,
            consts: dict[str, Any] | None = None, wg: int = 256, op: tuple[str, int] | None = None) -> Pipeline:
        """The pipeline for one variant of ``kernel``, compiled on first request.

        ``op`` = (function name, arity) defines ``fn op`` in the prelude as a call of that
        function (the elementwise kernels call ``op``).
        """
        key = (kernel, entry, signature, tuple(sorted((types or {}).items())),
               tuple(sorted((consts or {}).items())), wg, op)
        found = self._pipelines.get(key)
        if found is not None:
            self.stats["hits"] += 1
            return found
        with self._lock:
            found = self._pipelines.get(key)
            if found is not None:
                return found
            code = self._compose(kernel, types or {}, consts or {}, wg, op)
            bgl, pl = self.layout(signature)
            try:
                module = self._device.create_shader_module(label=kernel, code=code)
                pipe = self._device.create_compute_pipeline(layout=pl, compute={"module": module, "entry_point": entry})
            except Exception as exc:
                raise RuntimeError(f"WGSL kernel '{kernel}' ({entry}, types={types}, consts={consts}) failed to "
                                   f"compile: {exc}") from exc
            self.stats["misses"] += 1
            found = Pipeline(pipe, bgl, signature, key)
            self._pipelines[key] = found
            return found

    def _compose(self, kernel: str, types: dict[str, str], consts: dict[str, Any], wg: int,
                 op: tuple[str, int] | None) -> str:
        lines = []
        if "f16" in types.values():
            if not self._has_f16:
                raise RuntimeError("float16 needs the adapter feature 'shader-f16', which this adapter lacks")
            lines.append("enable f16;")
        for name, ty in sorted(types.items()):
            lines.append(f"alias {name} = {ty};")
        lines.append(f"const WG: u32 = {int(wg)}u;")
        consts = {"LINEAR": False, **consts}  # common.wgsl's fast path, off unless asked for
        for name, value in sorted(consts.items()):
            lines.append(f"const {name}{_const_literal(value)};")
        if op is not None:
            fname, arity = op
            if arity == 1:
                lines.append(f"fn op(x: C) -> R {{ return {fname}(x); }}")
            else:
                lines.append(f"fn op(x: C, y: C) -> R {{ return {fname}(x, y); }}")
        parts = ["// ---- prelude (generated: types and compile-time choices) ----", *lines]
        for dep in (*KERNEL_DEPS.get(kernel, ("common",)), kernel):
            parts.append(f"// ---- {dep}.wgsl ----")
            parts.append(self.source(dep))
        return "\n".join(parts)

    def __len__(self) -> int:
        return len(self._pipelines)


def _const_literal(value: Any) -> str:
    if isinstance(value, bool):
        return f": bool = {'true' if value else 'false'}"
    if isinstance(value, int):
        return f": u32 = {int(value)}u" if value >= 0 else f": i32 = {int(value)}i"
    if isinstance(value, float):
        return f": f32 = {value!r}f" if "e" in repr(value) or "." in repr(value) else f": f32 = {value}.0f"
    raise TypeError(f"unsupported WGSL constant {value!r}")
