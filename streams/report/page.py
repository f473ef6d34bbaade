"""The HTML around the plots: the shared style, number formats, escaping.

Templates are strings in the modules that fill them (not package data files) so an installed
package always has them. Everything a page needs is inline: no script, stylesheet, font or
image is fetched.
"""

from __future__ import annotations

from typing import Any

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1280px; padding: 1.5rem 2rem 4rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.4rem; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
figure { margin: 1rem 0; } figure svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .9rem; max-width: 60rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .8rem 0; display: block;
        max-width: 100%; overflow-x: auto; }
th, td { padding: .3rem .45rem; border-bottom: 1px solid #e4e4e4; text-align: right; }
td { white-space: nowrap; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
tr.offer td:first-child { padding-left: 1.6rem; color: #555; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .5rem .9rem; min-width: 8rem; }
.card b { display: block; font-size: 1.35rem; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .6rem 1rem; }
.pos { color: #1b7f3b; } .neg { color: #b3261e; }
code { background: #f4f4f4; padding: 0 .25rem; border-radius: 3px; }
"""


def pct(value: Any, digits: int = 1) -> str:
    """0.1234 -> '12.3%'; anything not a number -> '–'."""
    return f"{value * 100:.{digits}f}%" if _num(value) else "–"


def points(value: Any) -> str:
    """A difference of rates in percentage points, signed: 0.021 -> '+2.1 pts'."""
    return f"{value * 100:+.1f} pts" if _num(value) else "–"


def interval(value: Any) -> str:
    """[low, high] of rates -> '[-1.2, +3.4] pts'."""
    if isinstance(value, list | tuple) and len(value) == 2 and all(map(_num, value)):
        return f"[{value[0] * 100:+.1f}, {value[1] * 100:+.1f}] pts"
    return "–"


def money(value: Any) -> str:
    return f"{value:,.2f}" if _num(value) else "–"


def pvalue(value: Any) -> str:
    if not _num(value):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "–"


def sign(value: Any) -> str:
    """CSS class of a signed figure."""
    return "pos" if _num(value) and value > 0 else "neg" if _num(value) and value < 0 else ""


#: what Jinja2's autoescape (markupsafe) writes for each character HTML gives a meaning to
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"})


def escape(value: Any) -> str:
    """`value` as text, safe anywhere in HTML (in an element or a quoted attribute)."""
    return str(value).translate(_ESCAPES)


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
