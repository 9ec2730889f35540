"""Bad input: an oned that answers garbage (the stand-in in standin.py). The rows are in
corpus.py; conftest.check asserts the contract."""

from __future__ import annotations

import time

import pytest

from tests.badinput.corpus import Case, cases
from upgrader.errors import OneUnavailableError
from upgrader.opennebula import OneClient


@pytest.mark.parametrize("case", cases("oned"))
def test_bad_input(case: Case, check) -> None:
    check(case)


def test_an_oned_that_never_answers_is_given_up_on_within_the_timeout(cloud) -> None:
    """The stand-in accepts the call and stays silent: the client gives up after its timeout
    and says so, instead of hanging (through the CLI: the corpus rows oned-silent*, with the
    environment's ``oned_timeout``)."""
    client = OneClient(cloud.stand_in.url("silent"), "oneadmin:secret", timeout=1.0)
    asked_before = len(cloud.stand_in.calls["silent"])  # the stand-in serves every case
    started = time.monotonic()
    with pytest.raises(
        OneUnavailableError, match=r"\(one\.hostpool\.info\): no answer within 1s"
    ) as caught:
        client.host_pool()
    # a client that was not told where its timeout is set names no setting to raise
    assert "raise" not in (caught.value.hint or "")
    assert time.monotonic() - started < 3
    assert cloud.stand_in.calls["silent"][asked_before:] == ["one.hostpool.info"]
