"""Languages: which language a user reads sessionmw in, and the catalogue's words in it.

The words are :mod:`sessionmw.texts`' English sentences; their translations are gettext
catalogues (domain ``sessionmw``) under ``sessionmw/locale/<language>/LC_MESSAGES/``, read with
the standard library's :mod:`gettext` (no Babel at run time; see ``docs/languages.md`` for how
they are made). German, French and Spanish ship with the package.

- A request's language is chosen lazily: an adapter opens the request's session scope with the
  request and its :class:`Negotiator` (:func:`sessionmw._context.enter_scope`: no context
  variable of its own, nothing parsed), and hands them to :func:`ask` for what it writes outside
  that scope (a refusal, an endpoint); only when sessionmw writes words for that request does the
  negotiator pick a language, once per request, from the app's ``language_selector`` or the
  ``Accept-Language`` header (:func:`negotiate`). A request that shows no words costs nothing
  more, in any language.
- :class:`Language` holds one language's words, made once per catalogue entry and cached: a
  message in a non-English language costs one dictionary lookup more than in English.
- :func:`use_catalogues` adds the app's own catalogue directory: its entries come before
  sessionmw's (override any message), and its languages become available.
- :func:`speaking` chooses the language explicitly (a test, a job outside any request).

.. code-block:: python

    from sessionmw import translate
    from sessionmw.languages import speaking

    with speaking("de"):
        assert translate(TimeoutError()).title == "Zeitüberschreitung der Anfrage"
"""

from __future__ import annotations

import contextlib
import dataclasses
import gettext
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from sessionmw.texts import ASKED, Message, Plural
from sessionmw.texts import asked as _asked_now

__all__ = [
    "DOMAIN",
    "LOCALE_DIR",
    "SOURCE_LANGUAGE",
    "Language",
    "LanguageSelector",
    "Negotiator",
    "ask",
    "available",
    "current",
    "drop_catalogues",
    "forget",
    "load",
    "negotiate",
    "shipped",
    "speaking",
    "use_catalogues",
]

_log = logging.getLogger("sessionmw.languages")

#: The gettext domain of sessionmw's catalogues (``<language>/LC_MESSAGES/sessionmw.mo``).
DOMAIN: Final = "sessionmw"
#: Where the shipped catalogues are.
LOCALE_DIR: Final = Path(__file__).resolve().parent / "locale"
#: The language the catalogue is written in (:mod:`sessionmw.texts`).
SOURCE_LANGUAGE: Final = "en"

E = TypeVar("E")


class RequestLike(Protocol):
    """What a negotiator reads of a request (:class:`~sessionmw.integrations.request.RequestView`)."""

    def header(self, name: str) -> str | None: ...


#: The app's own choice of language for a request (like Flask-Babel's ``locale_selector``): it is
#: called with the request's view (see :class:`~sessionmw.integrations.request.RequestView`) and
#: returns a language code, or None to let ``Accept-Language`` decide.
LanguageSelector = Callable[[Any], "str | None"]


# -- one language's words ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _LocalPlural(Plural):
    """A :class:`~sessionmw.texts.Plural` in another language: its form chosen by that language's
    plural rule (the catalogue's ``Plural-Forms``); ``one`` and ``other`` are its forms for 1 and 2."""

    source: tuple[str, str] = ("", "")
    ngettext: Callable[[str, str, int], str] = dataclasses.field(default=gettext.ngettext, compare=False)

    def choose(self, number: float | str) -> str:
        return self.ngettext(self.source[0], self.source[1], int(float(number)))


#: The fields of a dataclass entry that hold words (a Translation, a Statement).
_TEXT_FIELDS: Final = ("title", "message", "recovery", "steps", "context")


