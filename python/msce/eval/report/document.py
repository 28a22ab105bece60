"""A tiny document model for reports: headings, paragraphs, tables and PNG figures,
rendered to Markdown (figures as files under ``figures/``) and to one self-contained HTML
page (figures as base64 data URLs), plus the number formats the report's tables use."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["Document", "fmt_p", "fmt_ci"]


@dataclass
class Document:
    """A tiny document that renders to Markdown and HTML."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", ([str(h) for h in header], [[_cell(c) for c in r] for r in rows])))

    def image(self, name: str, png: bytes, alt: str) -> None:
        self.figures.append((name, png))
        self.blocks.append(("img", (name, alt)))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, v in self.blocks:
            if kind == "h":
                out += ["#" * (v[0] + 1) + " " + v[1], ""]
            elif kind == "p":
                out += [v, ""]
            elif kind == "table":
                header, rows = v
                out.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
                out.append("|" + "|".join("---" for _ in header) + "|")
                out += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
                out.append("")
            elif kind == "img":
                out += [f"![{v[1]}](figures/{v[0]})", ""]
        return "\n".join(out)

    def html(self) -> str:
        figs = dict(self.figures)
        body = []
        for kind, v in self.blocks:
            if kind == "h":
                lvl = min(v[0] + 1, 6)
                body.append(f"<h{lvl}>{html.escape(v[1])}</h{lvl}>")
            elif kind == "p":
                body.append(f"<p>{html.escape(v)}</p>")
            elif kind == "table":
                header, rows = v
                th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
                trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(figs[v[0]]).decode("ascii")
                body.append(f'<figure><img alt="{html.escape(v[1])}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{html.escape(v[1])}</figcaption></figure>")
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
            "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
            "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
            "td:first-child,th:first-child{text-align:left}img{max-width:100%}figure{margin:1em 0}"
            "figcaption{font-size:0.85em;color:#555}"
        )
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{style}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
        )


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return f"{p:.2e}" if p < 1e-4 else f"{p:.4f}"


def fmt_ci(ci: Mapping | None) -> str:
    if not ci:
        return "–"
    return f"[{ci['low']:.4f}, {ci['high']:.4f}]"
