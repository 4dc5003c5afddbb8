"""Framework adapters, installed as ``sessionmw.integrations``.

Import the one you need (``sessionmw.integrations.wsgi``, ``.flask``, ``.dash``); this package
itself imports no framework. The middleware and the Flask extension share ``.gate`` (the request
logic) and ``.http`` (HTTP helpers); the Dash extension is built from ``.dash_banner``,
``.dash_callbacks`` and ``.dash_apps``.
"""

__all__: list[str] = []  # the adapters are its modules, imported by name
