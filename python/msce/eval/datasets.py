"""Dataset loaders: DFEW, MAFW and a generic folder/CSV layout.

A loader reads a dataset's own annotation files and returns a :class:`Dataset`: the
list of single-label :class:`Sample` objects (id, media path, canonical label name)
plus, where the dataset ships them, its official train/test folds.

Conventions
-----------
* Labels are mapped by NAME through :mod:`msce.labels`. DFEW's CSVs carry the
  official ids 1..7, which go through ``DFEW.official_ids``; MAFW's split files carry
  names, and a numeric MAFW label is rejected because two incompatible id orders are
  in circulation.
* Sample ids are strings. DFEW's ``video_name`` column is a number that is zero-padded
  to five digits on disk (``1`` -> ``"00001"``), so it is never read as an integer.
* A sample is either a video file or a *frame folder* (a directory of images, one per
  frame). For a frame folder, ``Sample.path`` is the directory and
  ``Sample.is_frame_folder`` is true; :func:`frame_files` lists its images in order.
* The media directory is configurable (``media_dir``); by default the loader picks the
  first of the dataset's usual locations that exists.

Every problem with a root, split file, annotation line or media file raises
:class:`msce.errors.DatasetError` naming the offending path.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Literal, Mapping, Sequence

from msce._files import IMAGE_EXTENSIONS, _natural_key, frame_files
from msce.errors import ConfigError, DatasetError
from msce.labels import DFEW, MAFW, LabelSet, get_label_set

__all__ = [
    "Sample",
    "Fold",
    "Dataset",
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "frame_files",
    "load_dfew",
    "load_mafw",
    "load_generic",
    "load_dataset",
    "make_label_set",
    "DEFAULT_N_PER_CLASS",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")

#: Balanced test-split size per class used by the paper (Sec. 3.1).
DEFAULT_N_PER_CLASS: dict[str, int] = {"mafw": 45, "dfew": 100}

Media = Literal["auto", "video", "frames"]
OnMissing = Literal["error", "skip"]


@dataclass(frozen=True)
class Sample:
    """One labelled clip.

    ``id`` is the dataset's clip id as a string (``"00025"``); ``path`` the video file
    or frame folder; ``label`` the canonical class name in the dataset's label set.
    """

    id: str
    path: Path
    label: str
    is_frame_folder: bool = False

    def to_dict(self) -> dict:
        return {"id": self.id, "path": str(self.path), "label": self.label, "is_frame_folder": self.is_frame_folder}


@dataclass(frozen=True)
class Fold:
    """An official train/test partition, as sample ids (file order kept)."""

    number: int
    train: tuple[str, ...]
    test: tuple[str, ...]


@dataclass
class Dataset:
    """A loaded dataset.

    ``samples`` holds every single-label clip the annotations describe (for DFEW and
    MAFW: the union of the official split files), in a stable order sorted by id.
    ``folds`` maps fold numbers to the official partitions (empty for generic data).
    ``skipped`` lists ids whose media were missing when the loader ran with
    ``on_missing="skip"``. ``incomplete_folds`` maps a fold that has only one of its two
    split files to the missing file's path (the other folds load; that fold is absent).
    """

    name: str
    root: Path
    label_set: LabelSet
    samples: list[Sample]
    folds: dict[int, Fold] = field(default_factory=dict)
    media_dir: Path | None = None
    skipped: list[str] = field(default_factory=list)
    incomplete_folds: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_id = {s.id: s for s in self.samples}
        if len(self._by_id) != len(self.samples):
            dup = [i for i, c in Counter(s.id for s in self.samples).items() if c > 1]
            raise DatasetError(f"{self.name} at {self.root}: duplicate sample ids {dup[:5]}")

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._by_id

    def get(self, sample_id: str) -> Sample:
        """The sample with this id; DatasetError when unknown."""
        try:
            return self._by_id[sample_id]
        except KeyError:
            raise DatasetError(f"sample id {sample_id!r} is not in the {self.name} dataset at {self.root}") from None

    def select(self, ids: Iterable[str]) -> list[Sample]:
        """Samples for ``ids`` in the given order; DatasetError naming unknown ids."""
        ids = list(ids)
        missing = [i for i in ids if i not in self._by_id]
        if missing:
            raise DatasetError(
                f"{len(missing)} id(s) are not in the {self.name} dataset at {self.root} "
                f"(first: {missing[:5]}); was the split made for another copy or media folder?"
            )
        return [self._by_id[i] for i in ids]

    def class_counts(self) -> dict[str, int]:
        """Number of samples per class, in label-set order (zeros included)."""
        c = Counter(s.label for s in self.samples)
        return {name: c.get(name, 0) for name in self.label_set.names}

    def describe(self) -> dict:
        """JSON-serializable summary recorded in run directories."""
        return {
            "name": self.name,
            "root": str(self.root),
            "media_dir": str(self.media_dir) if self.media_dir else None,
            "labels": list(self.label_set.names),
            "label_set": self.label_set.key,
            "num_samples": len(self.samples),
            "class_counts": self.class_counts(),
            "folds": sorted(self.folds),
            "skipped": len(self.skipped),
        }


# --------------------------------------------------------------------------- helpers

def _resolve_dir(root: Path, d: str | os.PathLike) -> Path:
    d = Path(d)
    return d if d.is_absolute() else root / d


def _index_media(media_dir: Path, media: Media) -> dict[str, tuple[Path, bool]]:
    """Map clip stem -> (path, is_frame_folder) with one directory scan.

    Deterministic whatever the directory order: a video beats a frame folder of the
    same id (``media="auto"``), and among videos of one id the extension listed first
    in :data:`VIDEO_EXTENSIONS` wins.
    """
    try:
        entries = list(os.scandir(media_dir))
    except FileNotFoundError:
        raise DatasetError(f"media folder not found: {media_dir}") from None
    except NotADirectoryError:
        raise DatasetError(f"media path is not a folder: {media_dir}") from None
    videos: dict[str, tuple[int, Path]] = {}
    folders: dict[str, Path] = {}
    for e in entries:
        if e.name.startswith("."):
            continue
        stem, ext = os.path.splitext(e.name)
        if e.is_dir():
            if media in ("auto", "frames"):
                folders[e.name] = Path(e.path)
        elif media in ("auto", "video") and ext.lower() in VIDEO_EXTENSIONS and e.is_file():
            rank = VIDEO_EXTENSIONS.index(ext.lower())
            if stem not in videos or rank < videos[stem][0]:
                videos[stem] = (rank, Path(e.path))
    out: dict[str, tuple[Path, bool]] = {k: (p, True) for k, p in folders.items()}
    out.update({k: (p, False) for k, (_, p) in videos.items()})
    return out


def _pick_media_dir(root: Path, candidates: Sequence[tuple[str, Media]], media: Media,
                    media_dir: str | os.PathLike | None) -> tuple[Path, Media]:
    if media not in ("auto", "video", "frames"):
        raise ConfigError(f"media must be 'auto', 'video' or 'frames', got {media!r}")
    if media_dir is not None:
        d = _resolve_dir(root, media_dir)
        if not d.is_dir():
            raise DatasetError(f"media folder not found: {d}")
        return d, media
    tried = []
    for rel, kind in candidates:
        if media != "auto" and kind != media:
            continue
        d = root / rel
        tried.append(str(d))
        if d.is_dir():
            return d, kind
    raise DatasetError(f"no media folder found under {root}; looked for {tried} (pass media_dir to choose one)")


def _attach_media(
    name: str,
    root: Path,
    labelled: Mapping[str, str],
    media_dir: Path,
    media: Media,
    on_missing: OnMissing,
) -> tuple[list[Sample], list[str]]:
    if on_missing not in ("error", "skip"):
        raise ConfigError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
    index = _index_media(media_dir, media)
    samples, missing = [], []
    for sid in sorted(labelled):
        hit = index.get(sid)
        if hit is None:
            missing.append(sid)
            continue
        samples.append(Sample(id=sid, path=hit[0], label=labelled[sid], is_frame_folder=hit[1]))
    if missing and on_missing == "error":
        kind = {"video": "video files", "frames": "frame folders"}.get(media, "videos or frame folders")
        raise DatasetError(
            f"{name}: {len(missing)} of {len(labelled)} annotated clips have no {kind} in {media_dir} "
            f"(first missing: {[str(media_dir / m) for m in missing[:3]]}); "
            f"pass on_missing='skip' to evaluate the rest"
        )
    return samples, missing


def _merge_label(labelled: dict[str, str], sid: str, label: str, where: str) -> None:
    prev = labelled.setdefault(sid, label)
    if prev != label:
        raise DatasetError(f"clip {sid} is labelled {prev!r} in one split file and {label!r} in {where}")



def _read_folds(path_of, read_rows) -> tuple[dict[str, str], dict[int, Fold], dict[int, str]]:
    """The official folds 1..5: ``path_of(k, "train" | "test")`` names a fold's file and
    ``read_rows(path)`` gives its (sample id, label) rows. Returns every sample's label, the
    complete folds, and for a fold with one file missing, the missing file (the folds that
    exist still load)."""
    labelled: dict[str, str] = {}
    folds: dict[int, Fold] = {}
    incomplete: dict[int, str] = {}
    for k in range(1, 6):
        parts = {}
        for part in ("train", "test"):
            p = path_of(k, part)
            if p.is_file():
                rows = read_rows(p)
                for sid, lab in rows:
                    _merge_label(labelled, sid, lab, str(p))
                parts[part] = tuple(sid for sid, _ in rows)
        if len(parts) == 2:
            folds[k] = Fold(k, parts["train"], parts["test"])
        elif parts:
            incomplete[k] = str(path_of(k, "test" if "train" in parts else "train"))
    return labelled, folds, incomplete


def _load_release(labels: LabelSet, root: Path, split_dir: Path, fold_file, read_rows,
                  media_dirs: Sequence[tuple[str, Media]], media: Media, media_dir: str | os.PathLike | None,
                  on_missing: OnMissing) -> Dataset:
    """DFEW or MAFW (``labels``) from its release under ``root``: the official folds, whose
    files ``fold_file(k, "train" | "test")`` names relative to ``split_dir`` and ``read_rows``
    reads (at least one fold must be complete), then each labelled clip's media, found in
    ``media_dir`` or else the first of ``media_dirs`` that exists."""
    name = labels.key.upper()
    if not split_dir.is_dir():
        raise DatasetError(f"{name} split folder not found: {split_dir}")
    labelled, folds, incomplete = _read_folds(lambda k, part: split_dir / fold_file(k, part), read_rows)
    if not folds:
        train, test = (split_dir / fold_file(1, part) for part in ("train", "test"))
        raise DatasetError(f"no complete {name} fold: expected {train} and {test}"
                           + (f"; missing: {', '.join(incomplete.values())}" if incomplete else ""))
    mdir, kind = _pick_media_dir(root, media_dirs, media, media_dir)
    samples, skipped = _attach_media(name, root, labelled, mdir, kind, on_missing)
    return Dataset(labels.key, root, labels, samples, folds=folds, media_dir=mdir, skipped=skipped,
                   incomplete_folds=incomplete)


def _check_root(root: str | os.PathLike, name: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{name} root not found: {root}")
    return root


# --------------------------------------------------------------------------- DFEW

_DFEW_MEDIA = (("Clip/original", "video"), ("Clip/jpg_256", "frames"), ("Clip/clip_224x224", "frames"))


def _dfew_id(cell: str, where: str) -> str:
    raw = cell.strip()
    stem = os.path.splitext(raw)[0] if raw.lower().endswith(VIDEO_EXTENSIONS) else raw
    if not stem.isdigit():
        raise DatasetError(f"{where}: video_name {raw!r} is not a clip number")
    return stem.zfill(5)


def _read_dfew_csv(path: Path) -> list[tuple[str, str]]:
    """Rows (id, label name) of one DFEW split CSV."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except OSError as exc:
        raise DatasetError(f"cannot read DFEW split file {path}: {exc}") from None
    if not rows:
        raise DatasetError(f"DFEW split file is empty: {path}")
    id_col, label_col, start = 0, 1, 0
    header = [c.strip().lower() for c in rows[0]]
    if not header[0].isdigit():
        if "video_name" not in header or "label" not in header:
            raise DatasetError(f"{path}: expected columns video_name,label, got header {rows[0]}")
        id_col, label_col, start = header.index("video_name"), header.index("label"), 1
    out = []
    for lineno, row in enumerate(rows[start:], start=start + 1):
        where = f"{path}:{lineno}"
        if len(row) <= max(id_col, label_col):
            raise DatasetError(f"{where}: expected video_name,label, got {row}")
        sid = _dfew_id(row[id_col], where)
        cell = row[label_col].strip()
        try:
            label = DFEW.official_ids[int(float(cell))]
        except (ValueError, KeyError):
            name = DFEW.canonical(cell)
            if name is None:
                raise DatasetError(f"{where}: DFEW label {cell!r} is neither an id 1..7 nor a class name") from None
            label = name
        out.append((sid, label))
    return out


