"""Pending session ids: issued to a new client, stored only when the client sends one back.

A pending id is ``random.issued[.incarnation].mac``: random bits from :mod:`secrets`, the issue
time (hex seconds), the store's incarnation as last read (see
:meth:`~sessionmw.stores._base.NamespacedStore.incarnation`), and an HMAC bound to the secret, the
cookie name and the store's namespace. :class:`PendingIds` issues them and judges an id the store
does not know: pending (issued here, for the store as it is, within its window), gone (issued
here, no longer stored), or a stranger's.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from typing import TypeVar

from sessionmw._errors import ConfigurationError, StoreError
from sessionmw._manager import new_session_id
from sessionmw._session import Policy
from sessionmw.stores import SessionStore
from sessionmw.stores.aio import blocks, off_loop

__all__ = ["CLOCK_SLACK", "INCARNATION_MAX_AGE", "PendingIds", "Verdict", "pending_window"]

_log = logging.getLogger("sessionmw.wsgi")

T = TypeVar("T")

_ID_SHAPE = re.compile(r"[A-Za-z0-9._:~-]{1,128}")
_INCARNATION_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,22}")
_MAC_LENGTH = 22  # base64 characters of the MAC (132 bits)

#: Seconds a pending id's issue time may lie in the future (clocks of hosts that disagree a little).
CLOCK_SLACK = 60.0
#: Seconds the store's incarnation, as last read, judges the ids that come back: a store that
#: lost its sessions is noticed within this long, for one read a second at most per process.
INCARNATION_MAX_AGE = 1.0


class Verdict(enum.Enum):
    """What an id the store does not know is."""

    #: Issued here, for the store as it is, within its pending window: store it now.
    PENDING = "pending"
    #: Issued here, but past its window or for a store that since lost its sessions.
    GONE = "gone"


def pending_window(policy: Policy) -> float:
    """Seconds after its issue during which a pending id is stored when the client sends it back.

    The session timeout, but never longer than the store keeps an ended or expired record (its
    ``retention``, less a minute of clock slack): while a pending id is acceptable, a session stored
    under it is still on record, so an id that was ever stored never becomes a session again.
    """
    return max(0.0, min(policy.timeout, policy.retention - CLOCK_SLACK))


def _store_namespace(store: SessionStore) -> str:
    """What names ``store``'s sessions alike in every process that shares them: its
    :attr:`~sessionmw.stores._base.NamespacedStore.namespace` (every built-in store has one), else
    its class."""
    namespace = getattr(store, "namespace", None)  # not isinstance: a store may lack incarnation()
    if isinstance(namespace, str):
        return namespace
    kind = type(store)
    return f"{kind.__module__}.{kind.__qualname__}"


def _store_incarnation(store: SessionStore) -> str | None:
    """``store``'s incarnation (one store operation), or None for a store without one (it counts
    as one that never changes).

    :raises ConfigurationError: for an incarnation of another shape than 1 to 22 of ``[A-Za-z0-9_-]``.
    """
    read = getattr(store, "incarnation", None)
    if not callable(read):
        return None
    incarnation = read()
    if not (isinstance(incarnation, str) and _INCARNATION_SHAPE.fullmatch(incarnation)):
        raise ConfigurationError(
            f"{type(store).__name__}.incarnation() gave {incarnation!r}: use 1 to 22 of [A-Za-z0-9_-]"
        )
    return incarnation


class PendingIds:
    """Issues and judges the pending ids of one store, cookie name and secret.

    :param store: the store the sessions are kept in (its namespace and incarnation).
    :param secret_key: the secret the ids are signed with (share it between processes).
    :param cookie_name: the cookie the ids travel in (ids of another cookie are strangers').
    :param clock: the manager's clock (seconds).
    :param policy: the manager's policy (the pending window).
    """

    def __init__(
        self,
        store: SessionStore,
        secret_key: bytes,
        cookie_name: str,
        clock: Callable[[], float],
        policy: Policy,
    ) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        issuer = f"sessionmw pending id\0{cookie_name}\0{_store_namespace(store)}"
        # The secret bound to what issues the ids: an app with the same secret but its own
        # sessions (another store, prefix or cookie) refuses them.
        self._key = hmac.new(secret_key, issuer.encode(), hashlib.sha256).digest()
        # The store's incarnation as last read, and when (None: never); read on first use, and
        # again by verdict() only, when older than INCARNATION_MAX_AGE or the last read failed.
        self._incarnation: str | None = None
        self._read_at: float | None = None
        self._read_failed = False
        self._inline = not blocks(store)

    def issue(self) -> str:
        """A fresh id signed with the issue time and the store's incarnation (as last read; none if
        the store has none or was never reachable). One store operation the first time only."""
        body = f"{new_session_id()}.{int(self.clock()):x}"
        incarnation = self.incarnation()
        if incarnation is not None:
            body = f"{body}.{incarnation}"
        return f"{body}.{self.mac(body)}"

    def mac(self, body: str) -> str:
        """The MAC that ends an id whose other parts are ``body``."""
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:_MAC_LENGTH]

    def incarnation(self, *, max_age: float | None = None) -> str | None:
        """The store's incarnation as last read; read now if never read yet or, given ``max_age``,
        if the last read failed or is ``max_age`` seconds old.

        None for a store without one. A store that cannot be reached keeps the last value read
        (None if none was ever read: ids issued meanwhile carry none until the next read).
        """
        if self._due(max_age):
            try:
                self._took(_store_incarnation(self.store))
            except StoreError as exc:
                self._missed(exc)
        return self._incarnation

    async def aincarnation(self, *, max_age: float | None = None) -> str | None:
        """:meth:`incarnation` with the read made off the event loop (inline for a store that never
        waits, else in a worker thread). Concurrent callers make one read: the others get the
        value as last read meanwhile."""
        if self._due(max_age):
            try:
                self._took(await self._off_loop(_store_incarnation, self.store))
            except StoreError as exc:
                self._missed(exc)
        return self._incarnation

    @property
    def unread(self) -> bool:
        """True until the store's incarnation was first read (:meth:`issue` then reads it)."""
        return self._read_at is None

    def _due(self, max_age: float | None) -> bool:
        """True if the incarnation must be read now (see :meth:`incarnation`); then the read counts
        as made now, even if it fails: a store that is down is not asked on every new client."""
        read_at = self._read_at
        if read_at is not None:
            if max_age is None:
                return False
            if not self._read_failed and 0.0 <= self.clock() - read_at < max_age:
                return False
        self._read_at = self.clock()
        return True

    def _took(self, incarnation: str | None) -> None:
        self._incarnation = incarnation
        self._read_failed = False

    def _missed(self, exc: StoreError) -> None:
        self._read_failed = True
        _log.warning("could not read the session store's incarnation: %s", exc)

    async def _off_loop(self, func: Callable[[SessionStore], T], store: SessionStore) -> T:
        return func(store) if self._inline else await off_loop(func, store)

    def signed(self, sid: str) -> tuple[int, str | None] | None:
        """For an id signed here: when it was issued and the incarnation it was issued for (None in
        an id without one). None for any other text. No store operation."""
        if not _ID_SHAPE.fullmatch(sid):
            return None
        body, _, mac = sid.rpartition(".")
        if len(mac) != _MAC_LENGTH or not hmac.compare_digest(mac, self.mac(body)):
            return None
        parts = body.split(".")
        if len(parts) not in (2, 3):
            return None
        try:
            issued = int(parts[1], 16)
        except ValueError:
            return None
        return issued, (parts[2] if len(parts) == 3 else None)

    def verdict(self, sid: str) -> Verdict | None:
        """What an id the store does not know is: :attr:`Verdict.PENDING`, :attr:`Verdict.GONE`,
        or None (not issued here: no store operation).

        Pending: signed here for the store's current incarnation (as read at most
        :data:`INCARNATION_MAX_AGE` ago: a store operation only for an id signed here, and at most
        once a second) and within its pending window. Gone: past its window, or issued before the
        store lost its sessions (another incarnation: a restart). An id without an incarnation
        (issued for a store without one, or one never reached) is judged by its window alone.
        """
        signed = self.signed(sid)
        if signed is None:
            return None
        return self._judged(signed, self.incarnation(max_age=INCARNATION_MAX_AGE))

    async def averdict(self, sid: str) -> Verdict | None:
        """:meth:`verdict`, with the store's incarnation read off the event loop (:meth:`aincarnation`)."""
        signed = self.signed(sid)
        if signed is None:
            return None
        return self._judged(signed, await self.aincarnation(max_age=INCARNATION_MAX_AGE))

    def _judged(self, signed: tuple[int, str | None], current: str | None) -> Verdict:
        """The verdict on an id signed here (its issue time and incarnation), given the store's
        ``current`` incarnation (reading it also heals ids issued without one)."""
        issued, incarnation = signed
        if incarnation is not None and incarnation != current:
            return Verdict.GONE
        age = self.clock() - issued
        return Verdict.PENDING if -CLOCK_SLACK <= age <= pending_window(self.policy) else Verdict.GONE
