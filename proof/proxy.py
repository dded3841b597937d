"""A loopback TCP proxy in front of redis-server, for faults a real Redis
will not produce on demand:

- ``silent``: accepts connections and reads, but never answers (a hung
  Redis, a black-holed network path);
- ``delay``: forwards both ways, holding every reply back ``delay`` seconds
  (a slow Redis, so that a small connection pool runs dry).
"""

from __future__ import annotations

import socket
import threading
import time

from tests.support.redis_server import free_port


class Proxy:
    def __init__(self, mode: str, target_port: int | None = None, delay: float = 0.0):
        if mode not in ("silent", "delay"):
            raise ValueError(mode)
        self.mode = mode
        self.target_port = target_port
        self.delay = delay
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(1024)
        self._listener = listener
        threading.Thread(target=self._accept, daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            self._track(downstream)
            if self.mode == "silent":
                threading.Thread(target=self._swallow, args=(downstream,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
                upstream.settimeout(None)
            except OSError:
                downstream.close()
                continue
            self._track(upstream)
            threading.Thread(target=self._pump, args=(downstream, upstream, 0.0), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream, self.delay), daemon=True).start()

    @staticmethod
    def _swallow(sock: socket.socket) -> None:
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
        finally:
            sock.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, delay: float) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if delay:
                    time.sleep(delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass
