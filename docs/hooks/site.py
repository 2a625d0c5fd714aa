"""MkDocs hooks (``mkdocs.yml``: ``hooks``): the figures and MathJax are produced at build time, not kept as files.

* ``on_files`` draws the figures of :mod:`figures` and adds them, with the loss study's plot, to the site under
  ``img/`` (so a page's link to them is checked like any other link).
* ``on_post_build`` copies MathJax 3 from the ``django-static-mathjax`` package (the ``docs`` extra: MathJax's files
  and nothing else) into the site, so formulas render without a network connection.
"""
from __future__ import annotations

import importlib.util
import logging
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import figures  # noqa: E402

_TMP = Path(tempfile.mkdtemp(prefix="medloss-docs-"))
DRAWN = {"img/benchmark_ratios.png": figures.benchmark_plot, "img/lesion_matching.png": figures.lesion_plot}


class _ComputedAll(logging.Filter):
    """Drop griffe's note that it cannot read ``medloss.__all__``: that list is computed from the loss registry
    (the lazy top-level names), and the API pages document the subpackages, whose ``__all__`` are literal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Unsupported item in medloss.__all__" not in record.getMessage()


for _name in ("griffe", "mkdocs.plugins.griffe", "mkdocs.plugins.mkdocstrings_handlers.python"):
    logging.getLogger(_name).addFilter(_ComputedAll())

COPIED = {"img/loss_study.png": figures.ROOT / "benchmarks" / "results" / "loss_study" / "study.png"}


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    _TMP.mkdir(exist_ok=True)  # removed after each build; `mkdocs serve` builds again
    for uri, draw in DRAWN.items():
        path = _TMP / Path(uri).name
        draw(path)
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    for uri, path in COPIED.items():
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


# the docstrings cross-reference in Sphinx's notation (":class:`~medloss.losses.DiceLoss`"), which Markdown renders
# as the role's name before the code; the name is dropped and the code kept
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):(<code>)~?")


def on_page_content(html: str, **kwargs: Any) -> str:
    html = _ROLE.sub(r"\1", html)
    # click 8.3 marks "no default" with a sentinel object, which mkdocs-click prints as is
    html = html.replace("<td><code>Sentinel.UNSET</code></td>", "<td>(none)</td>")
    return html.replace("::</p>", ":</p>")  # reST's "::" before a literal block


def mathjax_dir() -> Path:
    """MathJax 3's browser build, as shipped by ``django-static-mathjax`` (located without importing the package)."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or spec.origin is None:
        raise RuntimeError("MathJax not found: install the docs extra (pip install -e \".[docs]\"), which brings "
                           "django-static-mathjax")
    return Path(spec.origin).parent / "static" / "mathjax" / "es5"


def on_post_build(config: Any) -> None:
    shutil.copytree(mathjax_dir(), Path(config["site_dir"]) / "mathjax", dirs_exist_ok=True)
    shutil.rmtree(_TMP, ignore_errors=True)
