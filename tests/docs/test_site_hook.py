"""The docs hook's MathJax (docs/hooks/site.py): the script mkdocs.yml loads is in the tree the hook copies, and a
missing docs extra is named in the error."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("docs_site_hook", ROOT / "docs" / "hooks" / "site.py")
assert _spec is not None and _spec.loader is not None
site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(site)


def test_mkdocs_loads_mathjax3_from_the_copied_tree() -> None:
    pytest.importorskip("mathjax", reason="the docs extra (django-static-mathjax) is not installed")
    scripts = re.findall(r"^\s*-\s*mathjax/(\S+)$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.M)
    assert scripts == ["tex-mml-chtml.js"]
    tree = site.mathjax_dir()
    assert (tree / scripts[0]).is_file()
    # CHTML output fetches its fonts relative to the script, so they must be copied with it
    assert (tree / "output" / "chtml" / "fonts" / "woff-v2" / "MathJax_Main-Regular.woff").is_file()
    config = (ROOT / "docs" / "javascripts" / "mathjax-config.js").read_text(encoding="utf-8")
    assert 'processHtmlClass: "arithmatex"' in config and "tex2jax" not in config  # MathJax 3 keys, not 2's


def test_missing_mathjax_names_the_docs_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(site.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match=r"django-static-mathjax"):
        site.mathjax_dir()
