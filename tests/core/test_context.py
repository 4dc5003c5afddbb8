"""session_scope and current_session_id across nesting, threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sessionmw import SessionManager, current_manager, current_session_id, session_scope


def test_scope_sets_and_restores(manager: SessionManager) -> None:
    """Inside a scope the id and manager are visible; nested scopes restore the outer one."""
    assert current_session_id() is None and current_manager() is None
    with session_scope(manager, "outer") as sid:
        assert sid == "outer" and current_session_id() == "outer" and current_manager() is manager
        with session_scope(manager, "inner"):
            assert current_session_id() == "inner"
        assert current_session_id() == "outer"
    assert current_session_id() is None


def test_scope_restored_after_exception(manager: SessionManager) -> None:
    """An exception inside the scope does not leak the session to later code."""
    with pytest.raises(KeyError), session_scope(manager, "s"):
        raise KeyError("x")
    assert current_session_id() is None


def test_threads_do_not_share_scope(manager: SessionManager) -> None:
    """Another thread does not see this thread's session."""
    seen: list[str | None] = []
    with session_scope(manager, "main"):
        thread = threading.Thread(target=lambda: seen.append(current_session_id()))
        thread.start()
        thread.join()
    assert seen == [None]


def test_asyncio_tasks_keep_their_own_scope(manager: SessionManager) -> None:
    """Concurrent tasks each see the session of their own scope."""

    async def serve(sid: str, gate: asyncio.Event) -> str | None:
        with session_scope(manager, sid):
            await gate.wait()
            return current_session_id()

    async def main() -> list[str | None]:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(serve(f"s{n}", gate)) for n in range(3)]
        await asyncio.sleep(0)
        gate.set()
        return list(await asyncio.gather(*tasks))

    assert asyncio.run(main()) == ["s0", "s1", "s2"]
