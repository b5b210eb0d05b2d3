"""Ports on loopback: one free now, several, whether one is, a block of consecutive free ones."""

import socket


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free now (held together while they are chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_block(count: int, within: tuple[int, int] | None = None) -> int:
    """The first of ``count`` consecutive ports free now (a camera simulator's cameras take one each): a free port
    alone may have a neighbour taken by any connection's own end. ``within`` (low, high): look only there, in
    steps of 500 (below the ephemeral range, no connection's own end lands); else near ports the kernel offers."""
    bases = range(within[0], within[1] - count, 500) if within else (free_port() for _ in range(50))
    for base in bases:
        if base + count < 65000 and all(port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports on loopback" + (f" within {within}" if within else ""))
