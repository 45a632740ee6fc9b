"""A unix socket in front of the real Docker engine, to make the engine vanish on purpose: every
connection passes through to the engine until `cut`, which closes them all and removes the socket."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from urllib.parse import urlparse


class EngineProxy:
    def __init__(self, path: Path, engine_host: str):
        self.path, self.engine_host = path, engine_host
        self.docker_host = f"unix://{path}"
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(str(path))
        self._listener.listen()
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.path.unlink()
        self._listener.close()
        for connection in self._connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already
            connection.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # cut
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(urlparse(self.engine_host).path)
            self._connections += [client, engine]
            for source, target in ((client, engine), (engine, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)  # pass on a half-close: stdin's end
    except OSError:
        pass  # cut
