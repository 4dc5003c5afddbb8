"""The stylesheet of sessionmw's server-rendered banner and error pages (WSGI, Flask).

.. code-block:: python

    page = f"<style>{stylesheet()}</style>{banner_for(environ)}"

It gives :func:`~sessionmw.integrations.wsgi.banner_html` and the friendly error pages the look
of the Dash banner (same colours, same box, the same SVG icons: :data:`ICONS`), and stays
compact at phone width.
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = ["ICONS", "STATUS_ICONS", "STYLESHEET", "stylesheet"]

#: The stylesheet's file name inside the ``sessionmw.integrations`` package (``assets/``).
STYLESHEET = "assets/sessionmw.css"


@functools.cache
def stylesheet() -> str:
    """The CSS text of the banner and error look (read once from the package)."""
    return resources.files("sessionmw.integrations").joinpath(STYLESHEET).read_text(encoding="utf-8")


#: The banner's icons by tone: inline SVG data URIs, drawn once in front of the title, the same in
#: every browser and font (no emoji: a machine without an emoji font shows those as boxes).
ICONS: dict[str, str] = {
    name: "data:image/svg+xml;utf8," + svg.replace("#", "%23")
    for name, svg in {
        "info": (
            "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' stroke='#1e3a8a' "
            "stroke-width='2.2' stroke-linecap='round'><circle cx='12' cy='12' r='9'/>"
            "<path d='M12 7v5l3 2'/></svg>"
        ),
        "warning": (
            "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' stroke='#b45309' "
            "stroke-width='2.2' stroke-linecap='round' stroke-linejoin='round'>"
            "<path d='M12 3l10 18H2z'/><path d='M12 10v4M12 17.5v.5'/></svg>"
        ),
        "error": (
            "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' stroke='#b91c1c' "
            "stroke-width='2.2' stroke-linecap='round'><circle cx='12' cy='12' r='9'/>"
            "<path d='M8 12h8'/></svg>"
        ),
        "ended": (
            "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' stroke='#374151' "
            "stroke-width='2.2' stroke-linecap='round'><circle cx='12' cy='12' r='9'/>"
            "<path d='M12 7v5M12 16v.5'/></svg>"
        ),
        "success": (
            "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' stroke='#15803d' "
            "stroke-width='2.4' stroke-linecap='round' stroke-linejoin='round'>"
            "<circle cx='12' cy='12' r='9'/><path d='M8 12l3 3 5-6'/></svg>"
        ),
    }.items()
}
#: Which icon each statement status gets (the Dash banner and the server-rendered pages alike).
STATUS_ICONS = {
    "idle": ICONS["info"],
    "error": ICONS["warning"],
    "degraded": ICONS["warning"],
    "disconnected": ICONS["error"],
    "expired": ICONS["ended"],
    "not_found": ICONS["ended"],
    "reconnected": ICONS["success"],
}
