"""Frames the decoder flagged as damaged: what a batch records, the ``on_damage`` policy of
``load``/``load_segments``, and the per-video counts the eval run log keeps.

The native reader flags a frame when FFmpeg marks it corrupt or error-concealed
(``AV_FRAME_FLAG_CORRUPT`` or ``decode_error_flags``: what PyAV shows as ``frame.is_corrupt``).
Such a frame is still a picture (concealment fills the broken parts from neighbours), so
msce never drops it silently: ``on_damage="raise"`` refuses the load, ``"warn"`` (the
default) warns once per load call, ``"keep"`` keeps it quietly; ``batch.damaged`` records
it in every case. The NVDEC decoder does not report damage (``batch.stats["damage_checked"]``
is False there).
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from msce.errors import DecodeError, TransformError

if TYPE_CHECKING:  # pragma: no cover
    from msce.io.batch import FrameBatch

__all__ = ["ON_DAMAGE", "DEFAULT_ON_DAMAGE", "DamagedFramesWarning", "check_on_damage", "record_damage",
           "apply_on_damage", "watch_damage", "unwatch_damage"]

ON_DAMAGE = ("raise", "warn", "keep")
DEFAULT_ON_DAMAGE = "warn"
_SHOWN = 20  # frame indices named in a message


class DamagedFramesWarning(UserWarning):
    """A load returned frames the decoder flagged as damaged (``on_damage="warn"``)."""


def check_on_damage(on_damage: Any) -> str:
    if not isinstance(on_damage, str) or on_damage not in ON_DAMAGE:
        raise TransformError(f"on_damage must be one of {ON_DAMAGE} (got {on_damage!r})")
    return on_damage


def _key(path: Any) -> str:
    return os.path.abspath(os.fspath(path))


# Eval runs watch a video while its strategy runs; every load of that path adds the damaged
# frame indices it saw. Only watched paths are remembered (no growth outside runs).
_lock = threading.Lock()
_watched: dict[str, list] = {}  # path -> [watchers, damaged indices, any load unchecked]


def watch_damage(path: Any) -> None:
    """Start collecting damaged frames of ``path`` (reference counted)."""
    with _lock:
        entry = _watched.setdefault(_key(path), [0, set(), False])
        entry[0] += 1


def unwatch_damage(path: Any) -> int | None:
    """Stop one watch of ``path``; the number of distinct damaged frames its loads decoded
    since the watch began (None when a decoder that does not report damage was used)."""
    with _lock:
        key = _key(path)
        entry = _watched.get(key)
        if entry is None:
            return None
        entry[0] -= 1
        if entry[0] <= 0:
            del _watched[key]
        return None if entry[2] else len(entry[1])


def _note(path: str, damaged: Iterable[int], checked: bool) -> None:
    with _lock:
        entry = _watched.get(_key(path))
        if entry is not None:
            entry[1].update(damaged)
            entry[2] = entry[2] or not checked


def record_damage(reader: Any, batches: Sequence[FrameBatch], stats: dict) -> None:
    """Sets ``batch.damaged`` from the reader's last decode call (the one that made
    ``batches``) and ``stats["damaged_frames"]``/``stats["damage_checked"]``."""
    checked = stats.get("decoder") != "nvdec"  # the NVDEC reader's flags are not exposed
    flagged: set[int] = set()
    if checked:
        flagged = {int(i) for i in reader._native.last_stats().get("damaged_frames", ())}
    for b in batches:
        b.damaged = tuple(sorted(flagged.intersection(b.plan.indices)))
    stats["damaged_frames"] = sorted(flagged)
    stats["damage_checked"] = checked
    _note(reader.path, flagged, checked)


def apply_on_damage(path: str, batches: Sequence[FrameBatch], on_damage: str) -> None:
    """``on_damage`` for the batches of one load call: DecodeError, one warning, or nothing."""
    if on_damage == "keep":
        return
    damaged = sorted({i for b in batches for i in b.damaged})
    if not damaged:
        return
    planned = sum(len(b) for b in batches)
    positions = sum(len(b.damaged_positions) for b in batches)
    shown = ", ".join(str(i) for i in damaged[:_SHOWN]) + (", ..." if len(damaged) > _SHOWN else "")
    what = (f"{path}: the decoder flagged {len(damaged)} frame(s) as damaged (corrupt or error-concealed), "
            f"{positions} of the {planned} planned frames; frame indices: {shown}")
    if on_damage == "raise":
        raise DecodeError(f"{what}. Pass on_damage='warn' or 'keep' to use them anyway")
    warnings.warn(f"{what}. They are kept (batch.damaged lists them); on_damage='raise' refuses them, "
                  "'keep' keeps them without this warning", DamagedFramesWarning, stacklevel=3)
