"""@guarded: introspection, retries and translation, and session tracking inside a session_scope."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.fakes import Sleeps

from sessionmw import (
    RetryStrategy,
    SessionDisconnectedError,
    SessionExpiredError,
    SessionManager,
    SessionNotFoundError,
    SessionState,
    StoreUnavailableError,
    UserFacingError,
    guarded,
    session_scope,
)
from sessionmw._guard import DEFAULT_RETRY
from sessionmw._session import Policy
from sessionmw.stores._base import Outcome
from sessionmw.stores._memory import MemoryStore
from sessionmw.testing import FakeClock, set_testing


@pytest.fixture(name="strategy")
def _strategy(sleeps: Sleeps) -> RetryStrategy:
    """The default schedule with a fake sleep."""
    return RetryStrategy(sleep=sleeps, async_sleep=sleeps.async_sleep)


@pytest.fixture(name="session")
def _session(manager: SessionManager) -> Iterator[str]:
    """A fresh session, served by the current context."""
    record = manager.create_session()
    with session_scope(manager, record.session_id):
        yield record.session_id


def failing(*errors: Exception, result: object = "ok") -> tuple[Callable[..., Any], list[int]]:
    """A function failing with ``errors`` in turn, then returning ``result``; and its call counter."""
    pending = list(errors)
    calls = [0]

    def func(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        if pending:
            raise pending.pop(0)
        return result

    return func, calls


SIG_PLAIN = "(symbol: 'str', *, days: 'int' = 5) -> 'str'"
SIG_X = "(x: 'int') -> 'int'"

# -- introspection ----------------------------------------------------------------------------------


def plain(symbol: str, *, days: int = 5) -> str:
    """Load prices."""
    return symbol * days


async def coro(x: int, y: int = 2) -> int:
    """Async work."""
    await asyncio.sleep(0)
    return x * y


class Portfolio:
    """Methods of every kind."""

    factor = 3

    @guarded
    def method(self, x: int) -> int:
        """A method."""
        return x * self.factor

    @guarded
    @classmethod
    def klass(cls, x: int) -> int:
        """A classmethod."""
        return x * cls.factor

    @guarded
    @staticmethod
    def static(x: int) -> int:
        """A staticmethod."""
        return x + 1

    @guarded(retry=None)
    async def amethod(self, x: int) -> int:
        """An async method."""
        await asyncio.sleep(0)
        return x * self.factor


@pytest.mark.parametrize(
    ("decorated", "qualname", "doc", "signature", "is_coroutine"),
    [
        pytest.param(guarded(plain), "plain", "Load prices.", SIG_PLAIN, False),
        pytest.param(
            guarded(retry=None, default=None)(plain),
            "plain",
            "Load prices.",
            SIG_PLAIN,
            False,
            id="called-form",
        ),
        pytest.param(
            guarded(coro), "coro", "Async work.", "(x: 'int', y: 'int' = 2) -> 'int'", True, id="async"
        ),
        pytest.param(Portfolio.method, "Portfolio.method", "A method.", "(self, x: 'int') -> 'int'", False),
        pytest.param(Portfolio().method, "Portfolio.method", "A method.", SIG_X, False, id="bound"),
        pytest.param(Portfolio.klass, "Portfolio.klass", "A classmethod.", SIG_X, False),
        pytest.param(Portfolio.static, "Portfolio.static", "A staticmethod.", SIG_X, False),
        pytest.param(Portfolio().static, "Portfolio.static", "A staticmethod.", SIG_X, False),
        pytest.param(Portfolio().amethod, "Portfolio.amethod", "An async method.", SIG_X, True),
    ],
)
def test_introspection_is_preserved(
    decorated: Callable[..., Any], qualname: str, doc: str, signature: str, is_coroutine: bool
) -> None:
    """Name, qualname, module, docstring, signature and coroutine-ness survive decoration."""
    assert decorated.__qualname__ == qualname
    assert decorated.__name__ == qualname.rpartition(".")[2]
    assert decorated.__module__ == __name__
    assert decorated.__doc__ == doc
    assert str(inspect.signature(decorated)) == signature
    assert inspect.iscoroutinefunction(decorated) is is_coroutine


def test_every_kind_of_callable_still_works() -> None:
    """Decorated functions, methods, classmethods, staticmethods and coroutines return as before."""
    assert guarded(plain)("ab", days=2) == "abab"
    assert asyncio.run(guarded(coro)(4)) == 8
    portfolio = Portfolio()
    assert portfolio.method(2) == 6
    assert Portfolio.klass(2) == 6
    assert portfolio.klass(2) == 6
    assert Portfolio.static(2) == 3
    assert portfolio.static(2) == 3
    assert asyncio.run(portfolio.amethod(2)) == 6


def test_bare_form_uses_the_default_strategy() -> None:
    """@guarded without arguments retries with the seed's schedule (3 attempts, 1 s then 2 s)."""
    assert DEFAULT_RETRY.max_attempts == 3
    assert DEFAULT_RETRY.delays == (1.0, 2.0)
    func, calls = failing(ConnectionError(), ConnectionError())
    with set_testing():  # no real waits
        assert guarded(func)() == "ok"
    assert calls == [3]


