"""Established TCP connections between processes, read from ``/proc`` (Linux): how many
connections a server (PocketBase) holds with a client process tree (the gateway, its workers).
"""

from __future__ import annotations

import os
from pathlib import Path


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"{fd_dir}/{name}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _established() -> list[tuple[str, str, str]]:
    """(local, remote, inode) of every established TCP socket, addresses as /proc shows them."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01":  # ESTABLISHED
                rows.append((fields[1], fields[2], fields[9]))
    return rows


def connections_between(server_port: int, client_pid: int) -> int:
    """Connections the server on ``server_port`` holds, counted at the server's end, whose
    other end belongs to ``client_pid`` or one of its descendants."""
    rows = _established()
    ours = _socket_inodes(process_tree(client_pid))
    client_ends = {local for local, _, inode in rows if inode in ours}
    port = f":{server_port:04X}"
    return sum(1 for local, remote, _ in rows if local.endswith(port) and remote in client_ends)


def client_ends(server_port: int, client_pid: int) -> set[str]:
    """The client-side addresses of those connections (a replaced connection shows as a new
    address)."""
    rows = _established()
    ours = _socket_inodes(process_tree(client_pid))
    port = f":{server_port:04X}"
    return {local for local, remote, inode in rows if inode in ours and remote.endswith(port)}
