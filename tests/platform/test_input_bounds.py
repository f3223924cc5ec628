"""Values the database or the decoder cannot take are a clear 400, never a 500 (issue 19.9)."""

from __future__ import annotations

import pytest

from posturio.platform.inputs import MAX_JSON_DEPTH, has_nul, json_depth_exceeds


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize(
    "path",
    [
        "/api/policy/versions/22517984619228057600",
        "/api/policy/versions/2147483648",
        "/api/policy/versions/-1",
        "/api/investigations?status=%00",
        "/api/decisions?action=%00",
        "/api/decisions?status=open%00",
        "/api/audit?action=%00",
        "/api/decisions/%00",
        # Bounded only by the database (bigint): the global rule answers it.
        "/api/audit?before_seq=922337203685477580799",
    ],
)
async def test_out_of_range_or_nul_in_url_is_400(client, make_tenant, path):
    t = await make_tenant()
    r = await client.get(path, headers=t.admin_headers)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["request_id"] and error["code"] in ("invalid_request", "bad_request")


async def test_nul_in_a_json_body_is_400(client, make_tenant):
    t = await make_tenant()
    body = {"name": "docs", "kind": "directory", "config": {"path": "/srv/docs\u0000x"}}
    r = await client.post("/api/navigator/sources", json=body, headers=t.admin_headers)
    assert r.status_code == 400, r.text
    assert "NUL" in r.json()["error"]["message"]
    r = await client.post("/api/keys", json={"name": "a\u0000b"}, headers=t.admin_headers)
    assert r.status_code == 400, r.text


async def test_an_escaped_backslash_before_u0000_is_text_not_nul(client, make_tenant):
    t = await make_tenant()
    r = await client.post("/api/keys", json={"name": "path\\u0000"}, headers=t.admin_headers)
    assert r.status_code == 201, r.text
    assert r.json()["key"]["name"] == "path\\u0000"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
async def test_deeply_nested_json_is_400(client, make_tenant, depth):
    t = await make_tenant()
    r = await client.post(
        "/api/keys",
        content=nested(depth),
        headers={**t.admin_headers, "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert "nested" in r.json()["error"]["message"]


def test_depth_counts_structure_not_brackets_inside_strings():
    assert not json_depth_exceeds(nested(MAX_JSON_DEPTH))
    assert json_depth_exceeds(nested(MAX_JSON_DEPTH + 1))
    assert json_depth_exceeds(b"[" * 5_000 + b"]" * 5_000)
    # Many brackets, little depth: wide arrays and brackets in (escaped) strings.
    assert not json_depth_exceeds(b"[" + b"[[1]]," * 10_000 + b"[]]")
    assert not json_depth_exceeds(b'{"code": "' + b'[{\\"' * 10_000 + b'"}')
    # Depth that resumes across the scan's chunks still counts.
    assert json_depth_exceeds(b"[0," * 10_000 + b"[" * 200 + b"]" * 10_200)


def test_nul_escape_detection():
    assert has_nul(b'{"a": "x\\u0000"}')
    assert has_nul(b'{"a": "\\\\\\u0000"}')  # an escaped backslash, then a NUL
    assert not has_nul(b'{"a": "\\\\u0000"}')  # an escaped backslash, then text
    assert not has_nul(b'{"a": "u0000"}')