def test_bad_arguments_are_refused() -> None:
    """A retry that is not a RetryStrategy, or a non-callable on_error, is refused at decoration."""
    with pytest.raises(TypeError, match="RetryStrategy"):
        guarded(retry=3)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="on_error"):
        guarded(on_error="render")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="function"):
        guarded(42)  # type: ignore[call-overload]


# -- outside a session --------------------------------------------------------------------------------


def test_outside_a_session_it_retries_and_translates(strategy: RetryStrategy, sleeps: Sleeps) -> None:
    """Without a session, transient failures are retried and the final one is translated."""
    func, calls = failing(ConnectionError("a"), ConnectionError("b"))
    assert guarded(retry=strategy)(func)() == "ok"
    assert calls == [3]
    assert sleeps.waits == [1.0, 2.0]
    last = ConnectionError("c")
    func, _ = failing(ConnectionError("a"), ConnectionError("b"), last)
    with pytest.raises(UserFacingError) as info:
        guarded(retry=strategy)(func)()
    assert info.value.__cause__ is last
    assert info.value.original is last
    assert len(info.value.attempts) == 3
    assert info.value.title == "Connection problem"


def test_non_transient_errors_fail_at_once(strategy: RetryStrategy) -> None:
    """A non-transient error is not retried and comes out as a UserFacingError without its text."""
    func, calls = failing(ValueError("secret internals"))
    with pytest.raises(UserFacingError) as info:
        guarded(retry=strategy)(func)()
    assert calls == [1]
    assert "secret internals" not in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


def test_retry_none_calls_once() -> None:
    """retry=None: one call, the error is still translated."""
    func, calls = failing(ConnectionError())
    with pytest.raises(UserFacingError):
        guarded(retry=None)(func)()
    assert calls == [1]


def test_default_and_on_error(strategy: RetryStrategy) -> None:
    """default= is returned on final failure; on_error's value wins over it."""
    func, _ = failing(ValueError())
    assert guarded(retry=strategy, default=None)(func)() is None
    func, _ = failing(ValueError())
    assert guarded(retry=strategy, default=[])(func)() == []
    seen: list[UserFacingError] = []

    def render(error: UserFacingError) -> str:
        seen.append(error)
        return f"<p>{error.title}</p>"

    func, _ = failing(TimeoutError(), TimeoutError(), TimeoutError())
    assert guarded(retry=strategy, default=None, on_error=render)(func)() == "<p>Request timed out</p>"
    assert len(seen[0].attempts) == 3


def test_translate_false_reraises_the_original(strategy: RetryStrategy) -> None:
    """translate=False re-raises the last original exception after the retries."""
    last = KeyError("k")
    func, _ = failing(last)
    with pytest.raises(KeyError) as info:
        guarded(retry=strategy, translate=False)(func)()
    assert info.value is last


def test_debug_flag_adds_details(strategy: RetryStrategy) -> None:
    """debug=True puts the exception's text in the error; the default never does."""
    func, _ = failing(ValueError("db password wrong"))
    with pytest.raises(UserFacingError) as info:
        guarded(retry=strategy, debug=True)(func)()
    assert "db password wrong" in str(info.value)
    func, _ = failing(ValueError("db password wrong"))
    with pytest.raises(UserFacingError) as info:
        guarded(retry=None, debug=True)(func)()
    assert "db password wrong" in str(info.value)


