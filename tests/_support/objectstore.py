"""A real S3-compatible server on loopback for the object-storage tests, and a proxy to kill.

:class:`S3Server` runs moto's standalone server (``moto_server``, what s3fs's own
tests use) on a free loopback port, and stops it by PID. A client that must lose
the server in the middle of an upload talks to it through :func:`proxy`, run as its
own process: it forwards bytes and SIGKILLs itself once ``die_after`` bytes went
up, so the upload is cut at a known point while moto (and what it stores) lives on.

    python -m tests._support.objectstore proxy LISTEN_PORT TARGET_PORT [DIE_AFTER_BYTES]
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests._support.support import REPO, free_port, script, wait_for_http


class S3Server:
    """moto's S3 server on 127.0.0.1; ``endpoint`` is its URL."""

    def __init__(self, log: Path) -> None:
        exe = script("moto_server")
        if exe is None:
            raise FileNotFoundError("moto_server (pip install 'moto[server]')")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=self._log, stderr=self._log
        )
        wait_for_http(f"{self.endpoint}/moto-api/", self.proc, "moto_server")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Proxy:
    """A proxy process in front of ``target_port``; it dies after ``die_after`` bytes up."""

    def __init__(self, target_port: int, die_after: int = 0, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests._support.objectstore", "proxy", str(self.port),
             str(target_port), str(die_after)],
            cwd=REPO,
        )  # fmt: skip
        wait_for_http(f"{self.endpoint}/moto-api/", self.proc, "the proxy")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def proxy(listen: int, target: int, die_after: int) -> None:
    """Forward 127.0.0.1:listen to 127.0.0.1:target; SIGKILL self after ``die_after`` bytes up."""
    sent = 0
    lock = threading.Lock()

    def pump(src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        nonlocal sent
        try:
            while data := src.recv(65536):
                if upstream and die_after:
                    with lock:
                        sent += len(data)
                        if sent >= die_after:
                            os.kill(os.getpid(), signal.SIGKILL)  # mid-upload, no goodbye
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for end in (src, dst):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    server = socket.create_server(("127.0.0.1", listen))
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection(("127.0.0.1", target))
        threading.Thread(target=pump, args=(client, upstream, True), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()


if __name__ == "__main__":
    if sys.argv[1] == "proxy":
        proxy(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0)
