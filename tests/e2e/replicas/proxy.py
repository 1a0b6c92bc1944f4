"""A loopback TCP proxy to Redis that can hold back one command or delay one reply.

Armed with a marker (e.g. a script's SHA), it acts on the first command sent that contains
it: `delay_reply` holds that command's reply back (past the client's socket timeout, to play
a slow Redis); `hold_request` keeps the command from Redis until released (to let another
replica commit first). Threads, loopback only, every wait bounded.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

_WAIT_CAP_S = 30.0  # no wait outlives a stuck test


@dataclass
class Rule:
    marker: bytes
    delay_s: float = 0.0  # delay the reply by this much
    hold: bool = False  # keep the command until `release` is set
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class RedisProxy:
    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._rule: Rule | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []

    def url(self, query: str = "") -> str:
        return f"redis://127.0.0.1:{self.port}/0{query}"

    def start(self) -> RedisProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def delay_reply(self, marker: bytes, delay_s: float) -> Rule:
        return self._arm(Rule(marker, delay_s=delay_s))

    def hold_request(self, marker: bytes) -> Rule:
        return self._arm(Rule(marker, hold=True))

    def _arm(self, rule: Rule) -> Rule:
        with self._lock:
            self._rule = rule
        return rule

    def _take(self, data: bytes) -> Rule | None:
        with self._lock:
            rule = self._rule
            if rule is None or rule.marker not in data:
                return None
            self._rule = None
            return rule

    def stop(self) -> None:
        self._stopped.set()
        rule = self._rule
        if rule is not None:
            rule.release.set()
        self._listener.close()
        for sock in list(self._sockets):
            sock.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self._target, timeout=_WAIT_CAP_S)
            client.settimeout(None)
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            delays: list[float] = []  # reply delays owed on this connection
            threading.Thread(target=self._up, args=(client, upstream, delays), daemon=True).start()
            threading.Thread(
                target=self._down, args=(upstream, client, delays), daemon=True
            ).start()

    def _up(self, client: socket.socket, upstream: socket.socket, delays: list[float]) -> None:
        try:
            while data := client.recv(65536):
                rule = self._take(data)
                if rule is not None:
                    rule.reached.set()
                    if rule.hold:
                        rule.release.wait(_WAIT_CAP_S)
                    if rule.delay_s:
                        delays.append(rule.delay_s)
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()

    def _down(self, upstream: socket.socket, client: socket.socket, delays: list[float]) -> None:
        try:
            while data := upstream.recv(65536):
                if delays:
                    self._stopped.wait(min(delays.pop(), _WAIT_CAP_S))
                client.sendall(data)
        except OSError:
            pass
        finally:
            client.close()
