"""The rest of issue 15's list, run as a user runs ``msce``: one configuration gets one run
folder however its flags were spelled, ``msce info`` prints the good files when another
argument is missing, and it reports rotation as ffprobe does (checked against ffprobe)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from backend_fakes import FakeChatServer
from test_cli_day_one import msce, two_class_clips

MODEL = "qwen2.5-vl"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg command is needed to generate test clips")
    root = tmp_path_factory.mktemp("walk")
    two_class_clips(root / "data")
    return root


SPELLINGS = {
    "sparse at 1 FPS": ("sparse", [[], ["--fps", "1.0"], ["--strategy-opt", "fps=1"]]),
    "msce keyframes at 2 FPS": ("msce", [["--fps", "2"], ["--strategy-opt", "keyframe_fps=2.0"]]),
    "dense at 5 FPS": ("dense", [[], ["--strategy-opt", "fps=5"]]),
}


@pytest.mark.parametrize("case", sorted(SPELLINGS))
def test_one_configuration_one_run_folder(data, tmp_path, case) -> None:
    strategy, spellings = SPELLINGS[case]
    with FakeChatServer(model_name=MODEL, answer="happy") as server:
        for extra in spellings:
            res = msce("eval", "--dataset", "generic", "--root", str(data / "data"), "--split", "all", "--model", MODEL,
                       "--base-url", server.base_url, "--strategy", strategy, "--no-progress", "--no-cache",
                       "--n-boot", "5", *extra, cwd=tmp_path)
            assert res.returncode == 0, res.stderr
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 1, folders
    rate = {"sparse": "fps1", "msce": "fps2", "dense": "fps5"}[strategy]
    assert folders[0] == f"generic-all-{strategy}-{rate}-{MODEL}"
    sessions = json.loads((tmp_path / "runs" / folders[0] / "config.json").read_text())["sessions"]
    assert len(sessions) == len(spellings)  # every later spelling resumed the same run


def test_info_prints_the_good_files_when_one_is_missing(data, tmp_path) -> None:
    good = data / "data" / "happy" / "happy_0.mp4"
    missing = tmp_path / "missing.mp4"
    res = msce("info", "--json", str(missing), str(good), cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert [m["path"] for m in json.loads(res.stdout)] == [str(good)]
    errors = res.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("msce info: error:") and "missing.mp4" in errors[0]
    res = msce("info", str(good), str(missing), cwd=tmp_path)
    assert res.returncode == 1 and "num_frames" in res.stdout and "color_range" in res.stdout
    assert "missing.mp4" in res.stderr


def _rotated(src, dst, ccw: int) -> None:
    """A stream copy of ``src`` whose display matrix turns it ``ccw`` degrees counter-clockwise
    (ffmpeg >= 6: -display_rotation; 5.x: the "rotate" tag, which takes the same degrees)."""
    help_text = subprocess.run(["ffmpeg", "-hide_banner", "-h", "full"], capture_output=True, text=True).stdout
    if "-display_rotation" in help_text:
        cmd = ["ffmpeg", "-v", "error", "-y", "-display_rotation", str(ccw), "-i", str(src), "-c", "copy", str(dst)]
    else:
        cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c", "copy", "-metadata:s:v:0", f"rotate={ccw}",
               str(dst)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def _ffprobe_rotation(path) -> int:
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream_side_data=rotation",
           "-of", "json", str(path)]
    stream = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["streams"][0]
    return int(next(d["rotation"] for d in stream["side_data_list"] if "rotation" in d))


@pytest.mark.parametrize("ccw", [90, 180, 270])
def test_info_reports_rotation_as_ffprobe_does(data, tmp_path, ccw) -> None:
    if shutil.which("ffprobe") is None:
        pytest.skip("the ffprobe command is needed")
    import msce as api

    path = tmp_path / f"rot{ccw}.mp4"
    _rotated(data / "data" / "happy" / "happy_0.mp4", path, ccw)
    res = msce("info", "--json", str(path), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (info,) = json.loads(res.stdout)
    probe = _ffprobe_rotation(path)
    assert info["rotation"] == probe or (ccw == 180 and abs(probe) == 180)  # -180 and 180: the same matrix
    assert info["rotation_clockwise"] == api.VideoReader(path).metadata.rotation
    assert (info["width"], info["height"]) == ((48, 64) if ccw in (90, 270) else (64, 48))
