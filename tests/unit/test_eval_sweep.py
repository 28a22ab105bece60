"""msce sweep: the grid's expansion, finished runs skipped, one report that averages folds
and puts the sparse 1-FPS run on the dense F1-vs-FPS curve."""

from __future__ import annotations

import json

import pytest

from eval_fakes import FakeBackend, FakeStrategy, make_generic_tree
from msce.errors import ConfigError
from msce.eval import report
from msce.eval.datasets import load_generic
from msce.eval.runner import load_run, run_eval
from msce.eval.sweep import Sweep, load_sweep


def test_grid_expansion_sparse_once_dense_without_1fps(tmp_path):
    sw = Sweep(out=tmp_path, data={"dataset": "dfew", "root": "/x", "split": "official"}, models=["m/a", "m/b"],
               strategies=["sparse", "dense", "msce"], fps=[1.0, 5.0, 10.0], folds=[1, 2])
    pts = sw.points()
    assert len(pts) == 2 * 2 * (1 + 2 + 3)
    first = [(p.strategy, p.fps) for p in pts if p.model == "m/a" and p.fold == 1]
    assert first == [("sparse", 1.0), ("dense", 5.0), ("dense", 10.0), ("msce", 1.0), ("msce", 5.0), ("msce", 10.0)]
    assert pts[0].name == "dfew-official-fold1-sparse-fps1-m_a"
    assert pts[3].strategy_options({"msce": {"gap_frames": 2}}) == {"gap_frames": 2, "keyframe_fps": 1.0}
    assert len({p.name for p in pts}) == len(pts)


def test_sweep_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[data]\ndataset = "generic"\nroot = "."\n[grid]\nmodels = ["m"]\nstrategies = ["sparse"]\n'
                   '[run]\nbatchsize = 2\n')
    with pytest.raises(ConfigError, match="batchsize"):
        load_sweep(bad)
    bad.write_text("out = [")
    with pytest.raises(ConfigError, match="TOML"):
        load_sweep(bad)


def test_msce_sweep_runs_skips_finished_and_reports(tmp_path, capsys):
    from msce.cli import main

    make_generic_tree(tmp_path / "data", {"happy": 3, "sad": 3, "angry": 3})
    cfg = tmp_path / "grid.toml"
    cfg.write_text(
        'out = "runs"\nn_boot = 0\n'
        '[data]\ndataset = "generic"\nroot = "data"\nlabels = ["happy", "sad", "angry"]\nsplit = "all"\n'
        '[grid]\nmodels = ["fake/a"]\nstrategies = ["eval_fakes:FakeStrategy"]\nfps = [1, 5]\n'
        '[backend]\nname = "eval_fakes:FakeBackend"\n'
        '[run]\nconcurrency = 2\n')
    assert main(["sweep", str(cfg), "--dry-run"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["sweep", str(cfg), "--no-progress"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "2 run(s) made, 0 finished ones skipped" in out
    runs = sorted((tmp_path / "runs").glob("generic-*"))
    assert [r.name for r in runs] == ["generic-all-eval_fakes_FakeStrategy-fps1-fake_a",
                                      "generic-all-eval_fakes_FakeStrategy-fps5-fake_a"]
    cfg5 = json.loads((runs[1] / "config.json").read_text())
    assert cfg5["strategy"]["fps"] == 5.0 and cfg5["sessions"][-1]["execution"]["concurrency"] == 2
    assert (tmp_path / "runs" / "report" / "report.html").is_file()
    assert main(["sweep", str(cfg), "--no-progress"]) == 0
    assert "0 run(s) made, 2 finished ones skipped" in capsys.readouterr().out


def test_report_averages_folds_and_joins_sparse_to_the_dense_curve(tmp_path):
    make_generic_tree(tmp_path / "data", {"happy": 4, "sad": 4, "angry": 4})
    ds = load_generic(tmp_path / "data", labels=["happy", "sad", "angry"])
    dirs = []
    for fold in (1, 2, 3):
        split = {"name": f"official-fold{fold}", "kind": "official", "fold": fold, "test_sha256": str(fold)}
        for strat in (FakeStrategy(name="sparse", fps=1.0, salt=f"s{fold}"),
                      FakeStrategy(name="dense", fps=5.0, salt=f"d{fold}")):
            out = tmp_path / f"{strat.name}-fold{fold}"
            strat.config = lambda s=strat: {"name": s.name, "fps": s.fps}  # the same config on every fold
            run_eval(ds, ds.samples, strat, FakeBackend(), out, split=split, progress=False, n_boot=0)
            dirs.append(out)
    runs = [load_run(d) for d in dirs]
    folds = report.fold_groups(runs) if hasattr(report, "fold_groups") else None
    from msce.eval.report.grouping import fold_groups, fps_groups

    folds = fold_groups(runs)
    assert sorted(folds) == ["generic · fake/tiny-model · dense @ 5 fps", "generic · fake/tiny-model · sparse @ 1 fps"]
    assert all([r.config["split"]["fold"] for r in rs] == [1, 2, 3] for rs in folds.values())
    curves = fps_groups(runs)
    assert len(curves) == 3  # one curve per fold, each with the sparse run as its 1-FPS point
    for key, rs in curves.items():
        assert key.endswith(("fold1", "fold2", "fold3")) and sorted(r.strategy_name for r in rs) == ["dense", "sparse"]
    md = report.build_report(runs, tmp_path / "rep", n_boot=0)["markdown"].read_text()
    assert "# Folds" in md and "±" in md and "1, 2, 3" in md
    import numpy as np

    f1 = [load_run(d).report.macro_f1 for d in dirs[::2]]
    assert f"{np.mean(f1):.4f} ± {np.std(f1, ddof=1):.4f}" in md