def test_interrupts_go_through(strategy: RetryStrategy) -> None:
    """KeyboardInterrupt is never caught, translated or replaced by the default."""
    func, _ = failing(KeyboardInterrupt())  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        guarded(retry=strategy, default=None)(func)()


def test_async_outside_a_session(strategy: RetryStrategy, sleeps: Sleeps) -> None:
    """An async function is awaited, retried with the async sleep and translated."""
    calls = 0

    @guarded(retry=strategy)
    async def work(x: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls < 3:
            raise TimeoutError()
        if x < 0:
            raise ValueError("negative")
        return x

    assert asyncio.run(work(5)) == 5
    assert sleeps.waits == [1.0, 2.0]
    with pytest.raises(UserFacingError) as info:
        asyncio.run(work(-1))
    assert isinstance(info.value.original, ValueError)


# -- inside a session -----------------------------------------------------------------------------------


def test_success_records_activity(manager: SessionManager, clock: FakeClock, session: str) -> None:
    """Each call inside a session counts as activity: an idle session is active again."""
    clock.advance(manager.policy.idle_after + 1)
    assert manager.check_health(session).status == "idle"
    assert guarded(plain)("a", days=1) == "a"
    record = manager.get_session(session)
    assert record is not None
    assert record.state is SessionState.ACTIVE
    assert record.last_activity == clock.now


def test_final_failure_is_recorded(manager: SessionManager, strategy: RetryStrategy, session: str) -> None:
    """A final failure records one error on the session (not one per attempt)."""
    func, calls = failing(ConnectionError(), ConnectionError(), ConnectionError())
    with pytest.raises(UserFacingError):
        guarded(retry=strategy)(func)()
    record = manager.get_session(session)
    assert record is not None
    assert (record.state, record.error_count, calls) == (SessionState.ERROR, 1, [3])
    assert record.last_error == "ConnectionError: "


def test_success_after_errors_clears_them(
    manager: SessionManager, strategy: RetryStrategy, session: str
) -> None:
    """After earlier errors, a success records success: the session is active, its count cleared."""
    manager.record_error(session, "earlier")
    manager.record_error(session, "earlier")
    func, _ = failing(ConnectionError())
    assert guarded(retry=strategy)(func)() == "ok"
    record = manager.get_session(session)
    assert record is not None
    assert (record.state, record.error_count) == (SessionState.ACTIVE, 0)


@pytest.mark.parametrize(
    ("breaker", "status", "exc_type"),
    [
        pytest.param("expire", "expired", SessionExpiredError, id="expired"),
        pytest.param("end", "expired", SessionExpiredError, id="ended"),
        pytest.param("disconnect", "disconnected", SessionDisconnectedError, id="disconnected"),
        pytest.param("delete", "not_found", SessionNotFoundError, id="not-found"),
    ],
)
def test_broken_sessions_fail_fast(
    manager: SessionManager,
    clock: FakeClock,
    session: str,
    breaker: str,
    status: str,
    exc_type: type[Exception],
) -> None:
    """An expired, ended, disconnected or unknown session fails before the function runs."""
    if breaker == "expire":
        clock.advance(manager.policy.timeout + 1)
    elif breaker == "end":
        manager.end_session(session)
    elif breaker == "disconnect":
        for _ in range(manager.policy.error_threshold):
            manager.record_error(session, "boom")
    else:
        manager.delete_session(session)
    report = manager.check_health(session)
    func, calls = failing()
    with pytest.raises(UserFacingError) as info:
        guarded(func)()
    assert calls == [0]
    err = info.value
    assert err.status == status
    assert isinstance(err.original, exc_type)
    assert err.__cause__ is err.original
    assert (err.title, err.message, err.recovery) == (report.title, report.message, report.recovery)


def test_fail_fast_honours_default_and_on_error(manager: SessionManager, session: str) -> None:
    """A broken session returns the default, or on_error's rendering, without calling the function."""
    manager.end_session(session)
    func, calls = failing()
    assert guarded(default="fallback")(func)() == "fallback"
    assert guarded(on_error=lambda err: err.status)(func)() == "expired"
    assert calls == [0]


def test_fail_fast_is_not_recorded_as_an_error(manager: SessionManager, session: str) -> None:
    """Refusing a call on a disconnected session does not add to its error count."""
    for _ in range(manager.policy.error_threshold):
        manager.record_error(session, "boom")
    func, _ = failing()
    with pytest.raises(UserFacingError):
        guarded(func)()
    record = manager.get_session(session)
    assert record is not None and record.error_count == manager.policy.error_threshold


def test_disconnected_meanwhile_does_not_break_a_success(manager: SessionManager, session: str) -> None:
    """If the session is disconnected while the call runs, the call still returns its result."""
    manager.record_error(session, "earlier")

    @guarded(retry=None)
    def work() -> str:
        for _ in range(manager.policy.error_threshold):
            manager.record_error(session, "elsewhere")
        return "result"

    assert work() == "result"
    record = manager.get_session(session)
    assert record is not None and record.state is SessionState.DISCONNECTED


def test_failure_after_the_session_ended_meanwhile(manager: SessionManager, session: str) -> None:
    """A final failure on a session that ended during the call raises the error, nothing else."""

    @guarded(retry=None)
    def work() -> None:
        manager.end_session(session)
        raise ValueError("late")

    with pytest.raises(UserFacingError) as info:
        work()
    assert isinstance(info.value.original, ValueError)


def test_no_retry_once_disconnected(manager: SessionManager, strategy: RetryStrategy, session: str) -> None:
    """Retries stop once the session is disconnected by someone else."""

    @guarded(retry=strategy)
    def work() -> None:
        for _ in range(manager.policy.error_threshold):
            manager.record_error(session, "elsewhere")
        raise ConnectionError()

    with pytest.raises(UserFacingError) as info:
        work()
    assert len(info.value.attempts) == 1


def test_debug_follows_the_manager(clock: FakeClock, strategy: RetryStrategy) -> None:
    """Inside a session of a manager in debug mode, the error carries the exception's text."""
    manager = SessionManager(store="memory://", clock=clock, debug=True)
    manager.create_session("s1")
    func, _ = failing(ValueError("the real reason"))
    with session_scope(manager, "s1"), pytest.raises(UserFacingError) as info:
        guarded(retry=strategy)(func)()
    assert "the real reason" in str(info.value)


def test_async_inside_a_session(manager: SessionManager, clock: FakeClock, strategy: RetryStrategy) -> None:
    """Async functions record activity and errors and fail fast, under a real event loop."""
    sid = manager.create_session().session_id

    @guarded(retry=strategy)
    async def work(fail: bool) -> str:
        await asyncio.sleep(0)
        if fail:
            raise ValueError("bad")
        return "done"

    async def scenario() -> tuple[str, str | None, str | None]:
        with session_scope(manager, sid):
            clock.advance(10)
            done = await work(False)
            with contextlib.suppress(UserFacingError):
                await work(True)
            clock.advance(manager.policy.timeout + 1)
            try:
                await work(False)
            except UserFacingError as err:
                return done, err.status, None
        return done, None, None

    done, status, _ = asyncio.run(scenario())
    assert (done, status) == ("done", "expired")
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 1


class _DownStore(MemoryStore):
    """A memory store whose updates fail as if the server were unreachable."""

    def update(
        self, session_id: str, event: Any, now: float, policy: Policy, error: str | None = None
    ) -> Outcome | None:
        raise StoreUnavailableError("store down")


def test_store_down_fail_closed_gives_a_friendly_error(clock: FakeClock) -> None:
    """With a fail-closed manager and the store down, the call fails with 'Service unavailable'."""
    manager = SessionManager(store=_DownStore(), clock=clock, on_store_error="fail_closed")
    func, calls = failing()
    with session_scope(manager, "s1"), pytest.raises(UserFacingError) as info:
        guarded(func)()
    assert calls == [0]
    assert info.value.title == "Service unavailable"
    assert info.value.transient


def test_store_down_fail_open_still_runs(clock: FakeClock) -> None:
    """With a fail-open manager and the store down, the function runs as if the session were fine."""
    manager = SessionManager(store=_DownStore(), clock=clock)
    func, calls = failing()
    with session_scope(manager, "s1"):
        assert guarded(func)() == "ok"
    assert calls == [1]
