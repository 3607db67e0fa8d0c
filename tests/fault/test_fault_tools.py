"""The fault-injection tools themselves (tests/fault/faults.py), against a local echo server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from . import faults

pytestmark = pytest.mark.fault


@pytest.fixture
def echo() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # a severed connection ends here
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    stop.set()
    server.close()


def client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(0.5)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_proxy_forwards_and_counts(echo: int) -> None:
    """Bytes go through both ways and are counted per direction."""
    with faults.Proxy(echo) as proxy, client(proxy.port) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"hello"
        deadline = time.monotonic() + 2
        while proxy.forwarded("down") < 5 and time.monotonic() < deadline:
            time.sleep(0.01)  # the proxy counts a chunk just after it sent it
        assert proxy.forwarded("up") == 5 and proxy.forwarded("down") == 5


def test_blackhole_holds_bytes_and_heal_delivers_them(echo: int) -> None:
    """While dark nothing arrives (no error either); after heal everything arrives in order."""
    with faults.Proxy(echo) as proxy, client(proxy.port) as sock:
        proxy.blackhole()
        sock.sendall(b"one,")
        sock.sendall(b"two")
        with pytest.raises(TimeoutError):
            sock.recv(10)
        proxy.heal()
        assert recv_exactly(sock, 7) == b"one,two"


def test_new_connections_are_accepted_but_go_nowhere_while_dark(echo: int) -> None:
    """A connection made during a blackhole is accepted and reaches the target only on heal."""
    with faults.Proxy(echo) as proxy:
        proxy.blackhole()
        with client(proxy.port) as sock:
            sock.sendall(b"ping")
            with pytest.raises(TimeoutError):
                sock.recv(4)
            proxy.heal()
            assert recv_exactly(sock, 4) == b"ping"


def test_blackhole_after_n_bytes_cuts_mid_stream(echo: int) -> None:
    """blackhole_after(3, 'up') lets exactly three bytes through, then the link goes dark
    both ways; a heal delivers the rest."""
    with faults.Proxy(echo) as proxy, client(proxy.port) as sock:
        proxy.blackhole_after(3, way="up")
        sock.sendall(b"abcdef")
        with pytest.raises(TimeoutError):
            sock.recv(10)
        assert proxy.forwarded("up") == 3
        proxy.heal()
        assert recv_exactly(sock, 6) == b"abcdef"


def test_arm_fires_between_a_request_and_its_answer(echo: int) -> None:
    """arm(N, blackhole) lets the first chunk of N bytes through and holds its answer: the
    target got the request, the client hears nothing until a heal."""
    with faults.Proxy(echo) as proxy, client(proxy.port) as sock:
        proxy.arm(100, proxy.blackhole)
        sock.sendall(b"x" * 10)
        assert recv_exactly(sock, 10) == b"x" * 10  # small: not the request it waits for
        sock.sendall(b"y" * 200)
        with pytest.raises(TimeoutError):
            sock.recv(200)
        assert proxy.forwarded("up") == 210 and proxy.forwarded("down") == 10
        proxy.heal()
        assert recv_exactly(sock, 200) == b"y" * 200


def test_arm_with_a_delay_fires_on_a_timer(echo: int) -> None:
    """arm(N, action, delay=s) runs the action s seconds after the request went out."""
    fired = threading.Event()
    with faults.Proxy(echo) as proxy, client(proxy.port) as sock:
        proxy.arm(100, fired.set, delay=0.05)
        sock.sendall(b"y" * 200)
        recv_exactly(sock, 200)
        assert fired.wait(2)


def test_sever_resets_open_connections(echo: int) -> None:
    """sever() cuts open connections with a reset; the proxy still accepts new ones."""
    with faults.Proxy(echo) as proxy:
        sock = client(proxy.port)
        sock.sendall(b"x")
        recv_exactly(sock, 1)
        assert proxy.sever() == 1
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            sock.sendall(b"y")
            time.sleep(0.2)
            sock.sendall(b"y")
            if not sock.recv(1):
                raise ConnectionResetError
        sock.close()
        with client(proxy.port) as again:
            again.sendall(b"z")
            assert recv_exactly(again, 1) == b"z"


def test_firewall_drops_a_port_and_cleans_up(echo: int) -> None:
    """A dropped port times out (no refusal); the nftables table is gone afterwards."""
    if not faults.nft_available():
        pytest.skip("nftables needs root and nf_tables")
    import subprocess

    with faults.Firewall() as firewall:
        firewall.drop(echo)
        with pytest.raises(TimeoutError):
            socket.create_connection(("127.0.0.1", echo), timeout=0.5)
        with faults.Firewall():  # a second one (another test process) has its own chain
            pass
        with pytest.raises(TimeoutError):  # ... and leaving it kept this one's rules
            socket.create_connection(("127.0.0.1", echo), timeout=0.5)
    listed = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    assert firewall.chain not in listed
    with client(echo) as sock:
        sock.sendall(b"ok")
        assert recv_exactly(sock, 2) == b"ok"
