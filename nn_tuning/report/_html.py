"""``report.html``: the Markdown report as one self-contained page.

The Markdown is rendered by Python-Markdown (a dependency of TensorBoard, so
always installed) with its ``tables`` extension; every PNG it refers to is
embedded as a base64 ``data:`` URI, so the page opens offline, alone, in any
browser, and can be mailed or attached as one file.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

__all__ = ["markdown_to_html"]

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
code { background: #f4f4f4; padding: 0.1em 0.3em; border-radius: 3px; font-size: 0.92em; }
img { max-width: 100%; height: auto; display: block; margin: 1em 0; border: 1px solid #eee; }
blockquote { background: #fff6d6; border-left: 5px solid #e0a800; margin: 1em 0;
             padding: 0.5em 1em; }
"""

_IMG = re.compile(r'(<img\b[^>]*\bsrc=")([^"]+)(")')


def _embed(folder: Path, match: re.Match[str]) -> str:
    source = html.unescape(match.group(2))
    path = folder / source
    if source.startswith(("data:", "http:", "https:")) or not path.is_file():
        return match.group(0)
    mime = "image/svg+xml" if path.suffix == ".svg" else f"image/{path.suffix.lstrip('.')}"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"{match.group(1)}data:{mime};base64,{data}{match.group(3)}"


def markdown_to_html(text: str, folder: Path, title: str) -> str:
    """A complete HTML page of Markdown ``text``, images under ``folder`` embedded."""
    import markdown

    body = markdown.markdown(text, extensions=["tables"], output_format="html")
    body = _IMG.sub(lambda m: _embed(folder, m), body)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")
