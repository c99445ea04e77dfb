"""Ports chosen for Spark's daemons and UI: free, and never ones the kernel could hand out meanwhile."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from dynaspark.standalone import ephemeral_port_range, free_port


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_chosen_ports_lie_below_the_ephemeral_range_and_are_free() -> None:
    low, _ = ephemeral_port_range()
    ports = {free_port() for _ in range(20)}
    assert all(10000 <= p < low for p in ports), sorted(ports)
    assert len(ports) > 1  # random, so two runs side by side do not pick the same
    assert all(_bindable(p) for p in ports)


def test_ports_taken_below_the_range_are_skipped(tmp_path: Path) -> None:
    # The range leaves ports 10000-10100 below it; all but 10100 are held here.
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text("10101\t60999\n")
    with contextlib.ExitStack() as stack:
        for port in range(10000, 10100):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            with contextlib.suppress(OSError):  # already taken by someone else: taken all the same
                sock.bind(("127.0.0.1", port))
        chosen = {free_port(range_file) for _ in range(5)}
    assert chosen == {10100}


def test_an_unreadable_range_falls_back_to_linuxs_default(tmp_path: Path) -> None:
    assert ephemeral_port_range(tmp_path / "missing") == (32768, 60999)
    assert 10000 <= free_port(tmp_path / "missing") < 32768