class Language:
    """One language's words for the catalogue's entries, each made once and then cached.

    :param code: the language's code (``"de"``).
    :param translations: its gettext catalogues, the app's first (see :func:`load`).
    """

    def __init__(self, code: str, translations: gettext.NullTranslations) -> None:
        #: The language's code, as in ``Content-Language``.
        self.code = code
        self._gettext = translations.gettext
        self._ngettext = translations.ngettext
        self._cache: dict[Any, Any] = {}

    def __repr__(self) -> str:
        return f"Language({self.code!r})"

    def local(self, entry: E) -> E:
        """``entry`` in this language: a sentence (``str``), a :class:`~sessionmw.texts.Plural`, a
        :class:`~sessionmw.texts.Message`, a tuple of them, or a Translation or Statement
        (their words); anything else, and a sentence the catalogues lack, as it is."""
        cache = self._cache
        found = cache.get(entry, self)
        if found is self:
            found = cache[entry] = self._make(entry)
        return found  # type: ignore[no-any-return]

    def _make(self, entry: Any) -> Any:
        if isinstance(entry, str):
            return self._gettext(entry) if entry else entry  # gettext("") is the header
        if isinstance(entry, Plural):
            one, other = entry.one, entry.other
            if isinstance(entry, _LocalPlural):
                one, other = entry.source
            forms = self._ngettext(one, other, 1), self._ngettext(one, other, 2)
            return _LocalPlural(*forms, count=entry.count, source=(one, other), ngettext=self._ngettext)
        if isinstance(entry, Message):
            return Message(
                entry.icon,
                self.local(entry.title),
                self.local(entry.message),
                self.local(entry.recovery),
                self.local(entry.context),
            )
        if isinstance(entry, tuple):
            return tuple(self.local(item) for item in entry)
        if dataclasses.is_dataclass(entry) and not isinstance(entry, type):
            names = {field.name for field in dataclasses.fields(entry)}
            changes = {name: self.local(getattr(entry, name)) for name in _TEXT_FIELDS if name in names}
            return dataclasses.replace(entry, **changes)
        return entry


# -- the catalogues ---------------------------------------------------------------------------

_lock = threading.Lock()
_app_dirs: list[Path] = []  # the app's catalogue directories, the latest first
# The languages found in each catalogue directory, read once (when it is named, or at import for
# sessionmw's own): building an adapter (which an ASGI framework may do on its event loop, at the
# first request) lists the languages without touching the file system.
_found: dict[Path, frozenset[str]] = {}
_loaded: dict[str, Language | None] = {}


def use_catalogues(directory: str | Path) -> None:
    """Read the app's own catalogues from ``directory`` before sessionmw's.

    ``directory`` holds ``<language>/LC_MESSAGES/sessionmw.mo`` files (``pybabel compile -D
    sessionmw -d directory``): an entry there overrides sessionmw's for that language, and a
    language sessionmw does not ship becomes available. Its msgids are the English sentences
    of :mod:`sessionmw.texts` (the ``.pot`` shipped in ``sessionmw/locale/sessionmw.pot``), and
    may include the app's own sentences (:func:`~sessionmw.register_translation`). An English
    catalogue (``en``) rewrites sessionmw's English. Call it at start-up, before the adapters are
    built (they check their ``languages`` against :func:`available`).

    :raises ValueError: if ``directory`` is not a directory.
    """
    path = Path(directory)
    if not path.is_dir():
        raise ValueError(
            f"use_catalogues needs a directory of <language>/LC_MESSAGES/{DOMAIN}.mo, not {path}"
        )
    found = _read_languages(path)
    with _lock:
        if path in _app_dirs:
            _app_dirs.remove(path)
        _app_dirs.insert(0, path)
        _found[path] = found
        _loaded.clear()


def drop_catalogues(directory: str | Path) -> bool:
    """Stop reading the app's catalogues from ``directory``; False if it was not in use."""
    path = Path(directory)
    with _lock:
        if path not in _app_dirs:
            return False
        _app_dirs.remove(path)
        _loaded.clear()
    return True


def _read_languages(directory: Path) -> frozenset[str]:
    return frozenset(mo.parent.parent.name for mo in directory.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))


def _languages_in(directory: Path) -> frozenset[str]:
    found = _found.get(directory)
    if found is None:
        found = _found[directory] = _read_languages(directory)
    return found


def shipped() -> tuple[str, ...]:
    """The languages sessionmw ships: English first, then the others by code."""
    return _SHIPPED


_SHIPPED: tuple[str, ...] = (SOURCE_LANGUAGE, *sorted(_languages_in(LOCALE_DIR) - {SOURCE_LANGUAGE}))


