"""Bad input: site configs (upgrader.yml). The rows are in corpus.py; conftest.check
asserts the contract."""

from __future__ import annotations

import pytest

from tests.badinput.corpus import Case, cases


@pytest.mark.parametrize("case", cases("site config"))
def test_bad_input(case: Case, check) -> None:
    check(case)
