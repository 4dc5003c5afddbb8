"""The signals sessionmw sends, its only observer API: each one named once, sent with the sender a
receiver subscribed to, and a receiver that raises never breaks the code that sent it."""

from __future__ import annotations

import logging

import pytest
from blinker import NamedSignal

from sessionmw import SessionManager, signals


def test_raising_receiver_is_logged_and_others_still_run(
    manager: SessionManager, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver that raises breaks neither the caller nor the receivers after it."""
    calls: list[str] = []

    def bad(sender: object, **kwargs: object) -> None:
        raise RuntimeError("receiver bug")

    def good(sender: object, **kwargs: object) -> None:
        calls.append(str(kwargs["session_id"]))

    with (
        caplog.at_level(logging.ERROR, "sessionmw.signals"),
        signals.session_created.connected_to(bad),
        signals.session_created.connected_to(good),
    ):
        manager.create_session("s")
    assert calls == ["s"]
    assert "receiver bug" in caplog.text


def test_every_signal_has_its_own_name() -> None:
    """Each exported signal is a blinker NamedSignal with a name no other one has."""
    exported = [getattr(signals, name) for name in signals.__all__ if name != "send"]
    assert all(isinstance(signal, NamedSignal) for signal in exported)
    assert len({signal.name for signal in exported}) == len(exported) == len(signals.__all__) - 1


def test_a_receiver_for_one_sender_hears_only_that_sender() -> None:
    heard: list[object] = []
    one, other = object(), object()

    def receiver(sender: object, **kwargs: object) -> None:
        heard.append((sender, kwargs["session_id"]))

    signals.activity.connect(receiver, sender=one)
    try:
        signals.send(signals.activity, other, session_id="b")
        signals.send(signals.activity, one, session_id="a")
    finally:
        signals.activity.disconnect(receiver, sender=one)
    assert heard == [(one, "a")]


def test_a_muted_signal_calls_no_receiver() -> None:
    """Inside ``muted()`` (blinker's way to silence a signal in tests) nothing is called."""
    heard: list[object] = []
    with signals.activity.connected_to(lambda sender, **kwargs: heard.append(sender)):
        with signals.activity.muted():
            signals.send(signals.activity, object(), session_id="s")
        signals.send(signals.activity, "after", session_id="s")
    assert heard == ["after"]
