"""Bad input: inventories. The rows are in corpus.py; conftest.check asserts the contract."""

from __future__ import annotations

import pytest

from tests.badinput.corpus import Case, cases


@pytest.mark.parametrize("case", cases("inventory"))
def test_bad_input(case: Case, check) -> None:
    check(case)
