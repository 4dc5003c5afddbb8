"""What lives beside a store object: one thing of each kind per live store, made on first use, and
held weakly (the registry never keeps a dead store alive, and a new store never inherits its things)."""

from __future__ import annotations

import gc
import weakref

from sessionmw.stores._base import SessionStore
from sessionmw.stores._beside import Beside, beside
from sessionmw.stores._memory import MemoryStore


def counting_kind(made: list[SessionStore]) -> Beside[object]:
    """A kind whose ``make`` records the store it made a thing for."""

    def make(store: SessionStore) -> object:
        made.append(store)
        return object()

    return Beside(make)


def test_one_thing_of_a_kind_per_store_made_on_first_use() -> None:
    made: list[SessionStore] = []
    kind = counting_kind(made)
    store = MemoryStore()
    assert made == []
    first = beside(store, kind)
    assert beside(store, kind) is first
    assert made == [store]


def test_each_kind_and_each_store_gets_its_own() -> None:
    made: list[SessionStore] = []
    one, other = counting_kind(made), counting_kind(made)
    store, second_store = MemoryStore(), MemoryStore()
    things = {id(beside(store, one)), id(beside(store, other)), id(beside(second_store, one))}
    assert len(things) == 3
    assert made == [store, store, second_store]


def test_a_dead_store_is_not_kept_alive_by_what_lives_beside_it() -> None:
    made: list[SessionStore] = []
    kind = counting_kind(made)
    store = MemoryStore()
    beside(store, kind)
    made.clear()
    dead = weakref.ref(store)
    del store
    gc.collect()
    assert dead() is None
