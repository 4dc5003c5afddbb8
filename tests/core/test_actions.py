"""Failures of a user's actions: the first failure of a callback within one action counts, repeats
do not; the ledger stays bounded; each failure is logged in one line (a traceback only in debug)."""

from __future__ import annotations

import logging

import pytest

from sessionmw import DataLoadError, translate
from sessionmw.actions import ActionLedger, log_failure, mark_logged, was_logged


def test_one_action_counts_once() -> None:
    """Repeated failures of one callback within one action count once; another action counts again."""
    ledger = ActionLedger()
    assert ledger.counts("s", "tick", "job-1")
    assert not ledger.counts("s", "tick", "job-1")
    assert ledger.counts("s", "tick", "job-2") and ledger.counts("other", "tick", "job-1")
    ledger.forget("s")
    assert ledger.counts("s", "tick", "job-1")


def test_ledger_is_bounded() -> None:
    """The ledger forgets its oldest entries first; a size below 1 is refused."""
    ledger = ActionLedger(max_entries=2)
    for action in ("a", "b", "c"):
        assert ledger.counts("s", "cb", action)
    assert ledger.counts("s", "cb", "a") and not ledger.counts("s", "cb", "c")
    with pytest.raises(ValueError, match="max_entries"):
        ActionLedger(max_entries=0)


def test_log_failure_is_one_line_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """A failure logs one WARNING naming the callback, the type and the short session id; no traceback."""
    logger = logging.getLogger("test.voice")
    logger.setLevel(logging.INFO)
    err = translate(DataLoadError("prices.csv has gaps"))
    with caplog.at_level(logging.INFO, logger="test.voice"):
        log_failure(logger, err, callback="scan", session_id="abcdefghijklmnop")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == "scan failed: DataLoadError (session abcdef…)"
    assert "prices.csv" not in caplog.text and "abcdefghijklmnop" not in caplog.text


@pytest.mark.parametrize("debug", [True, False], ids=["debug-mode", "debug-level"])
def test_log_failure_traceback_in_debug(caplog: pytest.LogCaptureFixture, debug: bool) -> None:
    """In debug mode, or with the logger at DEBUG, the traceback is attached."""
    logger = logging.getLogger("test.voice.debug")
    logger.setLevel(logging.WARNING if debug else logging.DEBUG)
    try:
        raise ValueError("boom")
    except ValueError as exc:
        with caplog.at_level(logging.DEBUG, logger="test.voice.debug"):
            log_failure(logger, exc, callback="tick", session_id=None, debug=debug)
    (record,) = caplog.records
    assert record.exc_info is not None and "(session none)" in record.getMessage()


def test_a_failure_marked_logged_is_known_through_its_translation() -> None:
    """An exception ``@guarded`` code logged is known as logged, as is the friendly error made from
    it (so the adapter that catches it does not log it twice); an unmarked one is not."""
    logged, other = DataLoadError("prices.csv has gaps"), DataLoadError("prices.csv has gaps")
    mark_logged(logged)
    assert was_logged(logged) and was_logged(translate(logged))
    assert not was_logged(other) and not was_logged(translate(other))


def test_an_exception_with_slots_cannot_be_marked_and_is_not_refused() -> None:
    """An exception that refuses attributes is left unmarked rather than failing the handler."""

    class Frozen(Exception):
        def __setattr__(self, name: str, value: object) -> None:
            raise AttributeError(name)

    exc = Frozen("x")
    mark_logged(exc)
    assert not was_logged(exc)


def test_forgetting_a_session_leaves_the_others_counted() -> None:
    """After a reconnect the session's failures count again; another session's repeats still do not."""
    ledger = ActionLedger()
    assert ledger.counts("s", "tick", "job") and ledger.counts("t", "tick", "job")
    ledger.forget("s")
    assert ledger.counts("s", "tick", "job") and not ledger.counts("t", "tick", "job")


def test_a_disabled_logger_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """With the logger above WARNING, nothing is logged (and no traceback is formatted)."""
    logger = logging.getLogger("test.voice.quiet")
    logger.setLevel(logging.ERROR)
    with caplog.at_level(logging.ERROR, logger="test.voice.quiet"):
        log_failure(logger, ValueError("boom"), callback="tick", session_id="abcdefgh")
    assert caplog.records == []
