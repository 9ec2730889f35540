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
    """The stand-in accepts the call and stays silent. The CLI's client waits 30 s for it
    (``runs.client_for``; no config key shortens it), too long for this suite, so this holds
    the client itself to a 1 s timeout: it must give up then, not hang."""
    client = OneClient(cloud.stand_in.url("silent"), "oneadmin:secret", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(OneUnavailableError, match=r"\(one\.hostpool\.info\): no answer within 1s"):
        client.host_pool()
    assert time.monotonic() - started < 3
    assert cloud.stand_in.calls["silent"] == ["one.hostpool.info"]
