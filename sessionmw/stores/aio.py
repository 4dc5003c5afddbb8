"""The async path to a store: every call awaited without blocking the event loop.

An async caller (``@guarded`` on an ``async def``, :meth:`Breaker.call_async
<sessionmw.Breaker.call_async>`, an ASGI adapter) reaches a store through :func:`async_store`,
which picks, once per store, how each call is made:

- **inline** for a store that never waits (:attr:`blocks` False: the memory store, whose
  operations hold a lock for microseconds and do no I/O): a worker thread would cost more than
  the call;
- **awaited natively** for a store that offers async operations of its own
  (:class:`AsyncNative`: the Redis store, through ``redis.asyncio``; under trio, which
  ``redis.asyncio`` does not serve, it sends only its round trips to a worker thread);
- **in a worker thread** for everything else (the SQLite store, a store of the application's), with
  :func:`anyio.to_thread.run_sync` (``pip install 'sessionmw[async]'``; without anyio, under
  asyncio, :func:`asyncio.to_thread`). Such a store may answer an ``update`` from its read cache
  on the loop first (:class:`CachedAnswers`: the SQLite store): only a miss or a write goes to the
  thread. The Redis store's async operations answer from its read cache in the same way.

A cancelled caller does not cancel a store operation under way in a thread: the operation is one
atomic store update, and it completes (anyio's default), so what it changed is never half-known.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event
from sessionmw.stores._base import Outcome, SessionStore

__all__ = [
    "AsyncNative",
    "AsyncOperations",
    "AsyncStore",
    "CachedAnswers",
    "answers_for_its_update",
    "async_store",
    "blocks",
    "off_loop",
    "running_asyncio",
]

T = TypeVar("T")


@runtime_checkable
class AsyncOperations(Protocol):
    """The request-path operations of a store, as coroutines (the :class:`SessionStore` methods
    of the same names and arguments)."""

    async def create(self, record: SessionRecord, now: float, policy: Policy) -> None: ...

    async def update(
        self, session_id: str, event: Event | None, now: float, policy: Policy, error: str | None = None
    ) -> Outcome | None: ...

    async def get(self, session_id: str) -> SessionRecord | None: ...

    async def delete(self, session_id: str) -> bool: ...

    async def aclose(self) -> None:
        """Close the connections of the running event loop."""
        ...


@runtime_checkable
class AsyncNative(Protocol):
    """A store with async operations of its own, for asyncio's loop (the Redis store)."""

    def async_operations(self) -> AsyncOperations:
        """The store's async operations (one object per store)."""
        ...


@runtime_checkable
class CachedAnswers(Protocol):
    """A store (or a store's async operations) that can answer some ``update`` calls at once,
    with nothing done: from a read cache (the SQLite and Redis stores) or from its own records
    (the memory store)."""

    def answer_cached(
        self, session_id: str, event: Event | None, now: float, policy: Policy
    ) -> Outcome | None:
        """What ``update(session_id, event, now, policy)`` would return, if it writes nothing and
        can be told at once, else None (then ``update`` is called: awaited, in a worker thread or
        inline). Never waits and changes nothing: it is called on the loop, and a None leaves the
        call to ``update`` as if it had not been asked."""
        ...


def answers_for_its_update(answers: object) -> bool:
    """True if ``answers``' ``answer_cached`` speaks for the ``update`` it is called beside: one
    class defines both, and no subclass, mixin or the object itself replaced ``update`` since. A
    store whose ``update`` was replaced (to check, count or fail something) is asked through it:
    an answer at once would pass it by."""
    if "update" in getattr(answers, "__dict__", {}):  # replaced on the object itself
        return False
    owners = {}
    for name in ("update", "answer_cached"):
        owners[name] = next((cls for cls in type(answers).__mro__ if name in cls.__dict__), None)
    return owners["update"] is not None and owners["update"] is owners["answer_cached"]


def blocks(store: object) -> bool:
    """True if a call to ``store`` may wait (on a file, the network, another process): then an
    async caller makes it off the loop. A store says it never waits with a class attribute
    ``blocks = False`` (the memory store does); a store that says nothing may wait."""
    return bool(getattr(store, "blocks", True))


