"""One self-contained HTML report: sections of figures and tables, a table of contents, a layer picker, and the
analysis numbers embedded as JSON. Images are embedded as data: URIs and the style and script are inline, so the
file opens anywhere, offline, and can be mailed as it is."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path

from dsmoe.atomic import atomic_file


@dataclass(frozen=True)
class Figure:
    """A PNG shown at most its own width (scaled down to the page's), under `title`, with `caption` beneath."""

    title: str
    png: Path
    caption: str = ""


@dataclass(frozen=True)
class Table:
    """A table under `title`: a header row of `columns`, then `rows` of cells (text, or numbers shown
    right-aligned: integers with thousands separators, floats to 4 significant digits), `caption` beneath."""

    title: str
    columns: list[str]
    rows: list[list]
    caption: str = ""


@dataclass(frozen=True)
class Section:
    """A report section: `blocks` always shown, `per_layer` (layer -> blocks) shown for the picked layer only."""

    key: str
    title: str
    intro: str = ""
    blocks: list = field(default_factory=list)
    per_layer: dict[int, list] = field(default_factory=dict)


STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{position:sticky;top:0;background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;
 align-items:center;flex-wrap:wrap;z-index:1}
header h1{font-size:1.15em;margin:0}header .sub{opacity:.75;font-size:.9em}
header label{margin-left:auto}header select{font-size:1em;margin-left:.4em;padding:.1em .4em;min-width:3.5em}
header a{color:#9cc7ff}
main{max-width:1100px;margin:0 auto;padding:1em 1.2em 4em}
nav ol{columns:2;background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:.8em 2.2em}
section{scroll-margin-top:3.5em;background:#fff;border:1px solid #dde1e7;border-radius:6px;
 padding:.4em 1.2em 1em;margin:1.2em 0}
h2{border-bottom:1px solid #e6e9ee;padding-bottom:.3em}h3{font-size:1em;margin:1.2em 0 .4em}
figure{margin:.6em 0}figure img{max-width:100%;height:auto;border:1px solid #eef0f3}
figcaption,.caption{color:#556;font-size:.88em;margin:.3em 0}
.table-wrap{overflow-x:auto}table{border-collapse:collapse;font-size:.85em;margin:.4em 0}
th,td{border:1px solid #e1e4ea;padding:.25em .5em;vertical-align:top;text-align:left;white-space:pre-wrap}
th{background:#f0f2f5}th.num{text-align:right}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
[data-layer]{border-left:3px solid #e8eefc;padding-left:.9em}
.layer-tag{display:inline-block;background:#e8eefc;color:#2a4b8d;border-radius:4px;padding:0 .4em;font-size:.8em}
"""

SCRIPT = """
const picker = document.getElementById('layer');
function show(layer) {
  document.querySelectorAll('[data-layer]').forEach(el => { el.hidden = el.dataset.layer !== layer; });
  document.querySelectorAll('.current-layer').forEach(el => { el.textContent = layer; });
}
picker.addEventListener('change', () => show(picker.value));
show(picker.value);
"""


def is_number(value) -> bool:
    """Python and numpy integers and floats; not booleans (shown as words)."""
    return isinstance(value, Real) and not isinstance(value, bool)


def cell(value) -> str:
    if not is_number(value):
        return f"<td>{html.escape(str(value))}</td>"
    text = f"{int(value):,}" if isinstance(value, Integral) else f"{float(value):.4g}"
    return f'<td class="num">{text}</td>'


def header(table: Table, index: int) -> str:
    """A column's header, right-aligned like its cells over a column of mostly numbers (a '-' may fill a gap)."""
    column = [row[index] for row in table.rows if index < len(row)]
    numeric = 2 * sum(map(is_number, column)) > len(column)
    align = ' class="num"' if numeric else ""
    return f"<th{align}>{html.escape(str(table.columns[index]))}</th>"


def table_html(table: Table) -> str:
    head = "".join(header(table, index) for index in range(len(table.columns)))
    body = "".join("<tr>" + "".join(cell(value) for value in row) + "</tr>" for row in table.rows)
    caption = f'<p class="caption">{html.escape(table.caption)}</p>' if table.caption else ""
    return (f'<h3>{html.escape(table.title)}</h3><div class="table-wrap"><table><tr>{head}</tr>{body}</table></div>'
            f"{caption}")


def figure_html(figure: Figure) -> str:
    data = base64.b64encode(Path(figure.png).read_bytes()).decode()
    caption = f"<figcaption>{html.escape(figure.caption)}</figcaption>" if figure.caption else ""
    return (f'<h3>{html.escape(figure.title)}</h3><figure><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(figure.title)}">{caption}</figure>')


def block_html(block: Figure | Table) -> str:
    return figure_html(block) if isinstance(block, Figure) else table_html(block)


def section_html(section: Section, first_layer: int) -> str:
    parts = [f'<section id="{html.escape(section.key)}"><h2>{html.escape(section.title)}</h2>']
    if section.intro:
        parts.append(f"<p>{html.escape(section.intro)}</p>")
    parts += [block_html(block) for block in section.blocks]
    if section.per_layer:
        parts.append(f'<p><span class="layer-tag">layer <span class="current-layer">{first_layer}</span></span> '
                     'chosen with the layer picker at the top</p>')
    for layer, blocks in section.per_layer.items():
        hidden = "" if layer == first_layer else " hidden"
        parts.append(f'<div data-layer="{layer}"{hidden}>' + "".join(block_html(b) for b in blocks) + "</div>")
    return "".join(parts) + "</section>"


def write_report(out_path: Path, title: str, subtitle: str, sections: list[Section], layers: list[int],
                 numbers: dict) -> Path:
    """Write the report to out_path atomically (a reader never sees half of it); `numbers` is embedded as JSON
    (in the script element #numbers, and as a download link)."""
    numbers_json = json.dumps(numbers)
    embedded = numbers_json.replace("<", "\\u003c")  # JSON's own escape: no "</script>" or "<!--" to end the element
    download = base64.b64encode(numbers_json.encode()).decode()
    options = "".join(f'<option value="{layer}">{layer}</option>' for layer in layers)
    toc = "".join(f'<li><a href="#{html.escape(s.key)}">{html.escape(s.title)}</a></li>' for s in sections)
    body = "".join(section_html(section, layers[0] if layers else -1) for section in sections)
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{STYLE}</style></head><body>'
            f'<header><h1>{html.escape(title)}</h1><span class="sub">{html.escape(subtitle)}</span>'
            f'<a download="numbers.json" href="data:application/json;base64,{download}">numbers.json</a>'
            f'<label>MoE layer<select id="layer">{options}</select></label></header>'
            f'<main><nav><ol>{toc}</ol></nav>{body}</main>'
            f'<script type="application/json" id="numbers">{embedded}</script>'
            f"<script>{SCRIPT}</script></body></html>")
    with atomic_file(out_path) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return Path(out_path)
