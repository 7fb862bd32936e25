"""Reading a posted form for the images, multicast and storage pages: the text of each field, whole numbers
refused with the field they came from, and a store refusal placed next to the field it is about."""
from __future__ import annotations

from typing import Mapping

from aiohttp import web

from server_stub.console.render import field_errors
from server_stub.errors import ApiError, Invalid

MAX_INTEGER = 2**63 - 1  # SQLite's largest: a bigger number would fail in the store, not be refused


async def form_text(request: web.Request) -> dict[str, str]:
    """Every text field of the form, stripped (files are not posted on these pages)."""
    posted = await request.post()
    return {key: value.strip() for key, value in posted.items() if isinstance(value, str) and key != "csrf"}


def whole_number(text: str, field: str, what: str) -> int | None:
    """``text`` as an int; "" → None (the field left empty means the default)."""
    if text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise Invalid(f"{what} must be a whole number, not {text!r}", field=field) from None
    if abs(value) > MAX_INTEGER:
        raise Invalid(f"{what} {text} is far too large", field=field)
    return value


def errors_by_field(error: ApiError, hints: Mapping[str, str]) -> dict[str, str]:
    """{field: message}: the field the store named, else the field of the first hint the message contains (some
    store checks name no field, but their messages say what they are about), else the form as a whole ('')."""
    errors = dict(field_errors(error))
    if "" in errors:
        for hint, field in hints.items():
            if hint in error.message:
                return {field: error.message}
    return errors
