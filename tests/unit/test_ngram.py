"""Google Books Ngram frequencies (msce.eval.analysis.ngram) and `msce freq`, against a local
fake of the Ngram Viewer's JSON endpoint that answers in the service's format; no test
reaches the internet."""

from __future__ import annotations

import csv
import http.server
import importlib.util
import json
import math
import statistics
import threading
import urllib.parse

import numpy as np
import pytest

from msce.cli import main as cli_main
from msce.errors import ConfigError, DatasetError
from msce.eval import analysis
from msce.labels import get_label_set

MAFW = get_label_set("mafw")
DFEW = get_label_set("dfew")


def _series(seed: float, y0: int, y1: int) -> list[float]:
    return [seed * (1.0 + 0.01 * ((y - 1800) % 17)) for y in range(y0, y1 + 1)]


# word -> {capitalisation: base frequency}; the fake sums capitalisations into "WORD (All)"
# like the service does for case_insensitive=true. Words not listed are absent ([]).
CORPORA = {
    "en": {n: {n: 1e-6 * (i + 1), n.capitalize(): 2e-7 * (i + 1)} for i, n in enumerate(MAFW.names + DFEW.names)},
    "zh": {w: {w: 3e-6 * (i + 1)} for i, w in enumerate(sorted(set(analysis.CHINESE_WORDS.values())))},
}
CORPORA["en"]["joy"] = {"joy": 5e-5}


class FakeNgram:
    """A thread serving /ngrams/json in the real answer format; ``requests`` logs the queries."""

    def __init__(self, status: int = 200, year_cut: int = 0):
        self.requests: list[dict[str, str]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                url = urllib.parse.urlsplit(self.path)
                q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                fake.requests.append(q)
                if url.path != "/ngrams/json" or status != 200:
                    self.send_error(404 if status == 200 else status)
                    return
                body = json.dumps(fake.answer(q), ensure_ascii=False).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.year_cut = year_cut
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ngrams/json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, q: dict[str, str]) -> list[dict]:
        y0, y1 = int(q["year_start"]), int(q["year_end"]) - self.year_cut
        variants = CORPORA.get(q["corpus"], {}).get(q["content"])
        if not variants:
            return []
        rows = [{"ngram": v, "parent": "", "type": "NGRAM", "timeseries": _series(b, y0, y1)}
                for v, b in variants.items()]
        if q.get("case_insensitive") != "true":
            return [r for r in rows if r["ngram"] == q["content"]]
        total = [sum(col) for col in zip(*(r["timeseries"] for r in rows))]
        for r in rows:
            r.update(parent=f"{q['content']} (All)", type="EXPANSION")
        total_row = {"ngram": f"{q['content']} (All)", "parent": "", "type": "CASE_INSENSITIVE", "timeseries": total}
        return [total_row] + rows

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def fake():
    f = FakeNgram()
    yield f
    if f.thread.is_alive():
        f.stop()


def expected_mean(corpus: str, word: str, y0: int, y1: int, case_insensitive: bool = True) -> float:
    variants = CORPORA[corpus][word]
    bases = variants.values() if case_insensitive else [variants[word]]
    return statistics.fmean(sum(_series(b, y, y)[0] for b in bases) for y in range(y0, y1 + 1))


# --------------------------------------------------------------------------- the client


def test_ngram_frequency_averages_the_case_insensitive_series(fake, tmp_path):
    got = analysis.ngram_frequency(["anger", "contempt"], "en", 1990, 2019, 0, url=fake.url, cache_dir=tmp_path)
    assert got["anger"] == pytest.approx(expected_mean("en", "anger", 1990, 2019), rel=1e-12)
    assert got["contempt"] == pytest.approx(expected_mean("en", "contempt", 1990, 2019), rel=1e-12)
    assert fake.requests[0] == {"content": "anger", "year_start": "1990", "year_end": "2019", "corpus": "en",
                                "smoothing": "0", "case_insensitive": "true"}
    exact = analysis.ngram_frequency({"a": "anger"}, "en", 1990, 2019, 0, case_insensitive=False, url=fake.url,
                                     cache_dir=tmp_path)
    assert exact == {"a": pytest.approx(expected_mean("en", "anger", 1990, 2019, case_insensitive=False))}
    assert "case_insensitive" not in fake.requests[-1]


