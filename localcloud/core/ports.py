"""Free TCP ports on 127.0.0.1, for whoever starts local services: the CLI, tests, benchmarks.

A port counts as free when a socket with ``SO_REUSEADDR`` can bind it, as the local servers bind
(`localcloud.core.http`), so a port left in TIME_WAIT by a stopped server is free for the next one.
"""

from __future__ import annotations

import socket

HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 9410
"""The first of the local cloud's ports when none is asked for (OSS, MNS, IMM, FC, Tablestore follow)."""
_ATTEMPTS = 50


def _bound(port: int) -> socket.socket:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((HOST, port))
    except OSError:
        probe.close()
        raise
    return probe


def port_free(port: int) -> bool:
    """Whether a server could listen on `port` now."""
    try:
        _bound(port).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    """A port nothing listens on now (the system's choice)."""
    with _bound(0) as probe:
        return int(probe.getsockname()[1])


def free_port_base(count: int) -> int:
    """A port N with N..N+count-1 all free now (the local cloud takes ``--port-base N`` and the next ports)."""
    for _ in range(_ATTEMPTS):
        base = free_port()
        if base + count > 65536:
            continue
        held: list[socket.socket] = []
        try:
            for offset in range(count):
                held.append(_bound(base + offset))
            return base
        except OSError:
            continue
        finally:
            for probe in held:
                probe.close()
    raise RuntimeError(f"no {count} consecutive free ports on {HOST} after {_ATTEMPTS} tries")
