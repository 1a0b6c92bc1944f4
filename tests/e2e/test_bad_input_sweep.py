"""Hostile input against a real server: every bad request gets a 4xx within 5 s, and neither
the target session nor a running V2 sequence changes (issue #12's sweep)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from scripts.launch import ServerProcess
from tests.e2e.conftest import StartServer

LIMIT_S = 5.0
BIG = 2**64
DEEP = "[" * 100_000 + "]" * 100_000


@dataclass(frozen=True)
class Bad:
    name: str
    method: str
    path: str  # "{sid}" is the target session, "{m}" the model
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _v2(inputs: list[dict[str, Any]], **parameters: Any) -> bytes:
    return _json({"inputs": inputs, "parameters": parameters})


def _x(shape: list[Any], data: Any, datatype: str = "FP32") -> dict[str, Any]:
    return {"name": "x", "shape": shape, "datatype": datatype, "data": data}


def v1_cases() -> Iterator[Bad]:
    steps = "/v1/sessions/{sid}/steps"
    for name, body in {
        "not json": b"{inputs: [[1]]",
        "empty": b"",
        "json null": b"null",
        "no inputs": b"{}",
        "inputs string": _json({"inputs": "315"}),
        "inputs flat": _json({"inputs": [315.0]}),
        "inputs ragged": _json({"inputs": [[315.0], []]}),
        "inputs empty": _json({"inputs": []}),
        "two features": _json({"inputs": [[315.0, 1.0]]}),
        "NaN literal": b'{"inputs": [[NaN]]}',
        "Infinity literal": b'{"inputs": [[Infinity]]}',
        "overflowing float": b'{"inputs": [[1e309]]}',
        "huge float": _json({"inputs": [[1e300]]}),
        "bool input": _json({"inputs": [[True]]}),
        "string input": _json({"inputs": [["315"]]}),
        "deep nesting": ('{"inputs": ' + DEEP + "}").encode(),
        "too many steps": _json({"inputs": [[315.0]] * 5000}),
        "step negative": _json({"inputs": [[315.0]], "step": -1}),
        "step 2^53": _json({"inputs": [[315.0]], "step": 2**53}),
        "step 2^63": _json({"inputs": [[315.0]], "step": 2**63}),
        "step 2^64": _json({"inputs": [[315.0]], "step": BIG}),
        "step 10^5000": b'{"inputs": [[315.0]], "step": 1' + b"0" * 5000 + b"}",
        "step float": _json({"inputs": [[315.0]], "step": 1.5}),
        "step string": _json({"inputs": [[315.0]], "step": "x"}),
        "unicode keys": _json({"inpüts\u202e": [[315.0]], "\ud7ff": 1}),
        "lone surrogate": b'{"inputs": [[315.0]], "note": "\\ud800"}',
        "invalid utf-8": b'{"inputs": [[315.0]], "note": "\xff\xfe"}',
    }.items():
        yield Bad(f"step: {name}", "POST", steps, body)
    one = _json({"inputs": [[315.0]]})
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        yield Bad(f"step: content-type {ctype}", "POST", steps, one, {"content-type": ctype})
    yield Bad("step: no content-type", "POST", steps, one, {})
    yield Bad(
        "step: gzip body not allowed",
        "POST",
        steps,
        gzip.compress(one),
        {"content-type": "application/json", "content-encoding": "gzip"},
    )
    yield Bad("step: body over the cap", "POST", steps, b"[" + b"0," * 3_000_000 + b"0]")
    yield Bad("step: unknown session", "POST", "/v1/sessions/nope/steps", one)
    yield Bad("step: long session id", "POST", "/v1/sessions/" + "a" * 10_000 + "/steps", one)
    yield Bad("step: GET", "GET", steps, None)
    forecast = "/v1/sessions/{sid}/forecast"
    for horizon in (0, -1, 10**6, BIG, "3", None, 1.5, "10^5000"):
        body = b'{"horizon": 1' + b"0" * 5000 + b"}" if horizon == "10^5000" else None
        yield Bad(
            f"forecast: horizon {str(horizon)[:12]}",
            "POST",
            forecast,
            body or _json({"horizon": horizon}),
        )
    for horizon in ("abc", "0", "-5", str(BIG), "1" * 5000, "1e3"):
        yield Bad(
            f"forecast stream: horizon {horizon[:12]}",
            "GET",
            "/v1/sessions/{sid}/forecast/stream?horizon=" + horizon,
            None,
            {},
        )
    for name, body in {
        "unknown model": {"model": "nope"},
        "model not a string": {"model": 5},
        "version superscript": {"model": "{m}", "version": "²"},
        "version 5000 digits": {"model": "{m}", "version": "1" * 5000},
        "idle ttl negative": {"model": "{m}", "idle_ttl_s": -1},
        "ttl string": {"model": "{m}", "ttl_s": "x"},
        "state garbage": {"state": {"format": "nope"}},
        "state not object": {"state": [1, 2]},
        "state step 2^63": {"state": "{state:9223372036854775807}"},
        "state step 2^64": {"state": "{state:18446744073709551616}"},
        "state step 2^53": {"state": "{state:9007199254740992}"},
        "state step negative": {"state": "{state:-1}"},
    }.items():
        yield Bad(f"create: {name}", "POST", "/v1/sessions", _json(body))
    for name, body in {
        "ragged": {"inputs": [[[1.0]], [[1.0], []]]},
        "empty": {"inputs": []},
        "non-finite": {"inputs": [[[1e309]]]},
        "horizon huge": {"inputs": [[[315.0]]], "horizon": BIG},
        "horizon negative": {"inputs": [[[315.0]]], "horizon": -3},
        "version superscript": {"inputs": [[[315.0]]], "version": "²"},
    }.items():
        yield Bad(f"predict: {name}", "POST", "/v1/models/{m}/predict", _json(body))
    yield Bad("list: limit 2^64", "GET", f"/v1/sessions?limit={BIG}", None, {})
    yield Bad("list: limit -1", "GET", "/v1/sessions?limit=-1", None, {})
    yield Bad("get: unknown session", "GET", "/v1/sessions/" + "x" * 27, None, {})
    yield Bad("delete: unknown session", "DELETE", "/v1/sessions/" + "x" * 27, None, {})
    yield Bad("model: unknown", "GET", "/v1/models/%F0%9F%92%A5", None, {})


def v2_cases() -> Iterator[Bad]:
    infer = "/v2/models/{m}/infer"
    seq = {"sequence_id": 77}
    for name, body in {
        "not json": b'{"inputs": [',
        "no inputs": _json({}),
        "inputs not a list": _json({"inputs": {"x": 1}}),
        "unknown datatype": _v2([_x([1, 1, 1], [315.0], "FP17")], **seq),
        "shape vs data": _v2([_x([1, 2, 1], [315.0], "FP32")], **seq),
        "negative shape": _v2([_x([1, -1, 1], [315.0])], **seq),
        "huge shape": _v2([_x([BIG, BIG, 1], [315.0])], **seq),
        "shape 2^62": _v2([_x([1, 2**62, 1], [315.0])], **seq),
        "string data": _v2([_x([1, 1, 1], ["315"])], **seq),
        "NaN data": b'{"inputs": [{"name": "x", "shape": [1, 1, 1], "datatype": "FP32", '
        b'"data": [NaN]}], "parameters": {"sequence_id": 77}}',
        "overflow data": b'{"inputs": [{"name": "x", "shape": [1, 1, 1], "datatype": "FP32", '
        b'"data": [1e309]}], "parameters": {"sequence_id": 77}}',
        "wrong input name": _v2([{**_x([1, 1, 1], [315.0]), "name": "h0"}], **seq),
        "sequence id float": _v2([_x([1, 1, 1], [315.0])], sequence_id=1.5),
        "sequence id list": _v2([_x([1, 1, 1], [315.0])], sequence_id=[77]),
        "sequence id 2^64": _v2([_x([1, 1, 1], [315.0])], sequence_id=BIG),
        "sequence id -1": _v2([_x([1, 1, 1], [315.0])], sequence_id=-1),
        "sequence batch 2": _v2([_x([2, 1, 1], [315.0, 315.0])], **seq),
        "sequence start string": _v2([_x([1, 1, 1], [315.0])], sequence_id=77, sequence_end="x"),
        "triton parameter": _v2([_x([1, 1, 1], [315.0])], sequence_id=77, triton_enable=True),
        "deep nesting": ('{"inputs": ' + DEEP + "}").encode(),
    }.items():
        yield Bad(f"v2 infer: {name}", "POST", infer, body)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 1, 1],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 4},
                }
            ],
            "parameters": seq,
        }
    ).encode()
    four = np.float32(315).tobytes()
    binary = {"content-type": "application/octet-stream"}
    for name, length in {
        "header length negative": "-1",
        "header length too big": str(len(header) + 100),
        "header length not a number": "abc",
        "header length superscript": "²",
        "header length 5000 digits": "1" * 5000,
    }.items():
        yield Bad(
            f"v2 binary: {name}",
            "POST",
            infer,
            header + four,
            {**binary, "inference-header-content-length": length},
        )
    short = header.replace(b'"binary_data_size": 4', b'"binary_data_size": 40')
    yield Bad(
        "v2 binary: data shorter than declared",
        "POST",
        infer,
        short + four,
        {**binary, "inference-header-content-length": str(len(short))},
    )
    valid = _v2([_x([1, 1, 1], [315.0])], **seq)
    yield Bad(
        "v2 gzip: garbage",
        "POST",
        infer,
        b"\x1f\x8b" + b"garbage" * 10,
        {"content-type": "application/json", "content-encoding": "gzip"},
    )
    yield Bad(
        "v2 gzip: bomb",
        "POST",
        infer,
        gzip.compress(b" " * (64 << 20)),
        {"content-type": "application/json", "content-encoding": "gzip"},
    )
    yield Bad(
        "v2 gzip: many members",
        "POST",
        infer,
        gzip.compress(b"") * 20_000 + gzip.compress(valid),
        {"content-type": "application/json", "content-encoding": "gzip"},
    )
    yield Bad(
        "v2 deflate: garbage",
        "POST",
        infer,
        zlib.compress(valid)[:-6],
        {"content-type": "application/json", "content-encoding": "deflate"},
    )
    yield Bad(
        "v2: unknown encoding",
        "POST",
        infer,
        valid,
        {"content-type": "application/json", "content-encoding": "br"},
    )
    for version in ("²", "1" * 5000, "0x1", "-1"):
        yield Bad(
            f"v2: version {version[:8]}",
            "POST",
            f"/v2/models/{{m}}/versions/{version}/infer",
            valid,
        )
        yield Bad(
            f"v2: ready of version {version[:8]}",
            "GET",
            f"/v2/models/{{m}}/versions/{version}/ready",
            None,
            {},
        )
    yield Bad(
        "v2: pinned sequence on another version", "POST", "/v2/models/{m}/versions/1/infer", valid
    )
    yield Bad("v2: unknown model", "POST", "/v2/models/nope/infer", valid)


def all_cases() -> list[Bad]:
    return [*v1_cases(), *v2_cases()]


def forge_checksum(doc: dict[str, Any]) -> dict[str, Any]:
    """Recompute a state document's checksum, as anyone can (it guards against accidents)."""
    digest = hashlib.sha256(f"{doc['model']}\0{doc['version']}\0{doc['step']}".encode())
    blobs = [base64.b64decode(t["data"]) for t in doc["tensors"].values()]
    blobs += [np.asarray(doc[k], "<f8").tobytes() for k in ("prev_x", "last_y")]
    for blob in blobs:
        digest.update(len(blob).to_bytes(8, "little"))
        digest.update(blob)
    return {**doc, "checksum": digest.hexdigest()}


