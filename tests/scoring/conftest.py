"""Fixtures of the scoring tests (helpers live in ``_scoring_realdata.py``, imported by name)."""
from __future__ import annotations

import pytest
from _scoring_realdata import load_case


@pytest.fixture(scope="session")
def real_masks():
    cache = {}

    def get(case):
        if case not in cache:
            cache[case] = load_case(case)
        return cache[case]

    return get
