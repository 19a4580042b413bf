"""Property-based fuzzing of the write endpoints: whatever arrives, the answer is a 4xx (or
2xx) with a JSON ``detail``, never a 5xx or a traceback. Bounded to ~100 examples in all."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from api_helpers import MakeClient, drawing
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

VALID = drawing(120)
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
image_bytes = st.one_of(
    st.binary(max_size=2048),
    st.integers(0, len(VALID)).map(lambda n: VALID[:n]),  # truncated PNGs
    st.binary(min_size=1, max_size=64).map(lambda junk: VALID[:40] + junk + VALID[40:]),
)


def _assert_clean(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert "detail" in body
        assert "Traceback" not in response.text


@pytest.fixture
def fuzz_client(make_client: MakeClient) -> Iterator[TestClient]:
    # A small body limit so "huge" inputs are cheap to generate.
    with make_client(max_body_bytes=64 * 1024, max_pixels=2000 * 2000) as client:
        yield client


@FUZZ
@given(
    data=image_bytes,
    content_type=st.sampled_from(
        ["image/png", "image/jpeg", "text/plain", "application/octet-stream"]
    ),
    source=st.one_of(st.none(), st.text(max_size=8), st.sampled_from(["canvas", "upload", "api"])),
    drawing_id=st.one_of(st.none(), st.text(max_size=40), st.uuids().map(str)),
)
def test_multipart_fuzz(
    fuzz_client: TestClient, data: bytes, content_type: str, source, drawing_id
) -> None:  # type: ignore[no-untyped-def]
    form = {k: v for k, v in {"source": source, "drawing_id": drawing_id}.items() if v is not None}
    response = fuzz_client.post(
        "/api/predictions", files={"image": ("x", data, content_type)}, data=form
    )
    _assert_clean(response)


@FUZZ
@given(
    payload=st.one_of(
        json_values,
        st.fixed_dictionaries({"image": json_values}),
        st.fixed_dictionaries(
            {"image": image_bytes.map(lambda b: base64.b64encode(b).decode())},
            optional={"source": json_values, "drawing_id": json_values, "extra": json_values},
        ),
    )
)
def test_json_fuzz(fuzz_client: TestClient, payload: object) -> None:
    body = json.dumps(payload, allow_nan=True).encode()
    response = fuzz_client.post(
        "/api/predictions", content=body, headers={"content-type": "application/json"}
    )
    _assert_clean(response)


@FUZZ
@given(
    body=st.one_of(st.binary(max_size=1024), st.just(b"x" * (70 * 1024))),
    content_type=st.one_of(
        st.text(max_size=30),
        st.sampled_from(
            [
                "multipart/form-data",
                "multipart/form-data; boundary=zz",
                "application/json",
                "image/png",
            ]
        ),
    ),
)
def test_raw_body_and_content_type_fuzz(
    fuzz_client: TestClient, body: bytes, content_type: str
) -> None:
    try:
        headers = {"content-type": content_type.encode("latin-1").decode("latin-1")}
        headers["content-type"].encode("ascii")
    except UnicodeError:
        headers = {}
    response = fuzz_client.post("/api/predictions", content=body, headers=headers)
    _assert_clean(response)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path_id=st.one_of(st.uuids().map(str), st.text(alphabet="abcdef0123456789-", max_size=40)),
    payload=json_values,
)
def test_correction_and_read_fuzz(fuzz_client: TestClient, path_id: str, payload: object) -> None:
    url = f"/api/predictions/{path_id}" if path_id else "/api/predictions/x"
    _assert_clean(
        fuzz_client.patch(
            url, content=json.dumps(payload), headers={"content-type": "application/json"}
        )
    )
    _assert_clean(fuzz_client.get(url))
    _assert_clean(fuzz_client.get(f"{url}/image"))
