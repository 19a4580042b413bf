"""The in-memory form reader agrees with Starlette's streaming parser on what clients send,
and refuses malformed bodies with a FormError (which the API answers with 400)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import UploadFile
from starlette.requests import Request

from digits.api.forms import MAX_PARTS, FormError, parse_form


def encode(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    """The Content-Type and body httpx (the UI's client) sends for this form."""
    request = httpx.Request("POST", "http://x/", data=fields, files=files or None)
    return request.headers["content-type"], request.read()


def starlette_form(content_type: str, body: bytes) -> dict[str, bytes | str]:
    async def read() -> dict[str, bytes | str]:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {
            "type": "http",
            "method": "POST",
            "headers": [(b"content-type", content_type.encode("latin-1"))],
        }
        out: dict[str, bytes | str] = {}
        async with Request(scope, receive).form(max_files=1, max_fields=MAX_PARTS) as form:
            for name, value in form.items():
                out[name] = await value.read() if isinstance(value, UploadFile) else value
        return out

    return asyncio.run(read())


def ours(content_type: str, body: bytes) -> dict[str, bytes | str]:
    return {
        name: part.data if part.is_file else part.text()
        for name, part in parse_form(content_type, body).items()
    }


names = st.text(
    st.characters(codec="utf-8", exclude_characters='"\\\r\n\0'), min_size=1, max_size=8
)
values = st.text(st.characters(codec="utf-8", exclude_characters="\r\0"), max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    fields=st.dictionaries(names, values, min_size=1, max_size=4),
    file=st.one_of(st.none(), st.tuples(names, names, st.binary(max_size=300))),
)
def test_same_fields_as_starlette(
    fields: dict[str, str], file: tuple[str, str, bytes] | None
) -> None:
    files = {}
    if file is not None:  # multipart; plain fields alone go urlencoded
        name, filename, data = file
        fields.pop(name, None)
        files[name] = (filename, data)
    content_type, body = encode(fields, files)
    assert ours(content_type, body) == starlette_form(content_type, body)


def test_the_boundary_inside_a_file_only_counts_after_a_crlf() -> None:
    content = b"ab--zz--cd\n--zz\r\n"
    body = (
        b'--zz\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\n\r\n'
        + content
        + b"\r\n--zz--\r\n"
    )
    form = parse_form("multipart/form-data; boundary=zz", body)
    assert (
        form["image"].data
        == content
        == starlette_form("multipart/form-data; boundary=zz", body)["image"]
    )


VALID_TYPE, VALID = encode({"source": "canvas"}, {"image": ("d.png", b"PNGDATA")})
TWO_FILES = encode({}, {"image": ("a", b"1"), "other": ("b", b"2")})
MANY_FIELDS = encode({str(i): "x" for i in range(MAX_PARTS + 1)}, {"f": ("a", b"1")})


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("multipart/form-data", VALID, "boundary parameter"),
        ("multipart/form-data; boundary=" + "b" * 71, VALID, "boundary parameter"),
        (VALID_TYPE, b"no boundary here", "does not contain its boundary"),
        (VALID_TYPE, VALID[: len(VALID) // 2], "truncated|not terminated"),
        (VALID_TYPE, VALID[:-4], "truncated"),
        (VALID_TYPE, VALID.replace(b"Content-Disposition", b"Content-Dispositio"), "form-data"),
        (VALID_TYPE, VALID.replace(b"\r\n\r\n", b"\r\n", 1), "not terminated"),
        (*TWO_FILES, "too many"),
        (*MANY_FIELDS, "too many"),
        (
            "application/x-www-form-urlencoded",
            "&".join(f"k{i}=v" for i in range(MAX_PARTS + 1)).encode(),
            "too many",
        ),
    ],
    ids=[
        "no-boundary",
        "long-boundary",
        "boundary-absent",
        "cut-in-half",
        "no-closing",
        "no-disposition",
        "headers-unterminated",
        "two-files",
        "too-many-fields",
        "too-many-urlencoded",
    ],
)
def test_malformed_forms_are_refused(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(FormError, match=message):
        parse_form(content_type, body)
