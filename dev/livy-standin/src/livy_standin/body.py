"""Reading a ``POST /batches`` body the way Livy's Jackson mapper does (CreateBatchRequest)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

_CLASS = "org.apache.livy.server.batch.CreateBatchRequest"
_SOURCE = "(org.eclipse.jetty.server.HttpInputOverHTTP)"
STR_FIELDS = ("file", "proxyUser", "className", "queue", "name", "driverMemory", "executorMemory")
LIST_FIELDS = ("args", "jars", "pyFiles", "files", "archives")
INT_FIELDS = ("driverCores", "executorCores", "numExecutors")
MAP_FIELDS = ("conf",)
KNOWN_FIELDS = STR_FIELDS + LIST_FIELDS + INT_FIELDS + MAP_FIELDS


class BodyError(ValueError):
    """The body cannot be read; ``str()`` is the Jackson-like message Livy sends as a bare JSON string."""


@dataclass
class CreateBatchRequest:
    """The fields of a parsed request that the stand-in uses; the rest are kept in ``extra``."""

    file: str | None = None
    name: str | None = None
    proxy_user: str | None = None
    conf: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def parse_create_request(raw: bytes) -> CreateBatchRequest:
    """Parse and type-check a create body; raise BodyError with a Jackson-style message."""
    doc = _decode(raw)
    if not isinstance(doc, dict):
        raise BodyError(f"Cannot deserialize value of type `{_CLASS}` from {_token(doc)}\n{_at()}")
    values: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in KNOWN_FIELDS:
            raise BodyError(_unknown_field(key))
        if value is not None:
            values[key] = _coerce(key, value)
    return CreateBatchRequest(
        file=values.pop("file", None),
        name=values.pop("name", None),
        proxy_user=values.pop("proxyUser", None),
        conf=values.pop("conf", {}),
        extra=values,
    )


def _decode(raw: bytes) -> object:
    if not raw.strip():
        raise BodyError(f"No content to map due to end-of-input\n at [Source: {_SOURCE}; line: 1, column: 0]")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"Invalid UTF-8 start byte 0x{raw[exc.start]:02x}\n{_at()}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BodyError(_syntax_message(exc)) from None


def _reject_constant(name: str) -> object:
    raise json.JSONDecodeError(f"Non-standard token '{name}'", name, 0)


def _syntax_message(exc: json.JSONDecodeError) -> str:
    where = f" at [Source: {_SOURCE}; line: {exc.lineno}, column: {exc.colno}]"
    if exc.pos >= len(exc.doc):
        return f"Unexpected end-of-input: expected close marker for Object\n{where}"
    char = exc.doc[exc.pos]
    return (
        f"Unexpected character ('{char}' (code {ord(char)})): expected a valid value "
        f"(JSON String, Number, Array, Object or token 'null', 'true' or 'false')\n{where}"
    )


def _at(key: str | None = None) -> str:
    chain = f' (through reference chain: {_CLASS}["{key}"])' if key else ""
    return f" at [Source: {_SOURCE}; line: 1, column: 1]{chain}"


def _unknown_field(key: str) -> str:
    known = ", ".join(f'"{k}"' for k in KNOWN_FIELDS)
    return (
        f'Unrecognized field "{key}" (class {_CLASS}), not marked as ignorable '
        f"({len(KNOWN_FIELDS)} known properties: {known}])\n{_at(key)}"
    )


def _token(value: object) -> str:
    if isinstance(value, list):
        return "Array value (token `JsonToken.START_ARRAY`)"
    if isinstance(value, dict):
        return "Object value (token `JsonToken.START_OBJECT`)"
    if isinstance(value, bool):
        return f"Boolean value ({'true' if value else 'false'})"
    if isinstance(value, str):
        return f'String value ("{value}")'
    return f"Number value ({value})"


def _mismatch(java_type: str, value: object, key: str) -> BodyError:
    return BodyError(f"Cannot deserialize value of type `{java_type}` from {_token(value)}\n{_at(key)}")


def _scalar_str(value: object, java_type: str, key: str) -> str:
    """Jackson coerces scalars to String: ``true`` -> ``"true"``, ``3`` -> ``"3"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise _mismatch(java_type, value, key)


def _coerce(key: str, value: object) -> Any:
    if key in STR_FIELDS:
        return _scalar_str(value, "java.lang.String", key)
    if key in INT_FIELDS:
        return _coerce_int(key, value)
    if key in LIST_FIELDS:
        if not isinstance(value, list):
            raise _mismatch("scala.collection.immutable.List<java.lang.String>", value, key)
        return [_scalar_str(v, "java.lang.String", key) for v in value]
    if not isinstance(value, dict):
        raise _mismatch("scala.collection.immutable.Map<java.lang.String,java.lang.String>", value, key)
    return {k: _scalar_str(v, "java.lang.String", key) for k, v in value.items() if v is not None}


def _coerce_int(key: str, value: object) -> int:
    if isinstance(value, bool):
        raise _mismatch("int", value, key)
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise _mismatch("int", value, key)
