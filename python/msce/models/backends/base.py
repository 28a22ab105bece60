"""The backend interface: requests, generation parameters, the Backend protocol.

A :data:`Request` is an ordered list of parts. A part is either text (``str``) or a
``msce.FrameBatch``: a batch of one frame is sent as an image, a longer batch as a
video. Parts keep their order when a backend renders the conversation (one user
turn), so a request can interleave images and text, as MSCE's stage 2 does.

Frame selection and preprocessing never happen in a backend: the strategy plans and
loads frames with the target the backend asks for (:meth:`Backend.target`), and the
backend only formats what it is given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, Sequence, Union, runtime_checkable

from msce.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from msce import FrameBatch

__all__ = ["GenerationParams", "Request", "Part", "Backend", "is_frames", "is_image", "text_parts"]

Part = Union[str, "FrameBatch"]
Request = Sequence[Part]


@dataclass(frozen=True)
class GenerationParams:
    """How to decode.

    ``temperature == 0`` means greedy decoding (the default, and what results
    tables use); above 0 the backend samples with ``top_p``, and ``seed`` makes the
    sample reproducible where the backend supports seeding (transformers always;
    OpenAI-compatible servers when they honour the ``seed`` field).
    """

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be a positive int, got {self.max_new_tokens!r}")
        if not (self.temperature >= 0.0):
            raise ConfigError(f"temperature must be >= 0, got {self.temperature!r}")
        if not (0.0 < self.top_p <= 1.0):
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Backend(Protocol):
    """A model that answers a batch of requests.

    ``model_id`` names the model (used in cache keys and run records);
    ``fingerprint()`` returns the JSON-serializable settings that change outputs
    beyond the model id (dtype, image encoding, ...), also part of cache keys.
    ``generate`` returns one decoded answer per request, in request order, and is
    ONE model invocation however many requests it carries.
    """

    model_id: str

    def target(self) -> Any:
        """The msce preprocessing target the frames must be loaded with."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        ...

    def generate(self, requests: Sequence[Request], params: GenerationParams) -> list[str]:
        ...


def is_frames(part: object) -> bool:
    """True for a FrameBatch-like part (anything with ``data`` and ``indices``)."""
    return not isinstance(part, str) and hasattr(part, "data") and hasattr(part, "indices")


def is_image(part: object) -> bool:
    """A one-frame batch is sent as an image; longer batches as a video."""
    return is_frames(part) and len(part.indices) == 1


def text_parts(request: Request) -> list[str]:
    return [p for p in request if isinstance(p, str)]


def check_request(request: Request) -> None:
    if isinstance(request, str) or not isinstance(request, Sequence) or len(request) == 0:
        raise ConfigError("a request must be a non-empty list of parts (str or FrameBatch)")
    for part in request:
        if not isinstance(part, str) and not is_frames(part):
            raise ConfigError(f"request part must be str or FrameBatch, got {type(part).__name__}")
        if is_frames(part) and len(part.indices) == 0:
            raise ConfigError("a FrameBatch part must hold at least one frame")
