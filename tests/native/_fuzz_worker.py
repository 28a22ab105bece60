"""One fuzz input, in its own process: open it with msce's native reader, decode some frames,
print one JSON line with the outcome and this process's peak RSS.

Run as ``python _fuzz_worker.py PACKAGE_DIR FILE``. It loads ``msce._C`` and ``msce.errors``
without executing ``msce/__init__`` (which imports torch: seconds and ~700 MB per process),
so that hundreds of inputs can each get a fresh process. Exit status 0 whatever msce raised;
a signal or a timeout is the parent's to see.
"""

from __future__ import annotations

import importlib.util
import json
import resource
import os
import sys
import types
from pathlib import Path

PLANNED_FRAMES = 48  # decoded at most, in batches (the output memory stays small)
BATCH = 8
SIDE = 32  # frames are resized to at most SIDE x SIDE: the decode path runs in full


def _load_native(package_dir: str):
    """msce._C and msce.errors loaded by file from the folders in `package_dir` (os.pathsep
    separated; no package __init__, no import hooks such as an editable install's that would
    pick another copy)."""
    dirs = package_dir.split(os.pathsep)
    pkg = types.ModuleType("msce")
    pkg.__path__ = dirs
    sys.modules["msce"] = pkg
    loaded = []
    for name, pattern in (("errors", "errors.py"), ("_C", "_C*.so")):
        file = sorted(f for d in dirs for f in Path(d).glob(pattern))[0]
        spec = importlib.util.spec_from_file_location(f"msce.{name}", file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"msce.{name}"] = module
        spec.loader.exec_module(module)
        setattr(pkg, name, module)
        loaded.append(module)
    errors, native = loaded
    return native, errors


def _decode(native, reader, indices: list[int]) -> None:
    import numpy as np  # noqa: PLC0415

    meta = reader.metadata()
    out_h, out_w = min(SIDE, meta["height"]), min(SIDE, meta["width"])
    for start in range(0, len(indices), BATCH):
        chunk = indices[start:start + BATCH]
        out = np.empty((len(chunk), out_h, out_w, 3), np.uint8)
        spec = {"out_h": out_h, "out_w": out_w, "interp": native.Interp.bilinear, "layout": native.Layout.NHWC,
                "dtype": native.DType.uint8, "normalize": False, "mean": [0.0] * 3, "std": [1.0] * 3,
                "patch": 0, "temporal": 1, "merge": 1}
        reader.run_jobs([{"indices": chunk, "crops": None, "spec": spec, "slots": len(chunk), "out": out}], 1)


def _peak_rss_kb() -> int:
    """This process image's peak RSS. Linux keeps ru_maxrss across execve, so a worker
    forked from a large pytest process would report the parent's peak; VmHWM belongs to the
    new address space."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    package_dir, path = sys.argv[1], sys.argv[2]
    native, errors = _load_native(package_dir)
    result = {"outcome": "ok", "error": "", "message": "", "frames": 0}
    try:
        reader = native.VideoReader(path, 2, 16)
        n = int(reader.metadata()["num_frames"])
        result["frames"] = n
        first = list(range(min(n, PLANNED_FRAMES)))
        _decode(native, reader, first)
        if n > 1:  # the last frame, then back to the start (a seek or a reopen)
            _decode(native, reader, [n - 1])
            _decode(native, reader, [0, n // 2] if n > 2 else [0])
    except BaseException as exc:  # noqa: BLE001 - the parent classifies every outcome
        result["outcome"] = "msce" if isinstance(exc, errors.MsceError) else "other"
        result["error"] = type(exc).__name__
        result["message"] = str(exc)
    result["peak_rss_kb"] = _peak_rss_kb()
    native.flush_ffmpeg_log()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
