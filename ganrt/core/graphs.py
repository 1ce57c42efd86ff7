"""``GraphRunner``: CUDA graphs, captured once per batch size and replayed (the same path runs uncaptured on the CPU)."""

from __future__ import annotations

from typing import Any

from ganrt.core.run import GRAPH_ID_KEY, run_errors, run_session
from ganrt.core.session import onnxruntime


class GraphRunner:
    """Runs a session through fixed, preallocated device buffers: one slot per batch size, each with its
    own bound inputs and output and its own graph id. On a session made with ``cuda_graph`` the CUDA
    provider captures a slot's kernels on its first run and replays them on later runs (no per-kernel
    launch cost: what batch-1 and small-batch calls on a GPU pay most); a captured graph reads and writes
    exactly those buffers, so new inputs are copied into them (``update_inplace``) and the output copied
    out, one call per slot at a time. On the CPU the same path runs without capture (tests use that).

    Thread-safe: a lock per slot; calls with different batch sizes run concurrently. At most
    ``MAX_SLOTS`` batch sizes get a slot (each holds device buffers and a graph); others run uncaptured.
    """

    MAX_SLOTS = 16

    def __init__(self, session: Any, output: str, *, device: str = "cuda", source: str) -> None:
        import threading

        self._session, self._output, self._device, self._source = session, output, device, source
        self._slots: dict[tuple, Any] = {}
        self._lock = threading.Lock()  # guards _slots only

    def _slot(self, feeds: dict[str, Any], out: Any) -> Any:
        import threading
        from types import SimpleNamespace

        key = tuple((name, value.shape, value.dtype.str) for name, value in sorted(feeds.items())) + (out.shape,)
        with self._lock:
            slot = self._slots.get(key)
            if slot is None and len(self._slots) >= self.MAX_SLOTS:
                return None
            if slot is None:
                ort = onnxruntime()
                inputs = {name: ort.OrtValue.ortvalue_from_numpy(value, self._device, 0) for name, value in feeds.items()}
                output = ort.OrtValue.ortvalue_from_shape_and_type(list(out.shape), out.dtype, self._device, 0)
                binding = self._session.io_binding()
                for name, value in inputs.items():
                    binding.bind_ortvalue_input(name, value)
                binding.bind_ortvalue_output(self._output, output)
                options = ort.RunOptions()
                options.add_run_config_entry(GRAPH_ID_KEY, str(len(self._slots) + 1))  # 0 and -1 mean default / no capture
                slot = self._slots[key] = SimpleNamespace(inputs=inputs, output=output, binding=binding, options=options,
                                                          lock=threading.Lock())
        return slot

    def run_uncaptured(self, outputs: list[str], feeds: dict[str, Any]) -> list[Any]:
        """``session.run`` outside any graph (graph id -1: nothing captured or replayed), for calls whose
        inputs the slots do not bind (a generator's optional label_b / alpha)."""
        options = onnxruntime().RunOptions()
        options.add_run_config_entry(GRAPH_ID_KEY, "-1")
        return run_session(self._session, outputs, feeds, source=self._source, options=options)

    def run(self, feeds: dict[str, Any], out: Any) -> None:
        """Run with ``feeds`` (C-contiguous numpy arrays); the output (``out``'s shape and type) copied into ``out``."""
        import numpy as np

        feeds = {name: np.ascontiguousarray(value) for name, value in feeds.items()}
        slot = self._slot(feeds, out)
        if slot is None:  # one batch size too many for its own graph
            out[...] = self.run_uncaptured([self._output], feeds)[0]
            return
        with run_errors(self._source), slot.lock:
            for name, value in feeds.items():
                slot.inputs[name].update_inplace(value)
            self._session.run_with_iobinding(slot.binding, slot.options)
            out[...] = slot.output.numpy()
