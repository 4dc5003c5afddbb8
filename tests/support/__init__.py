"""Helpers the tests share, one module per kind (each helper has one import path; nothing is
re-exported here): ``fakes`` (sleeps, a counting store, sessions in each state), ``stores`` (store
URLs and walks, what the async path compares), ``breakers`` (a failing call, timed and slow
breakers), ``processes`` (spawned children, the ``sessionmw`` command in a process), ``servers``
(loopback servers and their clients), ``redis_servers`` (Redis servers of a test's own),
``adapters`` (one host app served by each adapter), ``dash`` (Dash callback requests, clients
and layout readers), ``chrome`` (headless chromium options), ``browser`` (what the browser
tests share; skips without chromedriver), ``asgi`` (an ASGI
message-order checker) and ``peers`` (sentry and OpenTelemetry, kept in memory).

Only tests import these: never sessionmw/, integrations/, bench/ or scripts/ (tests/project/
test_test_support.py checks it).
"""
