"""The stores' options: yes/no words read one way as arguments and in URLs, unknown options named, and
Redis URL options checked when the store is built."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sessionmw import ConfigurationError
from sessionmw.stores import store_from_url
from sessionmw.stores._redis import RedisStore
from sessionmw.stores._sqlite import SQLiteStore

NO_WORDS = ["false", "no", "off", "0", "FALSE", " Off ", False, 0]


@pytest.mark.parametrize("word", NO_WORDS)
def test_a_word_that_means_no_turns_the_cache_off(word: object, tmp_path: Path, redis_url: str) -> None:
    """cache="false" (or no, off, 0, any case) builds no cache, in both constructors."""
    sqlite = SQLiteStore(tmp_path / "s.db", cache=word)  # type: ignore[arg-type]
    redis_store = RedisStore.from_url(redis_url, cache=word)  # type: ignore[arg-type]
    assert sqlite._cache is None and redis_store._cache is None
    sqlite.close()
    redis_store.close()


@pytest.mark.parametrize("word", ["true", "yes", "on", "1", "TRUE", True, 1])
def test_a_word_that_means_yes_keeps_the_cache(word: object, tmp_path: Path, redis_url: str) -> None:
    """cache="true" (or yes, on, 1) keeps it."""
    sqlite = SQLiteStore(tmp_path / "s.db", cache=word)  # type: ignore[arg-type]
    redis_store = RedisStore.from_url(redis_url, cache=word)  # type: ignore[arg-type]
    assert sqlite._cache is not None and redis_store._cache is not None
    sqlite.close()
    redis_store.close()


@pytest.mark.parametrize("value", ["maybe", "", 2, None, "nope"])
def test_a_yes_no_option_refuses_anything_else_by_name(value: object, tmp_path: Path, redis_url: str) -> None:
    """Any other value is a ConfigurationError naming the option, the value and the accepted words."""
    builders: list[Callable[[], object]] = [
        lambda: SQLiteStore(tmp_path / "s.db", cache=value),  # type: ignore[arg-type]
        lambda: RedisStore.from_url(redis_url, cache=value),  # type: ignore[arg-type]
        lambda: RedisStore.from_url(redis_url, cluster=value),  # type: ignore[arg-type]
    ]
    for build in builders:
        with pytest.raises(ConfigurationError) as caught:
            build()
        message = str(caught.value)
        assert f"={value!r} is not a valid yes/no value" in message
        assert "true" in message and "off" in message


@pytest.mark.parametrize("word", ["false", "no", "off", "0"])
def test_cache_as_a_url_option(word: str, tmp_path: Path, redis_url: str) -> None:
    """?cache=false in a sqlite:// or redis:// URL turns the cache off, read by the same rule."""
    sqlite = store_from_url(f"sqlite:///{tmp_path / 's.db'}?cache={word}")
    redis_store = store_from_url(f"{redis_url}?cache={word}")
    assert isinstance(sqlite, SQLiteStore) and isinstance(redis_store, RedisStore)
    assert sqlite._cache is None and redis_store._cache is None
    sqlite.close()
    redis_store.close()
    with pytest.raises(ConfigurationError, match=r"cache='maybe' is not a valid yes/no value"):
        store_from_url(f"{redis_url}?cache=maybe")


def test_memory_url_takes_the_cache_option_and_names_unknown_ones() -> None:
    """store_from_url("memory://", cache=False) is a memory store (it has no cache to turn off);
    an option no store takes is a ConfigurationError naming it, never a raw TypeError."""
    from sessionmw.stores import MemoryStore

    assert isinstance(store_from_url("memory://", cache=False), MemoryStore)
    assert isinstance(store_from_url("memory://", cache="off", max_sessions=3), MemoryStore)
    for url in ("memory://", "sqlite:///s.db", "redis://127.0.0.1:6379/0"):
        with pytest.raises(ConfigurationError, match=r"takes no option 'colour'.*max_sessions"):
            store_from_url(url, colour="red")
    with pytest.raises(ConfigurationError, match=r"cache='maybe'"):
        store_from_url("memory://", cache="maybe")


@pytest.mark.parametrize("option", ["prefix=shop", "buckets=4", "cache=false", "max_sessions=9"])
def test_redis_from_url_refuses_sessionmw_options_in_the_url_when_built(option: str, redis_url: str) -> None:
    """RedisStore.from_url reads no sessionmw option from the URL: ?prefix= fails when the store
    is built, naming the option and where it goes, not at its first operation."""
    name = option.partition("=")[0]
    with pytest.raises(ConfigurationError) as caught:
        RedisStore.from_url(f"{redis_url}?{option}")
    assert f"{name}= in the URL" in str(caught.value)
    assert f"RedisStore.from_url({name}=...)" in str(caught.value) and "store_from_url" in str(caught.value)


def test_redis_url_option_redis_py_does_not_take_fails_when_built(redis_url: str) -> None:
    """A misspelt redis-py option (?socket_timout=) is a ConfigurationError when the store is
    built, through store_from_url and RedisStore.from_url."""
    for build in (store_from_url, RedisStore.from_url):
        with pytest.raises(ConfigurationError, match="socket_timout"):
            build(f"{redis_url}?socket_timout=1")
