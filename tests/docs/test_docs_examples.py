"""Every code block of the documentation marked runnable runs, so the pages cannot drift from the code.

A block is marked by the line ``<!-- run -->`` right before its ```` ```python ```` fence. The Markdown is parsed
here (no MkDocs needed): each block runs in this process, in a fresh namespace, from an empty temporary folder.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
_BLOCK = re.compile(r"^<!-- run -->\n```python\n(.*?)^```$", re.S | re.M)


def runnable_blocks() -> list[tuple[str, str]]:
    """(page:line, code) of every marked block under docs/."""
    blocks = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for m in _BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            blocks.append((f"{page.relative_to(DOCS)}:{line}", m.group(1)))
    return blocks


BLOCKS = runnable_blocks()


def test_the_pages_have_runnable_blocks():
    marked = sum(len(re.findall(r"^<!-- run -->$", p.read_text(encoding="utf-8"), re.M)) for p in DOCS.rglob("*.md"))
    assert marked == len(BLOCKS), "a '<!-- run -->' marker is not followed by a ```python block"
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("where,code", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_runnable_block(where: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, where, "exec"), {"__name__": "__docs__"})