class Target:
    """A v1 session and a V2 sequence, with their state documents as seen before the sweep."""

    def __init__(self, server: ServerProcess) -> None:
        self.client = httpx.Client(base_url=server.url, timeout=LIMIT_S)
        self.model = "diffed"
        created = self.client.post("/v1/sessions", json={"model": self.model, "version": "2"})
        assert created.status_code == 201, created.text
        self.sid = created.json()["id"]
        for k in range(3):
            r = self.client.post(
                f"/v1/sessions/{self.sid}/steps", json={"inputs": [[315.0 + k]], "step": k}
            )
            assert r.status_code == 200, r.text
        r = self.client.post(
            f"/v2/models/{self.model}/versions/2/infer",
            content=_v2([_x([1, 2, 1], [315.0, 316.0])], sequence_id=77, sequence_start=True),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 200, r.text
        self.sequence = next(
            s["id"]
            for s in self.client.get("/v1/sessions").json()["sessions"]
            if s["id"] != self.sid
        )
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        docs = {}
        for sid in (self.sid, self.sequence):
            r = self.client.get(f"/v1/sessions/{sid}/state")
            assert r.status_code == 200, r.text
            docs[sid] = r.json()
        return docs

    def state_doc(self, step: str) -> dict[str, Any]:
        """The target's exported state with `step` spliced in (a forged import)."""
        doc = json.loads(json.dumps(self.before[self.sid]))
        doc["step"] = int(step)
        return forge_checksum(doc)

    def render(self, bad: Bad) -> Bad:
        path = bad.path.replace("{sid}", self.sid).replace("{m}", self.model)
        body = bad.body
        if body is not None:
            body = body.replace(b"{m}", self.model.encode())
            for marker in (b'"{state:',):
                while marker in body:
                    start = body.index(marker)
                    end = body.index(b'}"', start)
                    doc = self.state_doc(body[start + len(marker) : end].decode())
                    body = body[:start] + _json(doc) + body[end + 2 :]
        return Bad(bad.name, bad.method, path, body, bad.headers)


def send(server: ServerProcess, bad: Bad) -> httpx.Response | str:
    """One bad request on a connection of its own: the answer, or why there was none."""
    try:
        with httpx.Client(base_url=server.url, timeout=LIMIT_S) as client:
            headers = [(k.encode(), v.encode()) for k, v in bad.headers.items()]
            return client.request(bad.method, bad.path, content=bad.body, headers=headers)
    except httpx.TimeoutException:
        return f"no answer in {LIMIT_S} s"
    except httpx.TransportError as exc:
        return f"connection failed: {exc!r}"


def verdict(r: httpx.Response | str) -> str | None:
    if isinstance(r, str):
        return r
    if not 400 <= r.status_code < 500:
        return f"{r.status_code} {r.text[:200]}"
    ctype = r.headers.get("content-type", "").split(";")[0]
    if ctype not in ("application/problem+json", "application/json"):
        return f"{r.status_code} with content-type {ctype}"
    return None


@pytest.mark.e2e
def test_no_bad_request_gets_a_5xx_or_changes_state(start_server: StartServer) -> None:
    server = start_server()
    target = Target(server)
    failures = []
    try:
        for case in all_cases():
            bad = target.render(case)
            if (problem := verdict(send(server, bad))) is not None:
                failures.append(f"{bad.name}: {problem}")
            if (now := target.snapshot()) != target.before:
                failures.append(f"{bad.name}: changed a session's state")
                target.before = now
    finally:
        target.client.close()
    assert not failures, "\n".join(failures)
    assert server.proc is not None
    assert server.proc.poll() is None


@pytest.mark.e2e
def test_bad_websocket_messages_change_nothing(start_server: StartServer) -> None:
    server = start_server()
    target = Target(server)
    url = server.url.replace("http://", "ws://") + f"/v1/sessions/{target.sid}/stream"
    messages: list[str | bytes] = [
        "not json",
        "null",
        json.dumps({"inputs": "x"}),
        json.dumps({"inputs": [[315.0, 1.0]]}),
        '{"inputs": [[NaN]]}',
        '{"inputs": [[1e309]]}',
        json.dumps({"inputs": [[315.0]], "step": BIG}),
        json.dumps({"inputs": [[315.0]], "step": 2**53}),
        json.dumps({"inputs": [[315.0]], "step": -1}),
        json.dumps({"inputs": [[315.0]], "id": BIG}),
        json.dumps({"inputs": [[315.0]], "id": 2**53}),
        json.dumps({"inputs": [[315.0]], "id": {"x": 1}}),
        '{"inputs": ' + DEEP + "}",
        b"\x00binary",
    ]

    async def sweep() -> list[str]:
        problems = []
        for message in messages:
            async with websockets.connect(url, open_timeout=LIMIT_S, max_size=None) as ws:
                await ws.send(message)
                try:
                    answer = await asyncio.wait_for(ws.recv(), LIMIT_S)
                except websockets.ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else None
                    if code is None or code < 1003 or code == 1011:
                        problems.append(f"{str(message)[:40]}: closed with {code}")
                    continue
                except TimeoutError:
                    problems.append(f"{str(message)[:40]}: no answer")
                    continue
                if "error" not in json.loads(answer):
                    problems.append(f"{str(message)[:40]}: answered {str(answer)[:80]}")
        return problems

    try:
        problems = asyncio.run(sweep())
        assert target.snapshot() == target.before
        assert target.client.get("/v1/sessions").status_code == 200
    finally:
        target.client.close()
    assert not problems, "\n".join(problems)


def test_the_sweep_covers_every_protocol() -> None:
    names = [case.name for case in all_cases()]
    assert len(names) == len(set(names))
    for prefix in (
        "step:",
        "forecast:",
        "forecast stream:",
        "create:",
        "predict:",
        "v2 infer:",
        "v2 binary:",
        "v2 gzip:",
    ):
        assert any(n.startswith(prefix) for n in names), prefix
