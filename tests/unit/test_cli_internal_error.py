"""A bug of ours still ends in one line on stderr and exit 1, never a traceback on the
operator's terminal; the traceback is kept in an owner-only file the line names."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from upgrader import cli


def test_an_unexpected_exception_is_one_line_naming_the_kept_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(**kwargs: object) -> None:
        raise KeyError("stale-host")

    monkeypatch.setattr(cli.cli, "main", broken)
    with pytest.raises(SystemExit) as exited:
        cli.main(["status"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: internal error: KeyError: 'stale-host' (hint: this is a bug")
    kept = Path(re.search(r"the traceback is in (\S+);", err).group(1))
    try:
        assert "Traceback" in kept.read_text() and "stale-host" in kept.read_text()
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    finally:
        os.unlink(kept)
