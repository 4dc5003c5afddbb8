"""The stylesheet of sessionmw's server-rendered banner and error pages (WSGI, Flask).

.. code-block:: python

    page = f"<style>{stylesheet()}</style>{banner_for(environ)}"

It gives :func:`~sessionmw.integrations.wsgi.banner_html` and the friendly error pages the look
of the Dash banner (same colours, same box), and stays compact at phone width.
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = ["STYLESHEET", "stylesheet"]

#: The stylesheet's file name inside the ``sessionmw.integrations`` package (``assets/``).
STYLESHEET = "assets/sessionmw.css"


@functools.cache
def stylesheet() -> str:
    """The CSS text of the banner and error look (read once from the package)."""
    return resources.files("sessionmw.integrations").joinpath(STYLESHEET).read_text(encoding="utf-8")
