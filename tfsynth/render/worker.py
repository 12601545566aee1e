"""Entry point of a render worker process: `python -m tfsynth.render.worker` (see tfsynth.render.pool).

Reads (function "module:name", args, kwargs) messages from stdin, answers ("ok", result) or ("error", traceback)
on stdout, and exits when stdin closes. Refuses to run if TensorFlow got imported (it would crash OpenGL).
"""
from __future__ import annotations

import importlib
import os
import sys
import traceback


def _resolve(name: str):
    module, _, attr = name.partition(":")
    if not module or not attr:
        raise ValueError(f"function must be named 'module:function', got {name!r}")
    return getattr(importlib.import_module(module), attr)


def main() -> int:
    from tfsynth.render.pool import read_message, write_message

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed by the called code must not corrupt the message stream
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    while True:
        try:
            func, args, kwargs = read_message(stdin)
        except EOFError:
            return 0
        try:
            result = ("ok", _resolve(func)(*args, **kwargs))
            if "tensorflow" in sys.modules:
                raise RuntimeError(f"{func} imported tensorflow inside a render worker; "
                                   "generation code must be TF-free")
        except Exception:  # noqa: BLE001 - reported to the parent, which raises it there
            result = ("error", traceback.format_exc())
        write_message(stdout, result)


if __name__ == "__main__":
    sys.exit(main())
