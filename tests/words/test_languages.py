"""Languages: the catalogues are complete and compiled, a request's language is negotiated from
Accept-Language or the app's choice, and every text sessionmw writes is in that language."""

from __future__ import annotations

import gettext
import io
import re
import string
from pathlib import Path
from typing import Any

import pytest

from sessionmw import SessionManager, format_error, texts, translate
from sessionmw import languages as languages_module
from sessionmw.languages import (
    LOCALE_DIR,
    Negotiator,
    available,
    current,
    load,
    negotiate,
    shipped,
    speaking,
    use_catalogues,
)
from sessionmw.texts import Plural, catalogue, duration, fill, local, paused_message, span
from sessionmw.translation import statement

babel_pofile = pytest.importorskip("babel.messages.pofile")
babel_mofile = pytest.importorskip("babel.messages.mofile")

SHIPPED = ("de", "fr", "es")


class View:
    """A request as a negotiator reads it."""

    def __init__(self, accept_language: str | None) -> None:
        self.accept_language = accept_language

    def header(self, name: str) -> str | None:
        return self.accept_language if name == "accept-language" else None


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def po_catalog(code: str) -> Any:
    with (LOCALE_DIR / code / "LC_MESSAGES" / "sessionmw.po").open("rb") as file:
        return babel_pofile.read_po(file, locale=code)


# -- the catalogues -------------------------------------------------------------------------------


def test_sessionmw_ships_english_german_french_and_spanish() -> None:
    assert shipped() == ("en", "de", "es", "fr")


@pytest.mark.parametrize("code", SHIPPED)
def test_every_catalogue_entry_is_translated_with_its_placeholders(code: str) -> None:
    catalog = po_catalog(code)
    missing, broken = [], []
    for entry in catalogue():
        msgid = (entry.one, entry.other) if isinstance(entry, Plural) else entry
        message = catalog.get(entry.one if isinstance(entry, Plural) else entry)
        if message is None or message.fuzzy or not message.string or not all(message.string):
            missing.append(msgid)
            continue
        english = fields(entry.other if isinstance(entry, Plural) else entry)
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        if isinstance(entry, Plural) != isinstance(message.string, tuple):
            broken.append((msgid, "singular and plural mixed up"))
        for form in forms:
            if fields(form) != english:
                broken.append((msgid, form))
    assert missing == [], f"{code}: no translation for {missing}"
    assert broken == [], f"{code}: placeholders differ: {broken}"


@pytest.mark.parametrize("code", SHIPPED)
def test_no_catalogue_holds_a_sentence_that_texts_py_dropped(code: str) -> None:
    wanted = {entry.one if isinstance(entry, Plural) else entry for entry in catalogue()}
    catalog = po_catalog(code)
    ids = [message.id[0] if isinstance(message.id, tuple) else message.id for message in catalog]
    assert [msgid for msgid in ids if msgid and msgid not in wanted] == []
    assert not catalog.obsolete, f"{code}: obsolete entries: run scripts/catalogues and delete them"


@pytest.mark.parametrize("code", SHIPPED)
def test_each_compiled_catalogue_is_its_po_file_compiled(code: str) -> None:
    folder = LOCALE_DIR / code / "LC_MESSAGES"
    compiled = io.BytesIO()
    babel_mofile.write_mo(compiled, po_catalog(code), use_fuzzy=False)
    assert (folder / "sessionmw.mo").read_bytes() == compiled.getvalue(), (
        f"{folder}/sessionmw.mo is not {code}'s .po compiled: run scripts/catalogues"
    )


def test_the_template_lists_every_sentence_of_the_catalogue() -> None:
    with (LOCALE_DIR / "sessionmw.pot").open("rb") as file:
        pot = babel_pofile.read_po(file)
    ids = [message.id for message in pot if message.id]
    assert ids == [(entry.one, entry.other) if isinstance(entry, Plural) else entry for entry in catalogue()]


# -- words in a language --------------------------------------------------------------------------


def test_without_a_request_sessionmw_writes_english_and_looks_nothing_up() -> None:
    entry = texts.MESSAGES["expired"]
    assert local(entry) is entry
    assert current() == "en"


def test_a_message_is_made_once_per_language_then_looked_up() -> None:
    german = load("de")
    assert german is not None
    first = german.local(texts.MESSAGES["expired"])
    assert first.title == "Sitzung abgelaufen"
    assert german.local(texts.MESSAGES["expired"]) is first


