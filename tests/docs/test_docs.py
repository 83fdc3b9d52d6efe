"""Every ``python`` block of the README and of ``docs/*.md`` runs, so the documented examples cannot rot.

The blocks of one page run in order as one module (a later block uses what an earlier one defines), in a temporary
working directory; the components a page registers are unregistered after it.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
PAGES = ["README.md", *(f"docs/{path.name}" for path in sorted((ROOT / "docs").glob("*.md")))]


def page_source(page: str) -> str:
    """The page's python blocks as one program, each block on its own lines of the page (tracebacks point there)."""
    text = (ROOT / page).read_text(encoding="utf-8")
    source = ""
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start(1))
        source += "\n" * (line - source.count("\n")) + match.group(1)
    return source


def test_the_pages_that_teach_the_api_have_examples():
    assert {p for p in PAGES if page_source(p)} >= {"README.md", "docs/python.md", "docs/extending.md"}


@pytest.mark.parametrize("page", [p for p in PAGES if page_source(p)])
def test_page_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scoped_registrations: None):
    monkeypatch.chdir(tmp_path)
    # A module in sys.modules, as the user's own would be: runs record it as the home of the components it registers.
    module = types.ModuleType("polymodal_docs_" + re.sub(r"\W", "_", Path(page).stem.lower()))
    module.__file__ = str(ROOT / page)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(page_source(page), str(ROOT / page), "exec"), module.__dict__)