def test_ngram_cache_answers_offline(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("MSCE_NGRAM_URL", fake.url)  # the endpoint from the environment
    first = analysis.ngram_frequency(["fear", "anxiety"], cache_dir=tmp_path)
    assert len(fake.requests) == 2
    assert fake.requests[0]["year_start"] == "1800" and fake.requests[0]["year_end"] == "2022"
    cached = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert cached == ["en/1800-2022_s0_ci/anxiety.json", "en/1800-2022_s0_ci/fear.json"]
    fake.stop()
    assert analysis.ngram_frequency(["fear", "anxiety"], cache_dir=tmp_path) == first
    with pytest.raises(analysis.NgramUnreachableError) as err:  # other years: not cached
        analysis.ngram_frequency(["fear"], year_start=1900, cache_dir=tmp_path)
    assert fake.url in str(err.value) and "no cached answer" in str(err.value)


def test_ngram_unreachable_names_the_url(tmp_path):
    f = FakeNgram()
    f.stop()  # nothing listens on that port any more
    with pytest.raises(analysis.NgramUnreachableError, match="no cached answer") as err:
        analysis.ngram_frequency(["anger"], url=f.url, cache_dir=tmp_path)
    assert f.url in str(err.value) and isinstance(err.value, DatasetError)
    assert not list(tmp_path.rglob("*.json"))


def test_ngram_server_error_is_unreachable(tmp_path):
    f = FakeNgram(status=503)
    try:
        with pytest.raises(analysis.NgramUnreachableError, match="HTTP 503"):
            analysis.ngram_frequency(["anger"], url=f.url, cache_dir=tmp_path, retries=0)
    finally:
        f.stop()


def test_ngram_absent_word_names_word_and_corpus(fake, tmp_path):
    with pytest.raises(analysis.NgramWordMissingError) as err:
        analysis.ngram_frequency(["anger", "glumness"], "en", url=fake.url, cache_dir=tmp_path)
    assert "'glumness'" in str(err.value) and "'en'" in str(err.value)
    with pytest.raises(analysis.NgramWordMissingError, match="'zh'"):  # a corpus that lacks the word
        analysis.ngram_frequency(["anger"], "zh", url=fake.url, cache_dir=tmp_path)


def test_ngram_short_series_and_bad_arguments(tmp_path):
    f = FakeNgram(year_cut=3)  # a corpus that ends before year_end
    try:
        with pytest.raises(analysis.NgramError, match="choose years inside"):
            analysis.ngram_frequency(["anger"], year_end=2025, url=f.url, cache_dir=tmp_path)
    finally:
        f.stop()
    with pytest.raises(ConfigError, match="year_start"):
        analysis.ngram_frequency(["anger"], year_start=2000, year_end=1990, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="query syntax"):
        analysis.ngram_frequency(["anger,fear"], cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="smoothing"):
        analysis.ngram_frequency(["anger"], smoothing=-1, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="only apply to source 'ngram'"):
        analysis.class_frequencies(MAFW, "wordfreq", year_start=1900)


def test_class_words_table_and_overrides(tmp_path):
    assert analysis.class_words(DFEW, "en")["happy"] == "happy"
    assert analysis.class_words(MAFW, "zh")["contempt"] == analysis.CHINESE_WORDS["contempt"]
    assert analysis.class_words(MAFW, "en", {"happiness": "joy"})["happiness"] == "joy"
    with pytest.raises(ConfigError, match="boredom"):
        analysis.class_words(MAFW, "en", {"boredom": "ennui"})
    p = tmp_path / "words.csv"
    p.write_text("label,word\nglad,joy\n")  # a synonym of DFEW's "happy"
    assert analysis.load_words_csv(p, DFEW) == {"happy": "joy"}


# --------------------------------------------------------------------------- msce freq


def read_csv(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_cli_freq_ngram_writes_the_report_csv_and_reruns_from_cache(fake, tmp_path, capsys):
    out, cache = tmp_path / "freq.csv", tmp_path / "cache"
    argv = ["freq", "--labels", "mafw", "--source", "ngram", "--out", str(out), "--year-start", "2000",
            "--year-end", "2019", "--cache-dir", str(cache), "--url", fake.url]
    assert cli_main(argv) == 0
    rows = read_csv(out)
    assert rows[0] == ["label", "frequency", "word"]
    assert [r[0] for r in rows[1:]] == list(MAFW.names) and [r[2] for r in rows[1:]] == list(MAFW.names)
    for lab, value, _ in rows[1:]:
        assert float(value) == pytest.approx(expected_mean("en", lab, 2000, 2019), rel=1e-12)
    assert analysis.load_frequency_csv(out, MAFW) == {r[0]: float(r[1]) for r in rows[1:]}  # what --freq-csv reads
    assert "Google Books Ngram corpus 'en'" in capsys.readouterr().out
    n = len(fake.requests)
    fake.stop()
    out2 = tmp_path / "again.csv"
    assert cli_main(argv[:argv.index("--out") + 1] + [str(out2)] + argv[argv.index("--out") + 2:]) == 0
    assert read_csv(out2) == rows and n == len(MAFW.names)


def test_cli_freq_chinese_words_and_override(fake, tmp_path):
    words = tmp_path / "words.csv"
    words.write_text("label,word\nhappy,joy\n", encoding="utf-8")
    out = tmp_path / "dfew_en.csv"
    assert cli_main(["freq", "--labels", "dfew", "--out", str(out), "--words", str(words), "--cache-dir",
                     str(tmp_path / "c"), "--url", fake.url]) == 0
    row = {r[0]: r for r in read_csv(out)[1:]}
    assert row["happy"][2] == "joy" and float(row["happy"][1]) == pytest.approx(expected_mean("en", "joy", 1800, 2022))
    out = tmp_path / "mafw_zh.csv"
    assert cli_main(["freq", "--labels", "mafw", "--lang", "zh", "--out", str(out), "--cache-dir",
                     str(tmp_path / "c"), "--url", fake.url]) == 0
    row = {r[0]: r for r in read_csv(out)[1:]}
    assert row["anger"][2] == "愤怒" and fake.requests[-1]["corpus"] == "zh"
    assert float(row["anger"][1]) == pytest.approx(expected_mean("zh", "愤怒", 1800, 2022), rel=1e-12)


def test_cli_freq_errors_are_msce_errors(tmp_path, capsys):
    f = FakeNgram()
    f.stop()
    out = tmp_path / "f.csv"
    assert cli_main(["freq", "--labels", "dfew", "--out", str(out), "--cache-dir", str(tmp_path), "--url", f.url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("msce") and "error:" in err and f.url in err and "no cached answer" in err
    assert not out.exists()
    assert cli_main(["freq", "--labels", "dfew", "--source", "wordfreq", "--year-start", "1900", "--out",
                     str(out)]) == 1
    assert "year_start only apply to source 'ngram'" in capsys.readouterr().err
    assert cli_main(["freq", "--labels", "dfew", "--source", "bogus", "--out", str(out)]) == 1
    assert "ngram" in capsys.readouterr().err


def test_cli_freq_from_csv_and_wordfreq(tmp_path):
    src = tmp_path / "counts.csv"
    src.write_text("label,count\nglad,900\nsad,500\nneutral,100\nangry,300\nsurprise,50\ndisgust,20\nfear,80\n")
    out = tmp_path / "out.csv"
    assert cli_main(["freq", "--labels", "dfew", "--source", str(src), "--out", str(out)]) == 0
    assert [(r[0], float(r[1])) for r in read_csv(out)[1:]] == [
        ("happy", 900), ("sad", 500), ("neutral", 100), ("angry", 300), ("surprise", 50), ("disgust", 20), ("fear", 80)]
    wordfreq = pytest.importorskip("wordfreq")
    assert cli_main(["freq", "--labels", "dfew", "--source", "wordfreq", "--out", str(out)]) == 0
    assert {r[0]: float(r[1]) for r in read_csv(out)[1:]}["angry"] == wordfreq.word_frequency("angry", "en")


# --------------------------------------------------------------------------- correlations


def test_frequency_correlations_raw_and_log_match_scipy(fake, tmp_path):
    stats = pytest.importorskip("scipy.stats")
    freq = analysis.class_frequencies(MAFW, "ngram", url=fake.url, cache_dir=tmp_path)
    f1 = {n: 0.05 + 0.8 * (i % 5) / 4 + 0.01 * i for i, n in enumerate(MAFW.names)}
    got = analysis.frequency_correlations(f1, freq.values)
    x = [freq.values[n] for n in MAFW.names]
    y = [f1[n] for n in MAFW.names]
    raw = stats.pearsonr(x, y)
    lg = stats.pearsonr([math.log10(v) for v in x], y)
    assert got["raw"].r == pytest.approx(raw.statistic, abs=1e-12) and got["raw"].p == pytest.approx(raw.pvalue)
    assert got["log10"].r == pytest.approx(lg.statistic, abs=1e-12) and got["log10"].p == pytest.approx(lg.pvalue)
    assert got["raw"].r != pytest.approx(got["log10"].r)
    assert "log10" not in analysis.frequency_correlations(f1, {**freq.values, "fear": 0.0})
    assert not freq.is_proxy and freq.years == (1800, 2022) and freq.corpus == "en"


# --------------------------------------------------------------------------- msce report --freq-source


def _md_rows(md: str, header_start: str) -> list[dict[str, str]]:
    lines = md.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith(header_start))
    head = [c.strip() for c in lines[i].strip("|").split("|")]
    rows = []
    for ln in lines[i + 2:]:
        if not ln.startswith("|"):
            break
        rows.append(dict(zip(head, (c.strip() for c in ln.strip("|").split("|")))))
    return rows


def test_report_freq_source_ngram_names_source_and_both_correlations(fake, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    stats = pytest.importorskip("scipy.stats")
    from sklearn.metrics import f1_score

    from eval_fakes import FakeBackend, FakeStrategy, make_generic_tree
    from msce.eval.datasets import load_generic
    from msce.eval.runner import run_eval

    classes = ["anger", "happiness", "sadness", "contempt", "helplessness"]
    make_generic_tree(tmp_path / "data", {n: 6 for n in classes})
    ds = load_generic(tmp_path / "data", labels=classes)
    run_dir = tmp_path / "run"
    run_eval(ds, ds.samples, FakeStrategy(name="sparse", fps=1.0, accuracy=0.6), FakeBackend(), run_dir,
             progress=False, n_boot=0)
    monkeypatch.setenv("MSCE_NGRAM_URL", fake.url)
    monkeypatch.setenv("MSCE_NGRAM_CACHE", str(tmp_path / "cache"))
    assert cli_main(["report", str(run_dir), "--out", str(tmp_path / "rep"), "--freq-source", "ngram",
                     "--n-boot", "0"]) == 0
    capsys.readouterr()
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "Google Books Ngram corpus 'en', mean yearly frequency over 1800-2022 (smoothing 0)" in md
    assert "Google Books Ngram corpus 'zh'" in md and "anger=anger" in md and "anger=愤怒" in md
    assert "proxy" not in md

    records = [json.loads(ln) for ln in (run_dir / "predictions.jsonl").read_text().splitlines() if ln.strip()]
    f1 = f1_score([r["label"] for r in records], [r["parsed"] or "<invalid>" for r in records], labels=classes,
                  average=None, zero_division=0)
    rows = [r for r in _md_rows(md, "| run | frequency | scale |") if r["frequency"].endswith("en 1800-2022")]
    assert [r["scale"] for r in rows] == ["raw", "log10"]
    freq = [expected_mean("en", n, 1800, 2022) for n in classes]
    raw = stats.pearsonr(freq, f1)
    lg = stats.pearsonr(np.log10(freq), f1)
    assert rows[0]["Pearson r"] == f"{raw.statistic:.4f}" and rows[1]["Pearson r"] == f"{lg.statistic:.4f}"

    fake.stop()  # the cache answers a rerun; the default source says plainly that it is a proxy
    assert cli_main(["report", str(run_dir), "--out", str(tmp_path / "rep2"), "--freq-source", "ngram",
                     "--n-boot", "0"]) == 0
    if importlib.util.find_spec("wordfreq"):
        assert cli_main(["report", str(run_dir), "--out", str(tmp_path / "rep3"), "--n-boot", "0"]) == 0
        md3 = (tmp_path / "rep3" / "report.md").read_text(encoding="utf-8")
        assert "wordfreq is a proxy, not the paper's source" in md3 and "| log10 |" in md3