@pytest.mark.parametrize(
    ("code", "seconds", "said"),
    [
        ("en", 60, "1 minute"),
        ("en", 120, "2 minutes"),
        ("de", 60, "1 Minute"),
        ("de", 120, "2 Minuten"),
        ("de", 30, "weniger als einer Minute"),
        ("de", 3900, "1 Stunde und 5 Minuten"),
        ("fr", 7200, "2 heures"),
        ("es", 180, "3 minutos"),
    ],
)
def test_durations_are_said_in_the_language(code: str, seconds: float, said: str) -> None:
    with speaking(code):
        assert duration(seconds) == said


def test_plural_forms_follow_the_languages_rule() -> None:
    with speaking("fr"):
        assert span(1) == "1 seconde"
        assert span(2) == "2 secondes"
        assert paused_message("prix", 1) == "Le service prix est en pause\u00a0; nouvel essai dans 1 seconde"
    with speaking("de"):
        assert (
            paused_message("Kurse", 5)
            == "Der Dienst Kurse ist pausiert; wir versuchen es in 5 Sekunden erneut"
        )


def test_an_exception_is_translated_into_the_language() -> None:
    with speaking("es"):
        err = translate(TimeoutError())
    assert err.title == "Tiempo de espera agotado"
    assert err.recovery[0] == "Espere un momento y vuelva a intentarlo."
    assert "Qué ha pasado" in (lambda: _in("es", format_error, err, "text"))()


def _in(code: str, function: Any, *args: Any) -> Any:
    with speaking(code):
        return function(*args)


def test_a_health_report_is_written_in_the_language_with_its_numbers() -> None:
    clock = [1000.0]
    manager = SessionManager(store="memory://", clock=lambda: clock[0], session_timeout_minutes=30)
    sid = manager.create_session().session_id
    clock[0] += 45 * 60
    with speaking("de"):
        report = manager.check_health(sid)
        said = statement(report)
    assert report.title == "Sitzung abgelaufen"
    assert report.context == "Sitzungen laufen nach 30 Minuten ohne Aktivität ab."
    assert said is not None and said.steps[0] == "Laden Sie die Seite neu, um eine neue Sitzung zu starten."
    assert manager.check_health(sid).title == "Session expired"  # outside: English again


def test_a_health_report_in_english_is_unchanged_after_one_in_another_language() -> None:
    manager = SessionManager(store="memory://")
    sid = manager.create_session().session_id
    with speaking("fr"):
        assert manager.check_health(sid).message == "✅ Votre session est active"
    assert manager.check_health(sid).message == "✅ Your session is active"


# -- negotiation ----------------------------------------------------------------------------------

OFFERED = ("en", "de", "es", "fr")


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "fr"),
        ("en;q=0.5, es;q=0.9", "es"),
        ("it, pt;q=0.8", "en"),  # nothing offered: the default
        ("it, *;q=0.1", "en"),
        ("de;q=0, fr;q=0.2", "fr"),  # q=0: not acceptable
        ("ES", "es"),
        ("", "en"),
        (None, "en"),
        (";;;,,,==", "en"),  # malformed: the default, never an error
        ("de;q=abc, fr", "fr"),
        ("de;q=2, es", "es"),
        ("de;q=nan, es", "es"),
        ("\x00\xff\u2603", "en"),
        ("x" * 10_000, "en"),
        ("de-" + "a" * 100, "en"),
    ],
)
def test_accept_language_picks_the_best_offered_language(header: str | None, chosen: str) -> None:
    assert negotiate(header, OFFERED) == chosen


def test_the_first_configured_language_is_the_default() -> None:
    negotiator = Negotiator(["de", "en"])
    assert negotiator.choose(View("it")) == "de"
    assert negotiator.choose(View(None)) == "de"
    assert negotiator.choose(View("en-GB")) == "en"
    assert negotiator.choose(View("fr")) == "de"  # not offered by this app


def test_a_language_without_a_catalogue_is_refused_when_configured() -> None:
    with pytest.raises(ValueError, match="no catalogue for language 'it'"):
        Negotiator(["de", "it"])
    with pytest.raises(ValueError, match="at least one"):
        Negotiator([])
    assert Negotiator("de, fr").languages == ("de", "fr")


def test_the_apps_selector_comes_before_the_header() -> None:
    negotiator = Negotiator(selector=lambda request: "fr")
    assert negotiator.choose(View("de")) == "fr"


