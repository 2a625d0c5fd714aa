"""Every public name of the documented packages has an entry on its API page (``::: package.name``), so a new
public class or function without documentation fails here; and no page documents a name that is not public."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[2] / "docs" / "api"
PACKAGES = ("losses", "functional", "transforms", "scoring")


def documented(package: str) -> list[str]:
    text = (API / f"{package}.md").read_text(encoding="utf-8")
    return re.findall(rf"^::: medloss\.{package}\.(\w+)\s*$", text, re.M)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_has_an_api_entry(package: str) -> None:
    public = importlib.import_module(f"medloss.{package}").__all__
    entries = documented(package)
    missing = [n for n in public if n not in entries]
    assert not missing, f"docs/api/{package}.md lacks '::: medloss.{package}.NAME' for {missing}"
    assert sorted(set(entries) - set(public)) == [], f"docs/api/{package}.md documents names not in __all__"
    assert len(entries) == len(set(entries)), f"docs/api/{package}.md documents a name twice"
