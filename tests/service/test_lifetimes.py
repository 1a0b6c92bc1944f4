"""TTLs (410 vs 404), admission caps (429 + Retry-After) and idle eviction; the wall clock is
a FakeClock moved by hand, so no test races the real one on a loaded machine."""

from __future__ import annotations

import time

from tests.service.clock import FakeClock
from tests.service.conftest import MakeClient, new_session, step


def test_idle_ttl_expires_to_410_and_is_counted(make_client: MakeClient, clock: FakeClock) -> None:
    client = make_client()
    sid = new_session(client, idle_ttl_s=30)["id"]
    other = new_session(client, idle_ttl_s=60)["id"]
    clock.advance(30.1)
    for method, path in (("GET", ""), ("POST", "/steps"), ("DELETE", "")):
        body = {"inputs": [[1.0]]} if method == "POST" else None
        r = client.request(method, f"/v1/sessions/{sid}{path}", json=body)
        assert r.status_code == 410, (method, path, r.text)
        assert r.json()["reason"] == "expired"
    assert client.get("/v1/sessions/never-existed").status_code == 404
    assert client.get(f"/v1/sessions/{other}").status_code == 200
    assert "seqserve_sessions_expired_total 1.0" in client.get("/metrics").text


def test_activity_refreshes_idle_ttl_but_not_absolute_ttl(
    make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client()
    sid = new_session(client, idle_ttl_s=40, ttl_s=90)["id"]
    for _ in range(3):  # 75 s in all, past the idle TTL: each step pushed it on
        clock.advance(25)
        assert step(client, sid, [[1.0]]).status_code == 200
    clock.advance(14.9)  # 89.9 s: idle since the last step for 14.9 s of its 40
    assert client.get(f"/v1/sessions/{sid}").status_code == 200
    clock.advance(0.2)  # 90.1 s: the absolute TTL ends it however recent the last step
    r = client.get(f"/v1/sessions/{sid}")
    assert r.status_code == 410
    assert r.json()["reason"] == "expired"


def test_sweeper_removes_expired_sessions(make_client: MakeClient, clock: FakeClock) -> None:
    client = make_client(sessions={"sweep_interval_s": 0.02})
    new_session(client, idle_ttl_s=10)
    kept = new_session(client, idle_ttl_s=60)["id"]
    clock.advance(11)
    # the gauge counts slots still held, so it only drops once a sweep has run; poll for it
    deadline = time.monotonic() + 30
    while "seqserve_sessions_active 1.0" not in client.get("/metrics").text:
        assert time.monotonic() < deadline, "no sweep freed the expired session"
        time.sleep(0.02)
    assert [s["id"] for s in client.get("/v1/sessions").json()["sessions"]] == [kept]


def test_ttl_requests_beyond_caps_are_refused(make_client: MakeClient) -> None:
    client = make_client(sessions={"max_idle_ttl_s": 60, "idle_ttl_s": 30})
    r = client.post("/v1/sessions", json={"model": "diffed", "idle_ttl_s": 61})
    assert r.status_code == 422
    assert r.json()["max_idle_ttl_s"] == 60


def test_session_cap_answers_429_with_retry_after(make_client: MakeClient) -> None:
    client = make_client(limits={"max_sessions": 2, "retry_after_s": 7})
    first = new_session(client)["id"]
    new_session(client)
    r = client.post("/v1/sessions", json={"model": "diffed"})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"
    assert r.json()["max_sessions"] == 2
    # the live sessions are untouched and a delete frees a place
    assert step(client, first, [[1.0]]).status_code == 200
    client.delete(f"/v1/sessions/{first}")
    assert client.post("/v1/sessions", json={"model": "diffed"}).status_code == 201


def test_state_bytes_cap(make_client: MakeClient) -> None:
    client = make_client()
    nbytes = client.get("/v1/models/diffed").json()["state_bytes"]
    capped = make_client(limits={"max_state_bytes": 3 * nbytes})
    for _ in range(3):
        new_session(capped)
    assert capped.post("/v1/sessions", json={"model": "diffed"}).status_code == 429
    assert f"seqserve_state_bytes {3.0 * nbytes}" in capped.get("/metrics").text


def test_idle_eviction_at_the_cap_takes_the_least_recently_used(
    make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client(limits={"max_sessions": 2}, sessions={"evict_idle_s": 20})
    old = new_session(client)["id"]
    busy = new_session(client)["id"]
    clock.advance(19)
    step(client, busy, [[1.0]])  # busy is recent from here on
    clock.advance(2)  # old has idled 21 s, past evict_idle_s; busy only 2 s
    assert client.post("/v1/sessions", json={"model": "diffed"}).status_code == 201
    r = client.get(f"/v1/sessions/{old}")
    assert r.status_code == 410
    assert r.json()["reason"] == "evicted"
    assert client.get(f"/v1/sessions/{busy}").status_code == 200
    # nobody else idles long enough: a live stream is never evicted silently
    assert client.post("/v1/sessions", json={"model": "diffed"}).status_code == 429
    assert "seqserve_sessions_evicted_total 1.0" in client.get("/metrics").text
