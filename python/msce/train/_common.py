"""Helpers shared by the fine-tuning modules: JSON files, digests, the split summary
and the progress bar."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence


def _json_default(o: Any) -> Any:
    from msce.eval.runner import _json_default as base

    return base(o)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _digest_lines(items: Sequence[str]) -> str:
    from msce.eval.runner import _digest_ids

    return _digest_ids(items)


def _split_info(split: Any) -> dict:
    from msce.eval.runner import _split_info as base

    return base(split)


class _Bar:
    """A rich progress bar on stderr (no-op when disabled)."""

    def __init__(self, total: int, enabled: bool, title: str, done: int = 0, stats: bool = False):
        self._p = None
        if not enabled or total <= done:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        cols = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
        if stats:
            cols.append(TextColumn("{task.fields[stats]}"))
        cols += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
        self._p = Progress(*cols, console=Console(stderr=True))
        self._p.start()
        self._task = self._p.add_task(title, total=total, completed=done, stats="")

    def advance(self, stats: str = "") -> None:
        if self._p is not None:
            self._p.update(self._task, advance=1, stats=stats)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None
