"""The paper's analyses: tables, correlations vs scipy, paired tests, asymmetry, FPS curves."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from msce.eval import analysis
from msce.errors import ConfigError, DatasetError
from msce.labels import DFEW, MAFW
from msce.eval.metrics import Predictions

# --------------------------------------------------------------------------- paper tables
# Per-class F1 rows and macro-F1 exactly as printed in Tables S2 (MAFW, columns AG AX CO
# DA DG FE HA HP NU SD SU) and S3 (DFEW, columns AG DG FE HA NU SD SU) of the paper.

TABLE_S2 = """\
MAE-DFER 0.509 0.208 0.179 0.222 0.206 0.339 0.696 0.237 0.347 0.569 0.449 0.3602
MAE-DFER FS 0.341 0.225 0.192 0.083 0.100 0.411 0.645 0.163 0.332 0.536 0.318 0.3041
HiCMAE 0.611 0.296 0.269 0.164 0.464 0.448 0.689 0.042 0.410 0.535 0.466 0.3993
HiCMAE FS 0.392 0.235 0.200 0.118 0.197 0.471 0.700 0.043 0.349 0.603 0.371 0.3345
Qwen2.5-VL 0.354 0.102 0.103 0.070 0.196 0.409 0.539 0.000 0.247 0.455 0.219 0.2449
Qwen2.5-VL FS 0.351 0.073 0.170 0.066 0.245 0.382 0.500 0.083 0.240 0.413 0.233 0.2506
Qwen2.5-Omni 0.540 0.066 0.192 0.125 0.185 0.480 0.522 0.222 0.277 0.385 0.373 0.306
Qwen2.5-Omni FS 0.536 0.125 0.189 0.163 0.164 0.430 0.500 0.197 0.283 0.391 0.291 0.2972
Qwen3-VL 0.389 0.197 0.044 0.097 0.182 0.449 0.576 0.043 0.288 0.409 0.340 0.2738
Qwen3-VL FS 0.274 0.188 0.082 0.000 0.143 0.469 0.546 0.078 0.313 0.434 0.352 0.2615
EmotionQwen 0.348 0.053 0.219 0.000 0.178 0.259 0.641 0.041 0.303 0.430 0.367 0.2581
EmotionQwen FS 0.356 0.000 0.123 0.051 0.242 0.118 0.625 0.044 0.328 0.479 0.404 0.2517
Video-LLaVA 0.210 0.000 0.000 0.000 0.120 0.000 0.396 0.000 0.000 0.231 0.000 0.0870
Video-LLaVA FS 0.193 0.000 0.000 0.000 0.041 0.000 0.447 0.000 0.000 0.215 0.000 0.0814
LLaVA-NeXT-V 0.352 0.194 0.000 0.000 0.176 0.000 0.492 0.000 0.000 0.326 0.042 0.1438
LLaVA-NeXT-V FS 0.367 0.128 0.000 0.000 0.204 0.000 0.433 0.000 0.000 0.311 0.077 0.1382
InternVL-3.0 0.270 0.129 0.143 0.000 0.234 0.381 0.469 0.080 0.240 0.424 0.320 0.2445
InternVL-3.0 FS 0.314 0.138 0.077 0.000 0.187 0.313 0.469 0.151 0.177 0.442 0.291 0.2326
Gemini2.5-Flash 0.537 0.263 0.333 0.262 0.213 0.587 0.600 0.091 0.273 0.532 0.444 0.3758
Gemini2.5-Flash FS 0.543 0.214 0.316 0.233 0.133 0.558 0.604 0.064 0.300 0.539 0.485 0.3626
"""

TABLE_S3 = """\
MAE-DFER 0.722 0.058 0.416 0.936 0.523 0.667 0.630 0.5645
MAE-DFER FS 0.563 0.000 0.484 0.847 0.456 0.650 0.362 0.4802
HiCMAE 0.762 0.020 0.497 0.908 0.562 0.687 0.571 0.5725
HiCMAE FS 0.604 0.000 0.465 0.843 0.504 0.695 0.248 0.4797
Qwen2.5-VL 0.585 0.196 0.447 0.678 0.401 0.447 0.432 0.4552
Qwen2.5-VL FS 0.599 0.156 0.443 0.709 0.401 0.453 0.413 0.4534
Qwen2.5-Omni 0.616 0.075 0.438 0.682 0.369 0.509 0.318 0.4296
Qwen2.5-Omni FS 0.604 0.073 0.456 0.626 0.355 0.525 0.3200 0.4226
Qwen3-VL 0.688 0.076 0.600 0.853 0.489 0.586 0.565 0.5511
Qwen3-VL FS 0.670 0.076 0.630 0.847 0.494 0.616 0.543 0.5538
EmotionQwen 0.632 0.073 0.397 0.809 0.473 0.614 0.509 0.5010
EmotionQwen FS 0.597 0.260 0.440 0.723 0.395 0.508 0.503 0.4895
Video-LLaVA 0.317 0.000 0.000 0.457 0.019 0.365 0.000 0.1654
Video-LLaVA FS 0.260 0.000 0.000 0.420 0.055 0.338 0.000 0.1531
LLaVA-NeXT-V 0.444 0.021 0.099 0.898 0.194 0.327 0.094 0.2969
LLaVA-NeXT-V FS 0.400 0.000 0.058 0.862 0.197 0.326 0.056 0.2712
InternVL-3.0 0.634 0.118 0.364 0.845 0.435 0.609 0.526 0.5044
InternVL-3.0 FS 0.598 0.108 0.457 0.773 0.455 0.612 0.487 0.4985
Gemini2.5-Flash 0.754 0.143 0.600 0.881 0.507 0.695 0.626 0.6008
Gemini2.5-Flash FS 0.726 0.127 0.546 0.854 0.527 0.676 0.589 0.5778
"""

# Macro-F1 (the F1 columns) of Table 2, MAFW then DFEW, by model.
TABLE_2_F1 = {
    "MAE-DFER": (0.3602, 0.5645), "MAE-DFER FS": (0.3041, 0.4802),
    "HiCMAE": (0.3993, 0.5725), "HiCMAE FS": (0.3345, 0.4797),
    "Qwen2.5-VL": (0.2449, 0.4552), "Qwen2.5-VL FS": (0.2506, 0.4534),
    "Qwen2.5-Omni": (0.306, 0.4296), "Qwen2.5-Omni FS": (0.2972, 0.4226),
    "Qwen3-VL": (0.2738, 0.5511), "Qwen3-VL FS": (0.2615, 0.5538),
    "EmotionQwen": (0.2581, 0.5010), "EmotionQwen FS": (0.2517, 0.4895),
    "Video-LLaVA": (0.0870, 0.1654), "Video-LLaVA FS": (0.0814, 0.1531),
    "LLaVA-NeXT-V": (0.1438, 0.2969), "LLaVA-NeXT-V FS": (0.1382, 0.2712),
    "InternVL-3.0": (0.2445, 0.5044), "InternVL-3.0 FS": (0.2326, 0.4985),
    "Gemini2.5-Flash": (0.3758, 0.6008), "Gemini2.5-Flash FS": (0.3626, 0.5778),
}

# Regression pin: rows whose printed macro-F1 equals the mean of the printed per-class
# values, rounded to the printed number of decimals. The independent derivation is
# exact_rows() (exact rational arithmetic on the printed strings, no msce), checked in
# test_exact_rows_pin_matches_an_exact_rational_derivation; the other rows differ in the
# last digit because the per-class cells were rounded to 3 decimals before printing (their
# means still agree within that rounding, see the bound test below).
EXACT_S2 = {
    "HiCMAE FS", "Qwen2.5-VL", "Qwen2.5-Omni", "Qwen2.5-Omni FS", "EmotionQwen", "Video-LLaVA",
    "LLaVA-NeXT-V", "LLaVA-NeXT-V FS", "InternVL-3.0", "InternVL-3.0 FS", "Gemini2.5-Flash FS",
}
EXACT_S3 = {"Qwen2.5-VL FS", "Qwen2.5-Omni", "EmotionQwen", "Video-LLaVA", "InternVL-3.0"}


def parse(table: str, k: int) -> dict[str, tuple[list[float], str]]:
    rows = {}
    for line in table.strip().splitlines():
        t = line.split()
        rows[" ".join(t[: -k - 1])] = ([float(x) for x in t[-k - 1 : -1]], t[-1])
    return rows


def decimals(s: str) -> int:
    return len(s.split(".")[1])


def exact_rows(table: str, k: int) -> set[str]:
    """Rows whose printed macro-F1 is the exact mean of the printed cells rounded half-even
    to the printed decimals, computed with fractions from the printed text (no floats, no msce)."""
    from fractions import Fraction

    out = set()
    for line in table.strip().splitlines():
        t = line.split()
        name, cells, printed = " ".join(t[: -k - 1]), t[-k - 1 : -1], t[-1]
        scaled = sum(Fraction(c) for c in cells) / k * 10 ** decimals(printed)
        whole, rest = divmod(scaled.numerator, scaled.denominator)
        rest = Fraction(rest, scaled.denominator)
        rounded = whole + (rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2 == 1))
        if Fraction(rounded, 10 ** decimals(printed)) == Fraction(printed):
            out.add(name)
    return out


@pytest.mark.parametrize("table,k,pin", [(TABLE_S2, 11, EXACT_S2), (TABLE_S3, 7, EXACT_S3)])
def test_exact_rows_pin_matches_an_exact_rational_derivation(table, k, pin):
    assert exact_rows(table, k) == pin


@pytest.mark.parametrize("table,k,exact", [(TABLE_S2, 11, EXACT_S2), (TABLE_S3, 7, EXACT_S3)])
def test_paper_per_class_rows_give_table_macro_f1(table, k, exact):
    rows = parse(table, k)
    assert len(rows) == 20
    matching = set()
    for name, (vals, printed) in rows.items():
        macro = analysis.macro_f1_from_per_class(vals)
        # every row: within the rounding of 3-decimal cells (<= 0.0005) plus the printed rounding
        assert abs(macro - float(printed)) <= 0.0005 + 0.5 * 10 ** -decimals(printed) + 1e-12, name
        if round(macro, decimals(printed)) == float(printed):
            matching.add(name)
    assert matching == exact_rows(table, k)  # independent derivation
    assert matching == exact  # regression pin


def test_per_class_tables_agree_with_table_2():
    s2, s3 = parse(TABLE_S2, 11), parse(TABLE_S3, 7)
    for model, (mafw, dfew) in TABLE_2_F1.items():
        assert float(s2[model][1]) == mafw and float(s3[model][1]) == dfew


def test_macro_f1_from_mapping_with_label_abbreviations():
    vals, _ = parse(TABLE_S2, 11)["Qwen2.5-VL"]
    # the tables order MAFW classes alphabetically by abbreviation; map onto msce's label order
    abbrev_order = ["AG", "AX", "CO", "DA", "DG", "FE", "HA", "HP", "NU", "SD", "SU"]
    by_name = {MAFW.names[MAFW.abbrev.index(a)]: v for a, v in zip(abbrev_order, vals)}
    assert set(by_name) == set(MAFW.names)
    assert round(analysis.macro_f1_from_per_class(by_name), 4) == 0.2449
    with pytest.raises(ConfigError):
        analysis.macro_f1_from_per_class([])


def test_table_1_p_values_follow_from_r_with_11_classes():
    # Table 1 (MAFW, 11 classes): r and two-tailed p as printed
    table_1 = [(0.8825, 0.0003), (0.7927, 0.0036), (0.8041, 0.0029), (0.6343, 0.0361), (0.7547, 0.0073), (0.8176, 0.0021)]
    for r, p in table_1:
        assert round(analysis.pearson_p_from_r(r, 11), 4) == p


# --------------------------------------------------------------------------- correlations vs scipy


@pytest.mark.parametrize("seed", range(25))
def test_correlate_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 30))
    x = rng.lognormal(size=n)
    y = 0.3 * np.log(x) + rng.normal(size=n) * rng.uniform(0.1, 2)
    c = analysis.correlate(x, y)
    ref = stats.pearsonr(x, y)
    assert c.r == pytest.approx(ref.statistic, abs=1e-12)
    assert c.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)
    sp = stats.spearmanr(x, y)
    assert c.rho == pytest.approx(sp.statistic, abs=1e-12) and c.rho_p == pytest.approx(sp.pvalue, rel=1e-9)


def test_correlate_edge_cases():
    c = analysis.correlate([1, 2, 3], [5, 5, 5])
    assert math.isnan(c.r) and math.isnan(c.p)
    with pytest.raises(ConfigError):
        analysis.correlate([1, 2], [1, 2, 3])
    f1 = {"a": 0.1, "b": 0.5, "c": 0.4}
    freq = {"a": 1e-6, "b": 1e-4, "c": 1e-5}
    c = analysis.frequency_correlation(f1, freq, log=True)
    ref = stats.pearsonr(np.log10([1e-6, 1e-4, 1e-5]), [0.1, 0.5, 0.4])
    assert c.r == pytest.approx(ref.statistic) and c.n == 3
    names, r, p = analysis.correlation_table({"f1": f1, "freq": freq})
    assert names == ["f1", "freq"] and r[0, 1] == pytest.approx(stats.pearsonr([0.1, 0.5, 0.4], [1e-6, 1e-4, 1e-5]).statistic)
    assert r[0, 0] == 1 and math.isnan(p[0, 0])


def test_wordfreq_english_and_chinese_offline():
    wordfreq = pytest.importorskip("wordfreq")
    en = analysis.lexical_frequency(MAFW, "en")
    assert en["anger"] == wordfreq.word_frequency("anger", "en") > 0
    assert set(en) == set(MAFW.names)
    zh = analysis.lexical_frequency(MAFW, "zh")  # segmented by jieba, from data shipped in the wheel
    assert all(v > 0 for v in zh.values())
    assert zh["anxiety"] == wordfreq.word_frequency(analysis.CHINESE_WORDS["anxiety"], "zh")
    dfew = analysis.lexical_frequency(DFEW, "zh")
    assert dfew["happy"] == zh["happiness"]
    with pytest.raises(ConfigError, match="words"):
        analysis.lexical_frequency(["boredom"], "zh")


def test_frequency_csv(tmp_path):
    p = tmp_path / "ngram.csv"
    p.write_text("label,count\nhappy,900\nsadness,500\nneutral,100\nangry,300\nsurprise,50\ndisgust,20\nfear,80\n")
    freq = analysis.load_frequency_csv(p, DFEW)  # synonyms accepted, result in label order
    assert list(freq) == list(DFEW.names) and freq["sad"] == 500
    p.write_text("happy,1\n")
    with pytest.raises(DatasetError, match="no count"):
        analysis.load_frequency_csv(p, DFEW)
    p.write_text("happy,1\nglad,2\n")
    with pytest.raises(DatasetError, match="twice"):
        analysis.load_frequency_csv(p, DFEW)


# --------------------------------------------------------------------------- paired tests


def preds(name, truth, pred, labels=("a", "b", "c")):
    return Predictions(tuple(str(i) for i in range(len(truth))), tuple(truth), tuple(pred), tuple(labels), name)


def test_mcnemar_is_exact_binomial():
    a = np.array([1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    b = np.array([0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0], bool)
    m = analysis.mcnemar_exact(a, b)
    assert (m.b, m.c) == (6, 1)
    assert m.p_value == pytest.approx(stats.binomtest(6, 7, 0.5).pvalue)
    assert analysis.mcnemar_exact(a, a).p_value == 1.0


def test_shuffle_sensitivity():
    rng = np.random.default_rng(0)
    labels = ("a", "b", "c")
    truth = [labels[i] for i in rng.integers(0, 3, 300)]
    normal = [t if rng.random() < 0.7 else None for t in truth]
    fs = [t if rng.random() < 0.1 else labels[int(rng.integers(3))] for t in truth]
    s = analysis.shuffle_sensitivity(preds("n", truth, normal), preds("fs", truth, fs), n_boot=200, seed=1)
    assert s.n == 300
    assert s.macro_f1_delta.estimate == pytest.approx(s.shuffled.macro_f1 - s.normal.macro_f1)
    assert s.macro_f1_delta.high < 0  # a big drop is detected
    assert s.overall.p_value < 1e-4
    t = np.array(truth)
    for i, lab in enumerate(labels):
        mask = t == lab
        ca = np.array([n == x for n, x in zip(normal, truth)])[mask]
        cb = np.array([f == x for f, x in zip(fs, truth)])[mask]
        assert s.tests[lab] == analysis.mcnemar_exact(ca, cb)
    d = s.to_dict()
    assert set(d["per_class"]) == set(labels)


def test_paired_bootstrap_uses_common_videos_only():
    a = preds("a", ["a", "b", "c", "a"], ["a", "b", "c", "b"])
    b = Predictions(("0", "1", "9"), ("a", "b", "c"), ("a", "a", "c"), ("a", "b", "c"), "b")
    ci = analysis.paired_bootstrap_delta(a, b, n_boot=50)
    a2, b2 = a.align(b)
    assert a2.ids == ("0", "1") and ci.estimate == pytest.approx(b2.report().macro_f1 - a2.report().macro_f1)


def test_compare_runs():
    truth = ["a", "b", "c"] * 20
    r0 = preds("base", truth, truth)
    r1 = preds("worse", truth, [t if i % 3 else None for i, t in enumerate(truth)])
    cmp = analysis.compare_runs([r0, r1], n_boot=100)
    assert cmp.baseline == "base" and len(cmp.deltas) == 1
    d = cmp.deltas[0]
    assert d.n_common == 60 and d.mcnemar.b == 20 and d.mcnemar.c == 0
    assert d.macro_f1_delta.estimate < 0
    with pytest.raises(ConfigError, match="distinct"):
        analysis.compare_runs([r0, preds("base", truth, truth)])


# --------------------------------------------------------------------------- FPS curve


def test_fps_sweep_sorted_with_peak():
    truth = ["a", "b", "c"] * 10
    acc = {1: 0.5, 5: 0.9, 10: 0.7, 25: 0.3}
    runs = []
    for fps, q in acc.items():
        n_right = int(q * len(truth))
        pred = [t if i < n_right else None for i, t in enumerate(truth)]
        runs.append((fps, preds(f"fps{fps}", truth, pred)))
    curve = analysis.fps_sweep(list(reversed(runs)), n_boot=50)
    assert curve.fps.tolist() == [1, 5, 10, 25]
    assert curve.peak_fps == 5
    assert np.all(curve.low <= curve.value + 1e-12) and np.all(curve.value <= curve.high + 1e-12)
    assert curve.names == ("fps1", "fps5", "fps10", "fps25")
    with pytest.raises(ConfigError, match="same fps"):
        analysis.fps_sweep([(1, runs[0][1]), (1.0, runs[1][1])])


# --------------------------------------------------------------------------- asymmetry


def test_asymmetric_confusion():
    labels = ["sadness", "neutral", "disappointment", "contempt"]
    # rows = true, cols = predicted (+ invalid column)
    cm = np.array([
        [40, 3, 1, 0, 1],
        [2, 41, 0, 1, 1],
        [12, 6, 20, 2, 5],
        [3, 9, 1, 25, 7],
    ])
    # training class counts: sadness alone holds 500/1150 < half, sadness + neutral 900/1150 >= half
    counts = {"sadness": 500, "neutral": 400, "disappointment": 150, "contempt": 100}
    a = analysis.asymmetric_confusion(cm, labels, counts=counts)
    assert a.head == ("sadness", "neutral") and a.tail == ("disappointment", "contempt")
    assert a.source == "training class counts" and "1150 training clips" in a.rule
    assert a.tail_to_head == 12 + 6 + 3 + 9 and a.head_to_tail == 1 + 0 + 0 + 1
    assert a.p_two_sided == pytest.approx(stats.binomtest(30, 32, 0.5).pvalue)
    assert a.p_greater == pytest.approx(stats.binomtest(30, 32, 0.5, alternative="greater").pvalue)
    assert a.tail_support == 45 + 45 and a.tail_to_head_rate == pytest.approx(30 / 90)
    top = a.pairs[0]
    assert (top.a, top.b, top.a_to_b, top.b_to_a) == ("sadness", "disappointment", 1, 12)
    assert top.p_value == pytest.approx(stats.binomtest(1, 13, 0.5).pvalue)
    assert len(a.pairs) == 6
    explicit = analysis.asymmetric_confusion(cm, labels, head=["sadness"], tail=["disappointment"])
    assert (explicit.tail_to_head, explicit.head_to_tail) == (12, 1)
    with pytest.raises(ConfigError):
        analysis.asymmetric_confusion(cm, labels)
    with pytest.raises(ConfigError, match="both"):
        analysis.asymmetric_confusion(cm, labels, head=["sadness"], tail=["sadness"])


# --------------------------------------------------------------------------- head / tail classes


def test_head_tail_split_holds_half_of_training_clips():
    # hand-built counts; the head is the shortest most-frequent prefix holding >= half
    assert analysis.head_tail_split({"a": 10, "b": 10, "c": 5, "d": 5}) == (("a", "b"), ("c", "d"))
    assert analysis.head_tail_split({"c": 3, "a": 6, "b": 3}) == (("a",), ("c", "b"))  # 6 of 12 is exactly half
    assert analysis.head_tail_split({"a": 1, "b": 1}) == (("a",), ("b",))
    assert analysis.head_tail_split({"a": 0, "b": 7, "c": 0}) == (("b",), ("a", "c"))
    # ties keep the mapping's order, so the result is deterministic
    assert analysis.head_tail_split({n: 5 for n in "abcd"}) == (("a", "b"), ("c", "d"))
    assert analysis.head_tail_split({n: 5 for n in "dcba"}) == (("d", "c"), ("b", "a"))
    assert analysis.head_tail_split({"a": 1, "b": 9, "c": 5}, n_head=2) == (("b", "c"), ("a",))
    for bad in ({"a": 1}, {"a": -1, "b": 2}, {"a": 0, "b": 0}, {"a": float("nan"), "b": 1}):
        with pytest.raises(ConfigError):
            analysis.head_tail_split(bad)
    with pytest.raises(ConfigError, match="n_head"):
        analysis.head_tail_split({"a": 1, "b": 2}, n_head=2)


def test_head_tail_sources_counts_paper_user():
    paper = analysis.resolve_head_tail(MAFW)
    assert paper.source == "paper Sec. 3.3"
    assert set(paper.head) == {"anger", "happiness", "neutral", "sadness", "surprise"}
    assert set(paper.tail) == set(MAFW.names) - set(paper.head)
    # the paper's example: disappointment -> sadness is a tail -> head flow
    assert "sadness" in paper.head and "neutral" in paper.head and "disappointment" in paper.tail
    # known training counts win over the paper's set
    # 1700 clips: happiness + neutral hold 800 < 850; the next is a tie at 100, won by anger (label order)
    counts = {n: 100 for n in MAFW.names} | {"happiness": 450, "neutral": 350}
    c = analysis.resolve_head_tail(MAFW, counts=counts, counts_note="from split.json")
    assert c.source == "training class counts" and c.head == ("happiness", "neutral", "anger")
    assert "from split.json" in c.rule and c.counts == {n: counts[n] for n in MAFW.names}
    u = analysis.resolve_head_tail(MAFW, head=["fear"])
    assert u.source == "user" and u.head == ("fear",) and len(u.tail) == 10
    assert "Source: user" in u.describe()
    # DFEW: the paper names no head set, msce has no default without counts
    with pytest.raises(ConfigError, match="MAFW"):
        analysis.resolve_head_tail(DFEW)
    d = analysis.resolve_head_tail(DFEW, counts=dict(zip(DFEW.names, [30, 20, 25, 10, 8, 2, 5])))
    assert d.head == ("happy", "neutral") and d.source == "training class counts"
    with pytest.raises(ConfigError, match="missing"):
        analysis.resolve_head_tail(DFEW, counts={"happy": 3, "sad": 1})
    with pytest.raises(ConfigError, match="n_head"):
        analysis.resolve_head_tail(MAFW, n_head=3)
    with pytest.raises(ConfigError, match="tail"):
        analysis.resolve_head_tail(MAFW, tail=["fear"])
    with pytest.raises(ConfigError, match="unknown"):
        analysis.resolve_head_tail(MAFW, head=["joy"])


def test_asymmetry_with_paper_default_on_mafw():
    k = len(MAFW)
    cm = np.zeros((k, k + 1), dtype=int)
    np.fill_diagonal(cm, 20)
    sd, da, ne = MAFW.index("sadness"), MAFW.index("disappointment"), MAFW.index("neutral")
    cm[da, sd] = 14  # disappointment -> sadness
    cm[sd, da] = 2
    cm[da, ne] = 3
    a = analysis.asymmetric_confusion(cm, MAFW.names)
    assert a.source == "paper Sec. 3.3"
    assert (a.tail_to_head, a.head_to_tail) == (17, 2)
    assert a.p_greater == pytest.approx(stats.binomtest(17, 19, 0.5, alternative="greater").pvalue)
    top = a.pairs[0]
    assert (top.a, top.b, top.a_to_b, top.b_to_a) == ("sadness", "disappointment", 2, 14)
    ht = analysis.resolve_head_tail(MAFW, head=["disappointment"])
    assert analysis.asymmetric_confusion(cm, MAFW.names, head=ht).head == ("disappointment",)
    with pytest.raises(ConfigError):
        analysis.asymmetric_confusion(cm[:7, :8], DFEW.names)  # no default for DFEW


def test_training_class_counts_from_split(tmp_path):
    from collections import Counter

    from msce.eval.splits import Split

    rng = np.random.default_rng(3)
    ids = [f"{i:05d}" for i in range(200)]
    labs = {i: DFEW.names[int(rng.integers(len(DFEW)))] for i in ids}
    split = Split("file", "dfew", train=tuple(ids[50:]), test=tuple(ids[:50]), labels=labs)
    ref = Counter(labs[i] for i in ids[50:])
    got = analysis.training_class_counts(Split.load(split.save(tmp_path / "split.json")), DFEW)
    assert list(got) == list(DFEW.names) and got == {n: ref.get(n, 0) for n in DFEW.names}
    bad = Split("file", "dfew", train=("1", "2"), test=(), labels={"1": "happy"})
    with pytest.raises(DatasetError, match="no class"):
        analysis.training_class_counts(bad, DFEW)
    with pytest.raises(DatasetError, match="outside"):
        analysis.training_class_counts(Split("file", "x", ("1",), (), {"1": "boredom"}), DFEW)


def test_fig_s3_f1_vs_training_counts_matches_scipy():
    # MAE-DFER's per-class F1 (Table S2, abbreviation order) against hand-built counts
    abbrev_order = ["AG", "AX", "CO", "DA", "DG", "FE", "HA", "HP", "NU", "SD", "SU"]
    vals, _ = parse(TABLE_S2, 11)["MAE-DFER"]
    f1 = {MAFW.names[MAFW.abbrev.index(a)]: v for a, v in zip(abbrev_order, vals)}
    counts = dict(zip(MAFW.names, [1100, 500, 560, 1450, 1350, 1250, 870, 200, 440, 240, 350]))
    c = analysis.frequency_correlation(f1, counts)
    x = [counts[n] for n in MAFW.names]
    y = [f1[n] for n in MAFW.names]
    ref = stats.pearsonr(x, y)
    assert c.r == pytest.approx(ref.statistic, abs=1e-12) and c.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert c.rho == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12) and c.n == 11


def test_table_1_gemini_qwen_r_differs_from_table_s2_rows():
    # Table 1 prints r = 0.8176 (p = 0.0021) for Gemini2.5-Flash vs Qwen2.5-VL on MAFW;
    # the per-class F1 rows of Table S2 for the same two models give r = 0.897.
    rows = parse(TABLE_S2, 11)
    qwen, gemini = rows["Qwen2.5-VL"][0], rows["Gemini2.5-Flash"][0]
    c = analysis.correlate(gemini, qwen)
    ref = stats.pearsonr(gemini, qwen)
    assert c.r == pytest.approx(ref.statistic, abs=1e-12) and c.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert round(c.r, 3) == 0.897 and c.p < 0.001
    assert abs(c.r - 0.8176) > 0.07
    assert round(analysis.pearson_p_from_r(0.8176, 11), 4) == 0.0021  # Table 1's own r and p agree
