"""Store URLs shown safely: a password never reaches a message or a log."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

__all__ = ["mask_url"]

#: Query options whose value is a secret (redis-py passes ``?password=`` on as the password).
_SECRET_OPTION = re.compile(r"pass|secret|token|auth|credential", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` with every password shown as ``***`` (for messages, logs and ``repr``).

    Masked: the password of ``user:password@`` (all of it when there is no ``:``), in any
    scheme (``redis``, ``rediss``, ``unix``, ``sqlite``...), and the value of every query option
    named like a secret (``?password=``, ``?ssl_password=``). A URL that cannot be read plainly
    (an ``@`` after its host, e.g. from a password with an unencoded ``/``, ``?``, ``#`` or
    ``@``) is shown as ``scheme://***``.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    at = rest.rfind("@")
    if at >= authority_end:  # an "@" past the host: perhaps a password that broke the URL
        return f"{scheme}://***"
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        rest = (f"{user}:***" if colon else "***") + rest[at:]
    head, question, query = rest.partition("?")
    if not question:
        return f"{scheme}://{rest}"
    query, hash_sign, fragment = query.partition("#")
    options = []
    for option in query.split("&"):
        name, equals, _ = option.partition("=")
        if equals and _SECRET_OPTION.search(unquote_plus(name)):
            option = f"{name}=***"
        options.append(option)
    fragment = "***" if fragment else ""  # ignored by the stores: at most a broken-off piece of a secret
    return f"{scheme}://{head}?{'&'.join(options)}{hash_sign}{fragment}"
