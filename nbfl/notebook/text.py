"""What the magics show, with a text form for terminal IPython.

A notebook renders the HTML; terminal IPython prints an object's plain-text form, which
for IPython's ``HTML`` and ``Image`` is ``<IPython.core.display.HTML object>``. These
subclasses carry a readable text form instead: the same content with its tags taken
out (tables in aligned columns, blocks on lines of their own), and for a plot a note
that it shows in a notebook.
"""

from __future__ import annotations

import html
import re

from IPython.display import HTML, Image

_BLOCK_END = re.compile(r"<br\s*/?>|</(?:div|tr|p|summary|details|pre|h\d)>", re.I)
_CELL_END = re.compile(r"</t[dh]>", re.I)
_STYLE = re.compile(r"<style\b.*?</style>", re.I | re.S)
_BUTTON = re.compile(r"<button\b.*?</button>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")
_TABLE = re.compile(r"<table\b.*?</table>", re.I | re.S)
_ROW = re.compile(r"<tr\b.*?</tr>", re.I | re.S)
_CELL = re.compile(r"<t[dh]\b[^>]*>(.*?)</t[dh]>", re.I | re.S)


def text_of(markup: str) -> str:
    """A plain-text reading of nbfl's HTML: what a terminal shows."""
    text = _TABLE.sub(_aligned, _STYLE.sub("", markup))
    text = _BUTTON.sub("", text)
    text = _CELL_END.sub("  ", _BLOCK_END.sub("\n", text))
    text = html.unescape(_TAG.sub("", text))
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def _aligned(table: re.Match) -> str:
    """A table's cells in columns padded to their widest cell."""
    rows = [
        [html.unescape(_TAG.sub("", cell)).strip() for cell in _CELL.findall(row)]
        for row in _ROW.findall(table.group(0))
    ]
    widths = [max((len(r[i]) for r in rows if i < len(r)), default=0) for i in range(max(map(len, rows), default=0))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "<pre>" + html.escape("\n".join(lines)) + "</pre>"


class Html(HTML):
    """HTML in a notebook, text in a terminal."""

    def __repr__(self) -> str:
        return text_of(self.data or "")


class Png(Image):
    """A PNG plot in a notebook; in a terminal, a line saying where to see it."""

    def __repr__(self) -> str:
        return "(a plot: it shows in a notebook)"
