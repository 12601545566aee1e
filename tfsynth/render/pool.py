"""A small persistent pool of TF-free worker processes that run rendering (or any TF-free) functions.

TensorFlow and Mesa's OpenGL crash when loaded in one process. A TFDS builder (which imports TensorFlow) therefore
calls `get_pool().map("tfsynth.synth3d.dataset:render_unit", items)`: each worker is a fresh interpreter started
as `python -m tfsynth.render.worker` (not a multiprocessing child, which would re-import the parent's __main__,
e.g. the `tfds` CLI that imports TensorFlow). Calls are pickled over the worker's stdin/stdout; results come back
in the order of `items`. Functions are named "module:function" and must be importable without TensorFlow.

Workers stay alive between calls (one OffscreenRenderer each, mesh caches warm), exit when the parent closes their
stdin, and are restarted if one dies (the call is retried once; a second death raises `WorkerCrashed`).
The pool size is `TFSYNTH_RENDER_WORKERS` (default 1: Beam provides the parallelism across processes).
"""
from __future__ import annotations

import atexit
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Optional

_HEADER = struct.Struct("<Q")


class WorkerCrashed(RuntimeError):
    """A worker process died while running a call (e.g. a segfault in the OpenGL driver)."""


class WorkerError(RuntimeError):
    """The called function raised inside the worker; the message holds the worker-side traceback."""


def write_message(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def read_message(stream):
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("stream closed")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("stream closed mid-message")
    return pickle.loads(data)


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Worker:
    def __init__(self, env: dict, own_process_group: bool = False):
        self._env = env
        self._own_process_group = own_process_group
        self._start()

    def _start(self):
        # own_process_group: Ctrl-C in a terminal (SIGINT to the foreground group) reaches the parent only, which
        # closes the workers' stdin on exit; they do not each print a KeyboardInterrupt traceback.
        self.proc = subprocess.Popen([sys.executable, "-m", "tfsynth.render.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=None, env=self._env,
                                     process_group=0 if self._own_process_group else None)

    def call(self, func: str, args: tuple, kwargs: dict):
        for attempt in range(2):
            if self.proc.poll() is not None:
                self._start()
            try:
                write_message(self.proc.stdin, (func, args, kwargs))
                status, payload = read_message(self.proc.stdout)
            except (EOFError, BrokenPipeError, OSError):
                code = self.proc.wait()
                if attempt == 1:
                    raise WorkerCrashed(f"render worker died (exit code {code}) twice running {func}") from None
                continue
            if status == "ok":
                return payload
            raise WorkerError(f"{func} failed in the render worker:\n{payload}")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class RenderPool:
    """`size` TF-free worker processes; `map` runs one call per item, in parallel, results in order."""

    def __init__(self, size: int = 1, env: Optional[dict] = None, own_process_group: bool = False):
        if size < 1:
            raise ValueError(f"pool size must be >= 1, got {size}")
        self.size = size
        base = dict(os.environ if env is None else env)
        root = _package_root()
        base["PYTHONPATH"] = os.pathsep.join([root] + [p for p in base.get("PYTHONPATH", "").split(os.pathsep) if p])
        base.setdefault("PYOPENGL_PLATFORM", "egl")
        self._env = base
        self._own_process_group = own_process_group
        self._workers: list[_Worker] = []
        self._free: "queue.Queue[_Worker]" = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False

    def _acquire(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("pool is closed")
            if self._free.empty() and len(self._workers) < self.size:
                worker = _Worker(self._env, self._own_process_group)
                self._workers.append(worker)
                return worker
        return self._free.get()

    def call(self, func: str, *args, **kwargs) -> Any:
        worker = self._acquire()
        try:
            return worker.call(func, args, kwargs)
        finally:
            self._free.put(worker)

    def map(self, func: str, items: Iterable, **kwargs) -> list:
        """[func(item, **kwargs) for item in items], computed by the workers in parallel."""
        items = list(items)
        if self.size == 1 or len(items) <= 1:
            return [self.call(func, item, **kwargs) for item in items]
        with ThreadPoolExecutor(max_workers=self.size) as executor:
            return list(executor.map(lambda item: self.call(func, item, **kwargs), items))

    def map_callable(self, fn, items: Iterable, **kwargs) -> list:
        """`map` for a module-level function object (it is called by its 'module:name' in the workers)."""
        return self.map(f"{fn.__module__}:{fn.__qualname__}", items, **kwargs)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()


_POOLS: dict[int, RenderPool] = {}
_POOLS_LOCK = threading.Lock()


def default_size() -> int:
    value = os.environ.get("TFSYNTH_RENDER_WORKERS", "1")
    try:
        size = int(value)
    except ValueError:
        raise ValueError(f"TFSYNTH_RENDER_WORKERS must be a positive integer, got {value!r}") from None
    if size < 1:
        raise ValueError(f"TFSYNTH_RENDER_WORKERS must be a positive integer, got {value!r}")
    return size


def get_pool(size: Optional[int] = None) -> RenderPool:
    """The process-wide pool of `size` workers (default `TFSYNTH_RENDER_WORKERS`), started lazily, closed at exit."""
    size = default_size() if size is None else size
    with _POOLS_LOCK:
        pool = _POOLS.get(size)
        if pool is None or pool._closed:
            pool = _POOLS[size] = RenderPool(size)
        return pool


def _close_all():
    for pool in list(_POOLS.values()):
        pool.close()


atexit.register(_close_all)