@pytest.mark.parametrize("picked", [None, "", "it", 42])
def test_a_selector_without_an_offered_answer_leaves_it_to_the_header(picked: Any) -> None:
    negotiator = Negotiator(selector=lambda request: picked)
    assert negotiator.choose(View("de")) == "de"


def test_a_selector_that_raises_is_logged_and_the_header_decides(caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: Any) -> str:
        raise RuntimeError("boom")

    assert Negotiator(selector=broken).choose(View("es")) == "es"
    assert "language_selector" in caplog.text


def test_a_requests_language_is_chosen_once_and_only_when_words_are_written() -> None:
    calls: list[object] = []

    def selector(request: Any) -> str:
        calls.append(request)
        return "de"

    negotiator = Negotiator(selector=selector)
    view = View("fr")

    def request() -> list[str]:
        languages_module.ask(negotiator, view)
        assert calls == []  # asking chooses nothing
        return [translate(TimeoutError()).title, translate(ConnectionError()).title, current()]

    import contextvars

    titles = contextvars.copy_context().run(request)
    assert titles == ["Zeitüberschreitung der Anfrage", "Verbindungsproblem", "de"]
    assert calls == [view]


def test_once_the_request_is_forgotten_sessionmw_writes_english() -> None:
    def request() -> list[str]:
        languages_module.ask(Negotiator(), View("fr"))
        during = translate(TimeoutError()).title
        languages_module.forget()
        return [during, translate(TimeoutError()).title, current()]

    import contextvars

    said = contextvars.copy_context().run(request)
    assert said == ["Délai de la demande dépassé", "Request timed out", "en"]


def test_speaking_a_language_without_a_catalogue_is_an_error() -> None:
    with pytest.raises(ValueError, match="no catalogue for language 'it'"), speaking("it"):
        pass


# -- the app's own catalogues ---------------------------------------------------------------------


def _write_mo(directory: Path, code: str, entries: dict[str, str]) -> None:
    from babel.messages.catalog import Catalog

    catalog = Catalog(locale=code, domain="sessionmw")
    for msgid, msgstr in entries.items():
        catalog.add(msgid, msgstr)
    folder = directory / code / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "sessionmw.mo").open("wb") as file:
        babel_mofile.write_mo(file, catalog)


@pytest.fixture
def app_catalogues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(languages_module, "_app_dirs", [])
    monkeypatch.setattr(languages_module, "_loaded", {})
    return tmp_path


def test_an_app_overrides_a_message_and_adds_a_language(app_catalogues: Path) -> None:
    _write_mo(app_catalogues, "de", {"Request timed out": "Das hat zu lange gedauert"})
    _write_mo(app_catalogues, "it", {"Request timed out": "Richiesta scaduta"})
    use_catalogues(app_catalogues)
    assert "it" in available()
    with speaking("de"):
        err = translate(TimeoutError())
    assert err.title == "Das hat zu lange gedauert"  # the app's word
    assert err.recovery[0] == "Warten Sie einen Moment und versuchen Sie es erneut."  # sessionmw's
    with speaking("it"):
        err = translate(TimeoutError())
    assert err.title == "Richiesta scaduta"
    assert err.recovery[0] == "Wait a moment and try again."  # not translated yet: English


def test_use_catalogues_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a directory"):
        use_catalogues(tmp_path / "missing")


def test_the_stdlib_reads_the_shipped_catalogues_without_babel() -> None:
    found = gettext.translation("sessionmw", LOCALE_DIR, ["de"])
    assert found.ngettext("{n} minute", "{n} minutes", 2) == "{n} Minuten"
    assert re.fullmatch(r"nplurals=2; plural=\(n != 1\);?", found.info()["plural-forms"])
    assert fill(Plural("{n} x", "{n} xs"), {"n": 2}) == "2 xs"


def test_building_an_adapter_touches_no_file() -> None:
    """Options (what every adapter builds, an ASGI framework on its event loop at the first
    request) list the languages without a file system call: they were read at import."""
    from unittest import mock

    from sessionmw.integrations.options import Options

    def no_file_system(*args: object, **kwargs: object) -> None:
        raise AssertionError("a file system call while building an adapter")

    with mock.patch.object(Path, "glob", no_file_system), mock.patch.object(Path, "stat", no_file_system):
        every = Options.build(secret_key="k")  # every language offered (checked against the shipped)
        chosen = Options.build(secret_key="k", languages=["en", "de"])
        english = languages_module.load("en")
    assert every.languages is None and chosen.languages == ("en", "de") and english is None
