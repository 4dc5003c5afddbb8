"""Passwords in store URLs: one masking function, and no password in any output that shows a URL."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionmw import SessionManager, Settings
from sessionmw.__main__ import main
from sessionmw._errors import ConfigurationError, StoreUnavailableError
from sessionmw.stores import mask_url, store_from_url

#: Every form redis-py (and our sqlite:// parser) reads a password from, the password as ``{}``.
FORMS = [
    "redis://user:{}@127.0.0.1:1/0",
    "redis://:{}@127.0.0.1:1/0",
    "redis://{}@127.0.0.1:1/0",
    "rediss://user:{}@127.0.0.1:1/0",
    "redis://127.0.0.1:1/0?password={}",
    "redis://127.0.0.1:1/0?db=0&password={}&prefix=app",
    "rediss://127.0.0.1:1/0?ssl_password={}",
    "redis://127.0.0.1:1/0?pass%77ord={}",
    "unix:///tmp/sessionmw-none.sock?password={}&db=0",
    "unix://:{}@/tmp/sessionmw-none.sock",
    "sqlite://user:{}@host/sessions.db",
    "sqlite:///sessions.db?password={}",
]

#: The ends of every generated password: a leak of any part of it shows one of them.
HEAD, TAIL = "Hx7", "Qz4"

PASSWORDS = st.text(max_size=20).map(lambda text: HEAD + text + TAIL)


def assert_hidden(text: str) -> None:
    assert HEAD not in text and TAIL not in text, text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://user:hunter2@127.0.0.1:6379/0", "redis://user:***@127.0.0.1:6379/0"),
        ("redis://127.0.0.1:6379/0?password=hunter2", "redis://127.0.0.1:6379/0?password=***"),
        ("rediss://h:6380/0?db=1&password=hunter2&prefix=x", "rediss://h:6380/0?db=1&password=***&prefix=x"),
        ("unix:///run/redis.sock?password=hunter2&db=0", "unix:///run/redis.sock?password=***&db=0"),
        ("redis://:hun/ter2@127.0.0.1:6379/0", "redis://***"),  # unencoded: cannot be read plainly
        ("redis://127.0.0.1:6379/0?password=hun@ter2", "redis://***"),
        ("sqlite:///sessions.db", "sqlite:///sessions.db"),
        ("memory://", "memory://"),
    ],
)
def test_mask_url_hides_every_password_form(url: str, shown: str) -> None:
    """The issue's forms, ``?password=`` included (redis-py authenticates with it)."""
    assert mask_url(url) == shown


@settings(max_examples=300, deadline=None)
@given(form=st.sampled_from(FORMS), password=PASSWORDS)
def test_no_encoded_password_survives_masking(form: str, password: str) -> None:
    """A password written as a URL should be (percent-encoded) never shows, in any form."""
    url = form.format(quote(password, safe=""))
    assert_hidden(mask_url(url))
    assert mask_url(url) == mask_url(form.format("x"))  # what is shown does not depend on it


@settings(max_examples=300, deadline=None)
@given(form=st.sampled_from(FORMS), password=PASSWORDS)
def test_no_raw_password_survives_masking(form: str, password: str) -> None:
    """Nor one pasted unencoded, even with ``@ / ? # :`` in it (``&`` would end a query option,
    and in ``redis://{}@`` a ``:`` makes what comes before it a user name)."""
    if "?" in form:
        password = password.replace("&", "")
    if "//{}@" in form:
        password = password.replace(":", "")
    assert_hidden(mask_url(form.format(password)))


def outputs(url: str) -> str:
    """Everything that shows ``url``: settings, store and manager reprs, store errors, the WARNING
    log of a fail-open manager, ``sessionmw config`` (text and JSON) and the CLI's failure line."""
    shown = [repr(Settings(store_url=url))]
    try:
        store = store_from_url(url)
    except ConfigurationError as exc:
        shown.append(str(exc))
    else:
        shown.append(repr(store))
        shown.append(repr(SessionManager(store=store)))
        try:
            store.get("s1")
        except StoreUnavailableError as exc:
            shown.append(str(exc))
        store.close()
        shown.append(logged(lambda: touch_fail_open(url)))
    for args in (["config", "--store", url], ["config", "--json", "--store", url]):
        shown.append(run_cli(args))
    shown.append(run_cli(["sessions", "list", "--store", url]))
    return "\n".join(shown)


def touch_fail_open(url: str) -> None:
    """One request's store operation on a fail-open manager: the store fails, a WARNING is logged."""
    manager = SessionManager(store=url)
    try:
        manager.touch("s1")
    finally:
        manager.close()


def logged(action: Callable[[], object]) -> str:
    """What ``action`` logs at WARNING and above on the ``sessionmw`` loggers."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("sessionmw")
    logger.addHandler(handler)
    try:
        action()
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def run_cli(args: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(args)
    return out.getvalue() + err.getvalue()


@pytest.mark.parametrize("form", FORMS)
def test_every_output_hides_the_password(form: str) -> None:
    """Each form, through every place a store URL is shown."""
    text = outputs(form.format(quote(HEAD + "hunter2" + TAIL, safe="")))
    assert "***" in text
    if form.startswith("redis"):  # the store was built and failed: its errors, log and CLI line
        assert "is unavailable" in text and "session store failed" in text
    assert_hidden(text)


@settings(max_examples=60, deadline=None)
@given(form=st.sampled_from(FORMS), password=PASSWORDS)
def test_no_generated_password_appears_in_any_output(form: str, password: str) -> None:
    """Hypothesis: any password, any form, every output."""
    assert_hidden(outputs(form.format(quote(password, safe=""))))
