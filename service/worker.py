"""One worker of `--workers N`: the server on a listening socket inherited from the
supervisor (service/supervisor.py), its sessions in the Redis the supervisor names."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys

from seqserve.service.__main__ import configure_or_explain, load_or_explain, uvicorn_config
from seqserve.service.app import begin_drain, create_app
from seqserve.service.drain import DrainingServer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WORKER_HEADER = b"seqserve-worker"


class WorkerTag:
    """Adds `seqserve-worker: <pid>` to every HTTP response: which worker answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tag = (WORKER_HEADER, str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.tag]
            await send(message)

        await self.app(scope, receive, tagged)


class WorkerServer(DrainingServer):
    """Drains as the single server does; also when the supervisor is gone (killed with -9),
    so that no worker outlives it."""

    supervisor = 0

    async def on_tick(self, counter: int) -> bool:
        if self.supervisor and os.getppid() != self.supervisor:
            self.supervisor = 0  # once: a second exit would skip the drain delay
            self.handle_exit(signal.SIGTERM, None)
        return await super().on_tick(counter)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the inherited listening socket")
    parser.add_argument("--supervisor", type=int, default=0, help="the supervisor's pid")
    args = parser.parse_args(argv)
    settings = configure_or_explain()
    if settings is None:
        return 2
    models = load_or_explain(settings)
    if models is None:
        return 2
    app = create_app(settings, loaded=models)
    config = uvicorn_config(WorkerTag(app), settings)
    server = WorkerServer(config, lambda: begin_drain(app), settings.drain_delay_s)
    # the pid it was started by, not getppid() now: a supervisor killed while this worker
    # loaded its models has already left it to another parent
    server.supervisor = args.supervisor or os.getppid()
    server.run(sockets=[socket.socket(fileno=args.fd)])
    return 0 if server.started else 3


if __name__ == "__main__":
    sys.exit(main())
