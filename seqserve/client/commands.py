"""`seqserve stream` and `seqserve sessions`: the client from a shell, rows in, outputs out."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import numpy as np

from seqserve.client._sync import Client, Session
from seqserve.client.errors import SeqServeClientError

DEFAULT_URL = "http://127.0.0.1:8000"


def client_of(url: str | None, api_key: str | None) -> Client:
    return Client(
        url or os.environ.get("SEQSERVE_URL", DEFAULT_URL),
        api_key=api_key or os.environ.get("SEQSERVE_API_KEY"),
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_rows(lines: Iterator[str], features: list[str]) -> Iterator[list[float]]:
    """Rows of floats; a header row (any non-number) picks the model's feature columns by
    name when all are there, else every column is a feature."""
    picks: list[int] | None = None
    for n, row in enumerate(csv.reader(lines)):
        if not row or row[0].startswith("#"):
            continue
        if picks is None:
            picks = list(range(len(row)))
            if not all(_is_number(c) for c in row):
                names = [c.strip() for c in row]
                if features and set(features) <= set(names):
                    picks = [names.index(f) for f in features]
                continue
        try:
            yield [float(row[i]) for i in picks]
        except (ValueError, IndexError):
            raise ValueError(f"line {n + 1}: not a row of {len(picks)} numbers: {row}") from None


def json_rows(lines: Iterator[str]) -> Iterator[Any]:
    """Each line a timestep `[f, ..]`, a chunk `[[f, ..], ..]` or `{"inputs": ...}`."""
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {n + 1}: not JSON ({e.msg})") from None
        yield value["inputs"] if isinstance(value, dict) else value


class Progress:
    """A one-line progress bar on stderr, for input read from a file of known size."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.done, self.out = max(total, 1), 0, out

    def advance(self, n: int) -> None:
        self.done += n
        filled = int(30 * min(self.done / self.total, 1.0))
        print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done} rows", end="", file=self.out)

    def close(self) -> None:
        print(file=self.out)


def _writer(kind: str, out: TextIO, names: list[str]) -> Any:
    if kind == "jsonl":

        def write(label: str, step: int, values: np.ndarray) -> None:
            out.write(json.dumps({label: values.tolist(), "step": step}) + "\n")

        return write
    rows = csv.writer(out, lineterminator="\n")
    rows.writerow(["kind", "step", *names])

    def write_csv(label: str, step: int, values: np.ndarray) -> None:
        rows.writerow([label, step, *(f"{v:.9g}" for v in values)])

    return write_csv


def run_stream(
    client: Client,
    source: TextIO,
    out: TextIO,
    *,
    model: str | None,
    session_id: str | None,
    in_format: str | None,
    out_format: str | None,
    chunk: int,
    forecast: int | None,
    progress: Progress | None,
    delete: bool,
) -> Session:
    """Step every row of `source` through one session (new, or `session_id`); print outputs."""
    session = client.session(session_id) if session_id else client.create_session(str(model))
    meta = client.request("GET", f"/v1/models/{session.model}")
    features = [str(f.get("name")) for f in meta.get("features", []) if isinstance(f, dict)]
    names = [str(o.get("name")) for o in meta.get("outputs", []) if isinstance(o, dict)]
    print(f"session {session.id} at step {session.current_step}", file=sys.stderr)
    lines = iter(source)
    first = next(lines, "")
    while first and not first.strip():
        first = next(lines, "")
    kind = in_format or ("jsonl" if first.lstrip()[:1] in "[{" else "csv")
    rest = _prepend(first, lines)
    rows = json_rows(rest) if kind == "jsonl" else csv_rows(rest, features)
    write = None
    step = session.current_step
    try:
        for outputs in session.stream(rows, max_steps=chunk):
            if write is None:
                width = outputs.shape[1]
                names = names if len(names) == width else [f"y{k}" for k in range(width)]
                write = _writer(out_format or kind, out, names)
            for row in outputs:
                write("output", step, row)
                step += 1
            if progress is not None:
                progress.advance(len(outputs))
        if forecast:
            ahead = session.forecast(forecast)
            if write is None:
                write = _writer(
                    out_format or kind, out, names or [f"y{k}" for k in range(ahead.shape[1])]
                )
            for k, row in enumerate(ahead):  # forecast rows: step = steps ahead, 1..N
                write("forecast", k + 1, row)
    finally:
        if progress is not None:
            progress.close()
        if delete:
            session.delete()
    return session


def _prepend(first: str, rest: Iterator[str]) -> Iterator[str]:
    if first:
        yield first
    yield from rest


def stream_main(args: Any) -> int:
    if not args.model and not args.session:
        print("give --model (a new session) or --session ID", file=sys.stderr)
        return 2
    progress = None
    try:
        source: TextIO
        if args.file and args.file != "-":
            source = open(args.file, encoding="utf-8")  # noqa: SIM115 (closed below)
            if not args.quiet:
                with open(args.file, "rb") as f:
                    total = sum(1 for line in f if line.strip())
                progress = Progress(total, sys.stderr)
        else:
            source = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
    except OSError as e:
        print(f"cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        with client_of(args.url, args.api_key) as client:
            run_stream(
                client,
                source,
                sys.stdout,
                model=args.model,
                session_id=args.session,
                in_format=args.format,
                out_format=args.output,
                chunk=args.chunk,
                forecast=args.forecast,
                progress=progress,
                delete=args.delete,
            )
    except (SeqServeClientError, ValueError) as e:
        print(f"seqserve stream: {e}", file=sys.stderr)
        return 1
    finally:
        source.close()
    return 0


def sessions_main(args: Any) -> int:
    try:
        with client_of(args.url, args.api_key) as client:
            if args.action == "list":
                for view in client.sessions():
                    print(json.dumps(view))
            elif args.action == "show":
                for sid in args.ids:
                    print(json.dumps(client.session(sid).info))
            else:
                for sid in args.ids:
                    client.session(sid).delete()
                    print(f"deleted {sid}")
    except SeqServeClientError as e:
        print(f"seqserve sessions: {e}", file=sys.stderr)
        return 1
    return 0