def available() -> tuple[str, ...]:
    """:func:`shipped` and the languages of the app's catalogues (:func:`use_catalogues`)."""
    codes = list(shipped())
    for directory in list(_app_dirs):
        codes += sorted(_languages_in(directory) - set(codes))
    return tuple(codes)


def load(code: str) -> Language | None:
    """The words of language ``code``: the app's catalogues first, then sessionmw's.

    None when there is nothing to translate: English without an app catalogue for it, or a
    language without any catalogue (the catalogue's English words are shown as written).
    """
    try:
        return _loaded[code]
    except KeyError:
        pass
    with _lock:
        chain: gettext.NullTranslations | None = None
        for directory in [*_app_dirs, LOCALE_DIR]:
            if code not in _languages_in(directory):  # (no file system call: read once)
                continue
            found = gettext.translation(DOMAIN, directory, [code], fallback=True)
            if type(found) is gettext.NullTranslations:
                continue
            if chain is None:
                chain = found
            else:
                chain.add_fallback(found)
        language = None if chain is None else Language(code, chain)
        _loaded[code] = language
    return language


# -- choosing a request's language --------------------------------------------------------------

#: A language tag as Accept-Language carries it (RFC 4647's language-range), or ``*``.
_RANGE = re.compile(r"\*|[a-z]{1,8}(-[a-z0-9]{1,8})*")
#: The most items of an Accept-Language header that are read.
_MOST_RANGES: Final = 32


def _key(code: str) -> str:
    return code.strip().lower().replace("_", "-")


def negotiate(header: str | None, languages: Sequence[str], default: str | None = None) -> str:
    """The best of ``languages`` for an ``Accept-Language`` value (RFC 9110, section 12.5.4).

    Ranges are taken by quality, then in order; a range matches a language with the same tag
    (``de-CH``: ``de_CH``) or, failing that, the same primary language (``de-CH``: ``de``);
    ``*`` takes the default. Anything malformed is skipped: a header that is all malformed, or
    matches nothing, gets ``default`` (None: the first of ``languages``). Never raises.
    """
    fallback = default if default is not None else languages[0]
    if not header:
        return fallback
    exact = {_key(code): code for code in languages}
    primary: dict[str, str] = {}
    for code in languages:
        primary.setdefault(_key(code).partition("-")[0], code)
    wanted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:_MOST_RANGES]):
        tag, _, params = item.partition(";")
        tag = tag.strip().lower()
        if not _RANGE.fullmatch(tag):
            continue
        quality = 1.0
        if params.strip():
            name, _, value = params.partition("=")
            if name.strip().lower() != "q":
                continue
            try:
                quality = float(value)
            except ValueError:
                continue
            if not 0.0 <= quality <= 1.0:  # NaN too
                continue
        if quality > 0.0:
            wanted.append((-quality, position, tag))
    for _, _, tag in sorted(wanted):
        if tag == "*":
            return fallback
        found = exact.get(tag) or exact.get(tag.partition("-")[0]) or primary.get(tag.partition("-")[0])
        if found is not None:
            return found
    return fallback


def _matching(code: str, languages: Sequence[str]) -> str | None:
    """The one of ``languages`` that ``code`` (``de``, ``de_DE``, ``de-DE``) names, or None."""
    found = negotiate(code.replace("_", "-"), languages, default="\0")
    return None if found == "\0" else found


