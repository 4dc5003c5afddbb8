"""Framework adapters, installed as ``sessionmw.integrations``.

Import the one you need (``sessionmw.integrations.wsgi``, ``.flask``, ``.dash``); this package
itself imports no framework.
"""