def running_asyncio() -> bool:
    """True if the running event loop is asyncio's (False under trio)."""
    try:
        import sniffio
    except ImportError:  # no anyio (nor sniffio): only asyncio is served
        return True
    try:
        return sniffio.current_async_library() == "asyncio"
    except sniffio.AsyncLibraryNotFoundError:
        return True


async def off_loop(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in a worker thread, awaited (anyio's threads; without anyio, asyncio's).

    The thread completes its call even if the caller is cancelled meanwhile.
    """
    try:
        from anyio import to_thread
    except ImportError:
        import asyncio

        if not running_asyncio():
            raise RuntimeError(
                "sessionmw's async store path needs anyio outside asyncio (trio): "
                "pip install 'sessionmw[async]'"
            ) from None
        # shield: the store call completes even if the caller is cancelled (as anyio's does)
        return await asyncio.shield(asyncio.to_thread(func, *args))
    return await to_thread.run_sync(functools.partial(func, *args))


class AsyncStore:
    """A store's operations for async callers: inline, native or in a worker thread (see the
    module). A manager keeps one: :attr:`SessionManager.async_store
    <sessionmw.SessionManager.async_store>`."""

    def __init__(self, store: SessionStore) -> None:
        #: The store the calls go to.
        self.store = store
        #: True if the store's calls are made inline (a store that never waits).
        self.inline = not blocks(store)
        self._native: AsyncOperations | None = (
            store.async_operations() if isinstance(store, AsyncNative) and not self.inline else None
        )
        answers: object = self._native if self._native is not None else store
        #: What ``update`` would return when it writes nothing, at once, with nothing done (None:
        #: ask the store): the memory store's own records, a read cache (:class:`CachedAnswers`);
        #: None for a store without either. Called on the loop, never waits.
        self.answer_cached: Callable[[str, Event | None, float, Policy], Outcome | None] | None = (
            answers.answer_cached
            if isinstance(answers, CachedAnswers) and answers_for_its_update(answers)
            else None
        )

    def __repr__(self) -> str:
        way = "inline" if self.inline else ("native" if self._native else "thread")
        return f"AsyncStore({self.store!r}, {way})"

    async def _call(self, name: str, *args: Any) -> Any:
        if self.inline:
            return getattr(self.store, name)(*args)
        native = self._native
        if native is not None:
            return await getattr(native, name)(*args)
        return await off_loop(getattr(self.store, name), *args)

    def create(self, record: SessionRecord, now: float, policy: Policy) -> Awaitable[None]:
        """:meth:`SessionStore.create`, awaited."""
        return self._call("create", record, now, policy)

    def update(
        self, session_id: str, event: Event | None, now: float, policy: Policy, error: str | None = None
    ) -> Awaitable[Outcome | None]:
        """:meth:`SessionStore.update`, awaited (answered on the loop when the store's cache can:
        :class:`CachedAnswers`)."""
        answer = self.answer_cached
        if answer is not None and error is None:
            outcome = answer(session_id, event, now, policy)
            if outcome is not None:
                return _ready(outcome)
        return self._call("update", session_id, event, now, policy, error)

    def get(self, session_id: str) -> Awaitable[SessionRecord | None]:
        """:meth:`SessionStore.get`, awaited."""
        return self._call("get", session_id)

    def delete(self, session_id: str) -> Awaitable[bool]:
        """:meth:`SessionStore.delete`, awaited."""
        return self._call("delete", session_id)

    async def call(self, func: Callable[..., T], *args: Any) -> T:
        """Any other sync call that reaches this store (a breaker's, the adapter's), made as the
        store's own calls are: inline for a store that never waits, else in a worker thread."""
        if self.inline:
            return func(*args)
        return await off_loop(func, *args)

    async def aclose(self) -> None:
        """Close the native connections of the running loop (the store's own stay open)."""
        if self._native is not None:
            await self._native.aclose()


async def _ready(value: T) -> T:
    return value


def async_store(store: SessionStore) -> AsyncStore:
    """A new :class:`AsyncStore` of ``store`` (a manager keeps one: :attr:`SessionManager.async_store
    <sessionmw.SessionManager.async_store>`)."""
    return AsyncStore(store)