def load_dfew(
    root: str | os.PathLike,
    *,
    media: Media = "auto",
    media_dir: str | os.PathLike | None = None,
    on_missing: OnMissing = "error",
) -> Dataset:
    """Load DFEW from its release layout.

    Split files: ``EmoLabel_DataSplit/{train,test}(single-labeled)/set_{1..5}.csv`` with
    columns ``video_name,label`` (labels 1..7 = happy, sad, neutral, angry, surprise,
    disgust, fear). Every fold file present is read; at least one fold must be complete.
    Media: ``Clip/original/<id>.mp4`` (videos), else ``Clip/jpg_256/<id>/`` or
    ``Clip/clip_224x224/<id>/`` (frame folders); ``media_dir`` (relative to ``root`` or
    absolute) overrides the choice and ``media`` restricts it to one kind.
    """
    root = _check_root(root, "DFEW")
    return _load_release(DFEW, root, root / "EmoLabel_DataSplit",
                         lambda k, part: Path(f"{part}(single-labeled)") / f"set_{k}.csv", _read_dfew_csv,
                         _DFEW_MEDIA, media, media_dir, on_missing)


# --------------------------------------------------------------------------- MAFW

_MAFW_SPLITS = Path("Train & Test Set") / "single" / "no_caption"
_MAFW_MEDIA = (("data/clips", "video"), ("data/frames", "frames"), ("data/faces", "frames"))


