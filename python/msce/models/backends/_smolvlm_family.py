"""Tokens mode for SmolVLM2 (``SmolVLMForConditionalGeneration``, model type ``smolvlm``).

Videos: msce.SmolVLM of the video processor (``msce.target_for(processor)``: both Lanczos
resizes in one native transform), ``pixel_values`` (videos, T, 3, M, M) with shorter videos
padded by zero frames to the longest one's T and ``pixel_attention_mask`` (videos, T, M, M)
1 on real frames, as ``SmolVLMVideoProcessor`` pads them. The ``<video>`` placeholder
becomes what ``SmolVLMProcessor`` writes::

    You are provided the following series of {T in words} frames from a {H:MM:SS} [H:MM:SS] video.\\n
    then per frame: \\nFrame from {MM:SS}:<fake_token_around_image><global-img>{<image> x image_seq_len}<fake_token_around_image>
    then \\n\\n

with T the padded frame count of the batch (the processor reads it from the stacked
tensor), the frame times ``index / fps`` of the sorted source indices (minutes and whole
seconds), and the clip's duration in whole seconds: the clip's average frame rate and
duration from its metadata, as in the ``VideoMetadata`` msce passes in processor mode (24 fps
where the clip has none, the processor's own default; the duration falls back to frame
count / fps, then to the last frame's time, as the processor's does).

Images (one-frame parts: MSCE's stage-2 keyframes): SmolVLM's image processor splits an
image into tiles of ``max_image_size`` (``do_image_splitting``, on in the released
checkpoints) after its own resizes; msce has no target for that path, so one-frame parts
are loaded as uint8 frames and go through the family's HF image processor, nested per
request as ``SmolVLMProcessor`` nests them; the ``<image>`` placeholder becomes the tile
grid's text from the processor's ``rows``/``cols`` (``<fake_token_around_image><row_r_col_c>``
+ ``image_seq_len`` image tokens per tile, a newline per row, then the global image) or,
unsplit, the single-image text above.

The processor returns images and videos under the same keys (``pixel_values``), so a
request holding both cannot be expressed (HF's processor keeps only the videos' tensors):
requests with images and requests with videos go to separate model batches
(:meth:`SmolVLMFamily.batch_key`), and a model batch (so one request) holding both is a
BackendError.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Hashable, Sequence

from msce.errors import BackendError, ConfigError
from msce.models.backends._family import TokenFamily, merged_kwargs, check_batch_target, hf_video_metadata, uint8_frames
from msce.models.backends.base import Request, is_frames, is_image
from msce.targets import Frames, Target, VideoOrImage, target_for

__all__ = ["SmolVLMFamily", "smolvlm_video_text", "smolvlm_image_text", "nest"]

_DEFAULT_FPS = 24.0  # SmolVLMProcessor's fallback when the metadata has no fps


def smolvlm_image_text(rows: int, cols: int, seq_len: int, *, image: str = "<image>",
                       fake: str = "<fake_token_around_image>", global_image: str = "<global-img>") -> str:
    """An image's placeholder text: ``rows x cols`` tiles then the global image, or only the
    global image when the image was not split (``rows == cols == 0``)."""
    whole = f"{fake}{global_image}{image * seq_len}{fake}"
    if rows == 0 and cols == 0:
        return whole
    tiles = "".join("".join(f"{fake}<row_{r + 1}_col_{c + 1}>{image * seq_len}" for c in range(cols)) + "\n"
                    for r in range(rows))
    return f"{tiles}\n{whole}"


def smolvlm_video_text(indices: Sequence[int], fps: float | None, duration: float | None, frame_count: int,
                       seq_len: int, *, image: str = "<image>", fake: str = "<fake_token_around_image>",
                       global_image: str = "<global-img>") -> str:
    """A video's placeholder text: the intro naming ``frame_count`` (in words) and the clip's
    whole seconds ``duration`` (the last frame's time where None), one ``Frame from MM:SS:``
    line and image per frame (times ``index / fps`` of the sorted ``indices``), then a blank line."""
    try:
        from num2words import num2words
    except ImportError:
        raise ConfigError("SmolVLM's video prompt spells the frame count with num2words "
                          "(pip install 'msce[hf]')") from None
    rate = float(fps) if fps else _DEFAULT_FPS
    times = [int(i) / rate for i in sorted(int(i) for i in indices)]
    seconds = int(duration) if duration is not None else int(times[-1]) if times else 0
    text = (f"You are provided the following series of {num2words(int(frame_count))} frames from a "
            f"{timedelta(seconds=seconds)} [H:MM:SS] video.\n")
    frame = f"{fake}{global_image}{image * seq_len}{fake}"
    for t in times:
        text += f"\nFrame from {int(t // 60):02d}:{int(t % 60):02d}:{frame}"
    return text + "\n\n"


class SmolVLMFamily(TokenFamily):
    model_types = ("smolvlm",)
    image_fallback = True

    def __init__(self, processor: Any, config: Any, **_: Any):
        super().__init__(processor, config)
        self.image_token = self.image_token or "<image>"
        self.video_token = self.video_token or "<video>"
        self.fake = str(getattr(processor, "fake_image_token", None) or "<fake_token_around_image>")
        self.global_image = str(getattr(processor, "global_image_token", None) or "<global-img>")
        self.seq_len = int(processor.image_seq_len)

    def target(self) -> Target:
        return VideoOrImage(video=target_for(self.processor), image=Frames(layout="NHWC", dtype="uint8"))

    def special_tokens(self) -> tuple[str, ...]:
        return (self.image_token, self.video_token, self.fake, self.global_image)

    def batch_key(self, request: Request) -> Hashable:
        parts = [p for p in request if is_frames(p)]
        return (any(is_image(p) for p in parts), any(not is_image(p) for p in parts))

    def expanded_texts(self, requests: Sequence[Request], texts: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
        counts = [sum(1 for p in r if is_frames(p) and is_image(p)) for r in requests]
        images = [p for r in requests for p in r if is_frames(p) and is_image(p)]
        videos = [p for r in requests for p in r if is_frames(p) and not is_image(p)]
        if images and videos:
            raise BackendError("this batch holds images and videos: SmolVLM's processor returns both under "
                               "pixel_values, so one model input cannot carry both (generate() batches requests "
                               "with keyframes apart from requests with clips; one request cannot hold both)")
        tensors: dict[str, Any] = {}
        image_repl: list[str] = []
        video_repl: list[str] = []
        if images:
            tensors, image_repl = self._images(images, counts)
        if videos:
            tensors, video_repl = self.video_inputs(videos)
        return self.expand(texts, image_repl, video_repl), tensors

    def image_inputs(self, images: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        return self._images(images, [len(images)])

    def _images(self, images: Sequence[Any], counts: Sequence[int]) -> tuple[dict[str, Any], list[str]]:
        """The HF image processor on the parts' uint8 frames, ``counts[k]`` of them per request."""
        frames = [uint8_frames(p, "image parts of this family")[0] for p in images]
        merged = dict(merged_kwargs(self.processor).get("images_kwargs") or {})
        merged.update(return_tensors="pt", return_row_col_info=True)
        try:
            out = dict(self.processor.image_processor(nest(frames, counts), **merged))
        except (ValueError, TypeError) as exc:
            raise BackendError(f"{type(self.processor.image_processor).__name__} failed: {exc}") from exc
        rows = [int(r) for per in out.pop("rows") for r in per]
        cols = [int(c) for per in out.pop("cols") for c in per]
        repl = [smolvlm_image_text(r, c, self.seq_len, image=self.image_token, fake=self.fake,
                                   global_image=self.global_image) for r, c in zip(rows, cols)]
        return out, repl

    def video_inputs(self, videos: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        import torch

        tensors, masks = [], []
        for p in videos:
            check_batch_target(p, VideoOrImage, "videos")
            hf = p.to_hf()
            tensors.append(torch.as_tensor(hf["pixel_values"])[0])
            if "pixel_attention_mask" in hf:
                masks.append(torch.as_tensor(hf["pixel_attention_mask"])[0])
        longest = max(int(t.shape[0]) for t in tensors)
        if len({tuple(t.shape[1:]) for t in tensors}) > 1:
            raise BackendError(f"videos of frame shapes {sorted({tuple(t.shape[1:]) for t in tensors})} cannot "
                               "share one model batch")
        if masks and len(masks) == len(tensors):
            pixel = torch.zeros((len(tensors), longest, *tensors[0].shape[1:]), dtype=tensors[0].dtype)
            mask = torch.zeros((len(tensors), longest, *tensors[0].shape[2:]), dtype=torch.int64)
            for k, (t, m) in enumerate(zip(tensors, masks)):
                pixel[k, :t.shape[0]] = t
                mask[k, :t.shape[0]] = m
            out = {"pixel_values": pixel, "pixel_attention_mask": mask}
        else:
            if len({int(t.shape[0]) for t in tensors}) > 1:
                raise BackendError("videos of different lengths need do_pad (the video processor's padding)")
            out = {"pixel_values": torch.stack(tensors, 0)}
        repl = []
        for p in videos:
            meta = hf_video_metadata(p)
            repl.append(smolvlm_video_text(meta.frames_indices, meta.fps, meta.duration, longest,
                                           self.seq_len, image=self.image_token, fake=self.fake,
                                           global_image=self.global_image))
        return out, repl

    def processor_kwargs(self, videos: Sequence[Any]) -> dict[str, Any]:
        return {"video_metadata": [hf_video_metadata(p) for p in videos]}

    def processor_images(self, requests: Sequence[Request], images: list[Any]) -> list[list[Any]]:
        """Processor mode's ``images``: nested per request, as SmolVLMProcessor counts them."""
        return nest(images, [sum(1 for p in r if is_frames(p) and is_image(p)) for r in requests])


def nest(items: Sequence[Any], counts: Sequence[int]) -> list[list[Any]]:
    """``items`` cut into consecutive lists of ``counts`` (empty counts skipped): one list per
    request that has any."""
    out, start = [], 0
    for n in counts:
        if n:
            out.append(list(items[start:start + n]))
            start += n
    if start != len(items):
        raise BackendError(f"{len(items)} images for {start} image slots")
    return out
