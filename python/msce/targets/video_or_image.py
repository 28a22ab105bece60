"""One target per model, two processors: a family's video path for clips and its image path
for single frames.

A backend sends a one-frame batch as an image and a longer batch as a video
(``msce.models.backends.base.is_image``), and HF models run the two through different
processors (Qwen2.5-Omni's image processor has its own pixel budget, GLM-4.1V's its own
sizes, LLaVA-NeXT's tiles the image). :class:`VideoOrImage` answers every Target question
with ``image`` when the clip has one frame and with ``video`` otherwise, so one
``backend.target()`` loads both the clips and the keyframes of an MSCE stage-2 request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from msce.errors import TransformError
from msce.targets.base import Allocation, Target

if TYPE_CHECKING:  # pragma: no cover
    from msce.io.batch import FrameBatch

__all__ = ["VideoOrImage"]


@dataclass(frozen=True)
class VideoOrImage(Target):
    """``video`` for clips of two or more frames, ``image`` for one frame.

    ``to_hf(batch, as_image)`` asks the target that made ``batch`` (``as_image`` for a
    one-frame batch); ``fit_budget`` and ``counts_tokens`` are the video target's (token
    budgets plan clips)."""

    video: Target
    image: Target

    def __post_init__(self) -> None:
        for name in ("video", "image"):
            if not isinstance(getattr(self, name), Target):
                raise TransformError(f"VideoOrImage.{name} must be a msce.targets.Target "
                                     f"(got {type(getattr(self, name)).__name__})")

    def pick(self, num_frames: int) -> Target:
        """The target a clip of ``num_frames`` frames goes through."""
        return self.image if int(num_frames) == 1 else self.video

    @property
    def counts_tokens(self) -> bool:  # type: ignore[override]
        return bool(self.video.counts_tokens)

    def output_size(self, num_frames: int, height: int, width: int) -> tuple[int, int]:
        return self.pick(num_frames).output_size(num_frames, height, width)

    def allocation(self, num_frames: int, height: int, width: int,
                   size: tuple[int, int] | None = None) -> Allocation:
        return self.pick(num_frames).allocation(num_frames, height, width, size)

    def num_tokens(self, num_frames: int, height: int, width: int) -> int:
        return self.pick(num_frames).num_tokens(num_frames, height, width)

    def fit_budget(self, max_tokens: int, num_frames: int, height: int, width: int) -> tuple[int, int] | None:
        return self.pick(num_frames).fit_budget(max_tokens, num_frames, height, width)

    def to_hf(self, batch: FrameBatch, as_image: bool = False) -> dict[str, Any]:
        one = len(batch.plan) == 1
        return self.pick(len(batch.plan)).to_hf(batch, as_image and one)

    def hf_timing(self, batch: FrameBatch) -> dict[str, Any]:
        """The picked target's time inputs (``FrameBatch.to_hf(timing=True)``), {} where it has none."""
        extra = getattr(self.pick(len(batch.plan)), "hf_timing", None)
        return extra(batch) if extra is not None else {}

    def to_dict(self) -> dict:
        return {"kind": "video_or_image", "video": self.video.to_dict(), "image": self.image.to_dict()}
