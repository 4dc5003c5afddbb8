"""Reading a stored record back: any bytes are either a valid record or :class:`CorruptRecordError`.

Shared by the persistent stores. The cost of deciding is bounded: text longer than
:data:`MAX_RECORD_CHARS` is refused before parsing, and JSON nested deeper than the parser's
recursion limit (``"[" * 5000``) is corrupt, not a :class:`RecursionError`.
"""

from __future__ import annotations

import json

from sessionmw._errors import CorruptRecordError
from sessionmw._session import SessionRecord

__all__ = ["MAX_RECORD_CHARS", "decode_record"]

#: The longest stored record read (a record is about 200 characters, and its last error at most
#: 500 characters before JSON escaping); anything longer is corrupt.
MAX_RECORD_CHARS = 16_384


def decode_record(raw: object, session_id: str, where: str) -> SessionRecord:
    """The record of ``session_id`` in ``raw`` (text or UTF-8 bytes as a store keeps it).

    :param where: names the store in the error message.
    :raises CorruptRecordError: for anything that is not one readable record of ``session_id``.
    """
    if isinstance(raw, bytes | bytearray):
        if len(raw) > MAX_RECORD_CHARS * 4:
            raise CorruptRecordError(f"session record in {where} is too long ({len(raw)} bytes)")
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptRecordError(f"session record in {where} is not UTF-8 text") from None
    if not isinstance(raw, str):
        raise CorruptRecordError(f"session record in {where} is a {type(raw).__name__}, not JSON text")
    if len(raw) > MAX_RECORD_CHARS:
        raise CorruptRecordError(f"session record in {where} is too long ({len(raw)} characters)")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise CorruptRecordError(f"session record in {where} is nested too deeply") from None
    except ValueError:
        raise CorruptRecordError(f"session record in {where} is not valid JSON") from None
    try:
        record = SessionRecord.from_dict(data)
    except (ArithmeticError, RecursionError) as exc:  # e.g. an integer too large for a float
        raise CorruptRecordError(f"session record in {where} is malformed: {exc!r}") from None
    if record.session_id != session_id:
        raise CorruptRecordError(f"session record in {where} belongs to another id")
    return record