class Negotiator:
    """Chooses a request's language among ``languages``: the app's ``selector`` first, then the
    request's ``Accept-Language`` (:func:`negotiate`); the first of ``languages`` is the default.

    :param languages: the language codes to offer; None: every :func:`available` one (English
        first, so English is the default).
    :param selector: the app's own choice (see :data:`LanguageSelector`); a code it returns that
        is not offered, None, or an exception (logged) leaves the choice to the header.
    :raises ValueError: for an empty list or a language without a catalogue, naming it.
    """

    __slots__ = ("default", "languages", "selector")

    def __init__(
        self, languages: Iterable[str] | None = None, selector: LanguageSelector | None = None
    ) -> None:
        offered = available()
        if languages is None:
            chosen = offered
        else:
            if isinstance(languages, str):
                languages = languages.split(",")
            chosen = tuple(code.strip() for code in languages if code.strip())
            if not chosen:
                raise ValueError("languages must name at least one language")
            unknown = [code for code in chosen if _matching(code, offered) != code]
            if unknown:
                raise ValueError(
                    f"no catalogue for language {unknown[0]!r}: available are {', '.join(offered)} "
                    "(add one with sessionmw.languages.use_catalogues)"
                )
        if selector is not None and not callable(selector):
            raise ValueError(f"language_selector must be callable, not {type(selector).__name__}")
        #: The languages offered, the default first.
        self.languages: tuple[str, ...] = chosen
        #: The language when nothing else decides.
        self.default: str = chosen[0]
        #: The app's own choice, or None.
        self.selector = selector

    def choose(self, request: RequestLike | None) -> str:
        """The language code for ``request`` (None: the default)."""
        if request is None:
            return self.default
        if self.selector is not None:
            try:
                picked = self.selector(request)
            except Exception:
                _log.warning(
                    "language_selector %r raised; Accept-Language decides", self.selector, exc_info=True
                )
                picked = None
            if picked:
                found = _matching(str(picked), self.languages)
                if found is not None:
                    return found
        try:
            header = request.header("accept-language")
        except Exception:  # a view that cannot read headers: the default
            header = None
        return negotiate(header, self.languages, self.default)

    def speaker(self, request: RequestLike | None) -> Language | None:
        """The words for ``request`` (None: the catalogue's English), chosen once per request."""
        chosen = _CHOSEN.get()
        if chosen is not None and chosen[0] is request and chosen[1] is self:
            return chosen[3]
        code = self.choose(request)
        language = load(code)
        _CHOSEN.set((request, self, code, language))
        return language

    def code(self, request: RequestLike | None) -> str:
        """The language code chosen for ``request`` (see :meth:`speaker`)."""
        self.speaker(request)
        chosen = _CHOSEN.get()
        return self.default if chosen is None else chosen[2]


#: The last choice in this context: (request, negotiator, code, words).
_CHOSEN: ContextVar[tuple[Any, Negotiator, str, Language | None] | None] = ContextVar(
    "sessionmw_language_chosen", default=None
)
_ask = ASKED.set
_asked = ASKED.get


def ask(negotiator: Negotiator, request: RequestLike) -> None:
    """Make ``request`` the one whose language sessionmw writes in, in this context, before its
    session scope's (an adapter calls it for what it writes outside the scope: a refusal, an
    endpoint, a failed admission; nothing is chosen until words are written)."""
    _ask([negotiator, request])


def forget() -> None:
    """The request :func:`ask` named is over: what sessionmw writes after it is the scope's
    language, else English (an adapter calls it as a request ends; it sets no context variable,
    so it costs a read)."""
    asked = _asked()
    if asked is not None:
        asked[1] = None


def current() -> str:
    """The language sessionmw writes in now, as ``Content-Language`` names it: the current
    request's, else English."""
    found = _asked_now()
    if found is None:
        return SOURCE_LANGUAGE
    negotiator, request = found
    if isinstance(negotiator, Negotiator):
        code = negotiator.code(request)
    else:
        code = str(getattr(negotiator, "code", SOURCE_LANGUAGE))
    return code.replace("_", "-")  # a language tag (BCP 47): pt_BR is pt-BR


#: The request of :func:`speaking`'s choice: any (the choice does not depend on it).
_ANY_REQUEST: Final = object()


class _Fixed:
    """The choice of :func:`speaking`: one language, whatever the request."""

    __slots__ = ("code", "words")

    def __init__(self, code: str) -> None:
        self.code = code
        self.words = load(code)

    def speaker(self, request: object) -> Language | None:
        return self.words


@contextlib.contextmanager
def speaking(code: str) -> Iterator[None]:
    """Write sessionmw's words in language ``code`` inside the ``with`` block (a test, a job
    outside any request); the request's own choice, if any, comes back after it.

    :raises ValueError: for a language without a catalogue.
    """
    found = _matching(code, available())
    if found is None:
        raise ValueError(f"no catalogue for language {code!r}: available are {', '.join(available())}")
    token = ASKED.set([_Fixed(found), _ANY_REQUEST])
    try:
        yield
    finally:
        ASKED.reset(token)