def _read_mafw_list(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(f"cannot read MAFW split file {path}: {exc}") from None
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        where = f"{path}:{lineno}"
        if len(parts) != 2:
            raise DatasetError(f"{where}: expected '<clip>.mp4 <label>', got {line!r}")
        clip, word = parts
        sid = os.path.splitext(clip)[0] if clip.lower().endswith(VIDEO_EXTENSIONS) else clip
        if word.lstrip("-").isdigit():
            raise DatasetError(
                f"{where}: numeric MAFW label {word!r}; MAFW ids differ between codebases, "
                f"so msce only accepts class names ({', '.join(MAFW.names)})"
            )
        name = MAFW.canonical(word)
        if name is None:
            raise DatasetError(f"{where}: unknown MAFW label {word!r}; expected one of {list(MAFW.names)}")
        out.append((sid, name))
    if not out:
        raise DatasetError(f"MAFW split file is empty: {path}")
    return out


def load_mafw(
    root: str | os.PathLike,
    *,
    media: Media = "auto",
    media_dir: str | os.PathLike | None = None,
    on_missing: OnMissing = "error",
    split_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Load MAFW (single-label, no-caption protocol).

    Split files: ``Train & Test Set/single/no_caption/set_{1..5}/{train,test}.txt``,
    one ``<clip>.mp4 <label name>`` per line (``split_dir`` overrides the folder).
    Media: ``data/clips/<id>.mp4`` (videos), else ``data/frames/<id>/`` or
    ``data/faces/<id>/`` (frame folders); ``media_dir`` overrides.
    """
    root = _check_root(root, "MAFW")
    sdir = _resolve_dir(root, split_dir) if split_dir is not None else root / _MAFW_SPLITS
    return _load_release(MAFW, root, sdir, lambda k, part: Path(f"set_{k}") / f"{part}.txt", _read_mafw_list,
                         _MAFW_MEDIA, media, media_dir, on_missing)


# --------------------------------------------------------------------------- generic


def make_label_set(names: Sequence[str], key: str = "generic") -> LabelSet:
    """A LabelSet for arbitrary class names (lower-cased, order kept, no synonyms)."""
    clean = [n.strip().lower() for n in names]
    if not clean or any(not n for n in clean):
        raise ConfigError(f"label names must be non-empty strings, got {list(names)}")
    if len(set(clean)) != len(clean):
        raise ConfigError(f"duplicate label names in {list(names)}")
    return LabelSet(
        key=key,
        names=tuple(clean),
        display=tuple(n.replace("_", " ").title() for n in clean),
        abbrev=tuple(n[:2].upper() for n in clean),
    )


def _coerce_labels(labels: LabelSet | str | Sequence[str] | None) -> LabelSet | None:
    if labels is None or isinstance(labels, LabelSet):
        return labels
    if isinstance(labels, str):
        try:
            return get_label_set(labels)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None
    return make_label_set(labels)


def _is_media(p: Path) -> bool:
    if p.is_dir():
        return True
    return p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS


def load_generic(
    source: str | os.PathLike,
    *,
    labels: LabelSet | str | Sequence[str] | None = None,
    on_missing: OnMissing = "error",
) -> Dataset:
    """Load a user dataset from a CSV file or a folder per label.

    * **CSV** (``source`` is a file): columns ``path,label`` (header optional; an ``id``
      column is used when present). Relative paths are relative to the CSV's folder.
    * **Folders** (``source`` is a directory): ``source/<label>/<clip>`` where each clip
      is a video file or a frame folder.

    ``labels`` is a LabelSet, a known key (``"dfew"``, ``"mafw"``: answers and
    annotations are then mapped through its names and synonyms) or a list of names
    fixing the class order. Without it the classes are the sorted distinct labels
    found. Ids are the clip paths relative to the dataset root, without extension.
    """
    source = Path(source).expanduser()
    lset = _coerce_labels(labels)
    rows: list[tuple[str, Path, str, str]] = []  # (id, path, raw label, where)
    if source.is_file():
        root = source.parent
        try:
            with open(source, newline="", encoding="utf-8-sig") as f:
                table = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
        except OSError as exc:
            raise DatasetError(f"cannot read dataset CSV {source}: {exc}") from None
        if not table:
            raise DatasetError(f"dataset CSV is empty: {source}")
        head = [c.strip().lower() for c in table[0]]
        id_col = None
        if "path" in head and "label" in head:
            p_col, l_col = head.index("path"), head.index("label")
            id_col = head.index("id") if "id" in head else None
            body = enumerate(table[1:], start=2)
        else:
            p_col, l_col = 0, 1
            body = enumerate(table, start=1)
        for lineno, r in body:
            where = f"{source}:{lineno}"
            if len(r) <= max(p_col, l_col):
                raise DatasetError(f"{where}: expected path,label, got {r}")
            rel = r[p_col].strip()
            p = _resolve_dir(root, rel)
            sid = r[id_col].strip() if id_col is not None else Path(rel).with_suffix("").as_posix()
            rows.append((sid, p, r[l_col].strip(), where))
    elif source.is_dir():
        root = source
        for d in sorted(source.iterdir(), key=lambda p: p.name):
            if not d.is_dir() or d.name.startswith("."):
                continue
            for clip in sorted(d.iterdir(), key=lambda p: _natural_key(p.name)):
                if clip.name.startswith(".") or not _is_media(clip):
                    continue
                rel = clip.relative_to(source)
                sid = rel.with_suffix("").as_posix() if clip.is_file() else rel.as_posix()
                rows.append((sid, clip, d.name, str(clip)))
        if not rows:
            raise DatasetError(f"no videos or frame folders found in label folders under {source}")
    else:
        raise DatasetError(f"generic dataset not found: {source} (expected a CSV file or a folder per label)")

    if lset is None:
        lset = make_label_set(sorted({r[2].strip().lower() for r in rows}))
    samples, missing = [], []
    seen: set[str] = set()
    for sid, p, raw, where in rows:
        name = lset.canonical(raw)
        if name is None:
            raise DatasetError(f"{where}: label {raw!r} is not in the label set {list(lset.names)}")
        if sid in seen:
            raise DatasetError(f"{where}: duplicate clip id {sid!r}")
        seen.add(sid)
        if not (p.is_dir() or p.is_file()):
            missing.append((sid, str(p)))
            continue
        samples.append(Sample(id=sid, path=p, label=name, is_frame_folder=p.is_dir()))
    if missing and on_missing != "skip":
        raise DatasetError(
            f"{len(missing)} clip(s) listed in {source} do not exist (first: {[m[1] for m in missing[:3]]})"
        )
    samples.sort(key=lambda s: s.id)
    return Dataset("generic", root, lset, samples, skipped=[m[0] for m in missing])


# --------------------------------------------------------------------------- dispatch


def load_dataset(name: str, root: str | os.PathLike, **options) -> Dataset:
    """Load ``"dfew"``, ``"mafw"`` or ``"generic"``; options go to the loader."""
    loaders = {"dfew": load_dfew, "mafw": load_mafw, "generic": load_generic}
    try:
        loader = loaders[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {sorted(loaders)}") from None
    return loader(root, **options)
