"""`seqserve stream` and `seqserve sessions` end to end against a real server."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from scripts.launch import ServerProcess
from seqserve.client import Client
from tests.e2e.client.test_exactly_once import MODEL


def seqserve(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seqserve", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def readings(rows: int) -> np.ndarray:
    return np.random.default_rng(8).normal(0, 1, (rows, 3)).round(4)


def test_stream_a_csv_file_then_forecast(server: ServerProcess, tmp_path: Path) -> None:
    x = readings(25)
    path = tmp_path / "readings.csv"
    # a date column and the features out of order: the header picks them by name
    lines = ["date,s2,s0,s1"] + [
        f"2024-01-{k + 1:02d},{r[2]},{r[0]},{r[1]}" for k, r in enumerate(x)
    ]
    path.write_text("\n".join(lines) + "\n")
    done = seqserve(
        "stream",
        "--model",
        MODEL,
        "--url",
        server.url,
        str(path),
        "--forecast",
        "3",
        "--chunk",
        "4",
    )
    assert done.returncode == 0, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    kinds = [r["kind"] for r in table]
    assert kinds == ["output"] * 25 + ["forecast"] * 3
    assert [int(r["step"]) for r in table] == [*range(25), 1, 2, 3]
    got = np.array([[float(v) for k, v in r.items() if k not in ("kind", "step")] for r in table])
    with Client(server.url) as client:
        want = client.predict(MODEL, [x], horizon=3)
    np.testing.assert_allclose(got[:25], want["outputs"][0], atol=1e-5)
    np.testing.assert_allclose(got[25:], want["forecast"][0], atol=1e-5)
    assert "25 rows" in done.stderr  # the progress bar on a file
    session_id = re.search(r"session (\S+) at step 0", done.stderr)
    assert session_id is not None

    listed = seqserve("sessions", "list", "--url", server.url)
    assert session_id[1] in [json.loads(line)["id"] for line in listed.stdout.splitlines()]
    shown = seqserve("sessions", "show", session_id[1], "--url", server.url)
    assert json.loads(shown.stdout)["step"] == 25
    assert seqserve("sessions", "delete", session_id[1], "--url", server.url).returncode == 0
    gone = seqserve("sessions", "show", session_id[1], "--url", server.url)
    assert gone.returncode == 1
    assert "404" in gone.stderr or "410" in gone.stderr


def test_stream_json_lines_from_stdin_continues_a_session(server: ServerProcess) -> None:
    x = readings(6)
    with Client(server.url) as client:
        session = client.create_session(MODEL)
        head = session.step(x[:2])
        want = client.predict(MODEL, [x])["outputs"][0]
    stdin = json.dumps(x[2:4].tolist()) + "\n" + "\n".join(json.dumps(r) for r in x[4:].tolist())
    done = seqserve("stream", "--session", session.id, "--url", server.url, stdin=stdin + "\n")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["step"] for r in rows] == [2, 3, 4, 5]
    got = np.concatenate([head, np.array([r["output"] for r in rows])])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_stream_refuses_bad_rows_with_a_message(server: ServerProcess) -> None:
    done = seqserve(
        "stream", "--model", MODEL, "--url", server.url, "--delete", stdin="1,2,3\n1,x,3\n"
    )
    assert done.returncode == 1
    assert "line 2" in done.stderr
