"""A TCP relay between clients and a controller that keeps every byte each way: what
someone on the network path would see."""

from __future__ import annotations

import socket
import threading


class Relay:
    """Listens on ``listen`` (host, port; port 0 picks one) and forwards each connection to ``target``."""

    def __init__(self, target: str, listen: tuple[str, int] = ("127.0.0.1", 0)):
        host, port = target.removeprefix("tcp://").rsplit(":", 1)
        self.target = (host, int(port))
        self.server = socket.create_server(listen)
        self.endpoint = f"tcp://{listen[0]}:{self.server.getsockname()[1]}"
        self.up, self.down = bytearray(), bytearray()  # client -> controller, controller -> client
        self.sockets: list[socket.socket] = [self.server]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.sockets += [conn, upstream]
            threading.Thread(target=self._pump, args=(conn, upstream, self.up), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, conn, self.down), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, seen: bytearray) -> None:
        try:
            while data := src.recv(1 << 16):
                with self.lock:
                    seen += data
                dst.sendall(data)
        except OSError:
            pass

    def captured(self) -> tuple[bytes, bytes]:
        """(everything clients sent, everything the controller sent) so far."""
        with self.lock:
            return bytes(self.up), bytes(self.down)

    def close(self) -> None:
        with self.lock:
            for sock in self.sockets:
                sock.close()
