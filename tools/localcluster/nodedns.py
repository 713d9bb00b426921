"""The real node's cluster DNS: CoreDNS's Corefile, and a DNS client small enough to ask it.

CoreDNS runs on the host (node.py starts it, like kubelet) and answers on the real
node's bridge address only. It knows the cluster's names and nothing else: there is no
upstream to forward to from here, so every other name gets NXDOMAIN at once instead of
a wait for a timeout. Why each choice: docs/real-node.md, "Cluster DNS".
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

DOMAIN = "cluster.local"
# What `up` asks for before it calls CoreDNS ready: the API server's own Service.
PROBE = f"kubernetes.default.svc.{DOMAIN}"
NXDOMAIN = 3


def corefile(address: str, kubeconfig: Path, health_port: int) -> str:
    """The cluster's zones from the API server, and NXDOMAIN for the rest. `bind` keeps both
    blocks off every other address; `health` would take :8080 on all of them if not told."""
    return f"""{DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {address}
    errors
    health 127.0.0.1:{health_port}
    kubernetes {DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
    }}
    cache 30
}}

.:53 {{
    bind {address}
    errors
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _question(name: str) -> bytes:
    labels = name.rstrip(".").split(".")
    return b"".join(bytes([len(p)]) + p.encode() for p in labels) + b"\0"


def _skip_name(reply: bytes, offset: int) -> int:
    while reply[offset] != 0:
        if reply[offset] & 0xC0 == 0xC0:  # a pointer ends the name
            return offset + 2
        offset += 1 + reply[offset]
    return offset + 1


def _parse(reply: bytes, qid: int) -> tuple[int, list[str]]:
    rid, flags, qdcount, ancount = struct.unpack(">HHHH", reply[:8])
    if rid != qid:
        raise OSError(f"a reply to another query ({rid}, not {qid})")
    offset = 12
    for _ in range(qdcount):
        offset = _skip_name(reply, offset) + 4
    addresses = []
    for _ in range(ancount):
        offset = _skip_name(reply, offset)
        rtype, _class, _ttl, length = struct.unpack(">HHIH", reply[offset : offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            addresses.append(socket.inet_ntoa(reply[offset : offset + 4]))
        offset += length
    return flags & 0xF, addresses


def query(
    name: str, server: str, *, tcp: bool = False, timeout: float = 2
) -> tuple[int, list[str]]:
    """Ask `server` for the A records of `name`: the reply's rcode and its addresses."""
    qid = random.randrange(1 << 16)
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # recursion desired, 1 question
    packet = header + _question(name) + struct.pack(">HH", 1, 1)  # A, IN
    if tcp:
        with socket.create_connection((server, 53), timeout=timeout) as s:
            s.sendall(struct.pack(">H", len(packet)) + packet)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
                chunk = s.recv(4096)
                if not chunk:
                    raise OSError("the connection closed before the reply ended")
                data += chunk
            return _parse(data[2:], qid)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, (server, 53))
        return _parse(s.recv(4096), qid)


def wait_ready(address: str, alive: Callable[[], bool], log: Path, timeout: float = 30) -> None:
    """Until CoreDNS answers the probe with an address: its kubernetes plugin has then read
    the Services from the API server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rcode, addresses = query(PROBE, address, timeout=0.5)
            if rcode == 0 and addresses:
                return
        except OSError:
            pass
        if not alive():
            raise RuntimeError(f"CoreDNS exited: see {log}")
        time.sleep(0.2)
    raise TimeoutError(f"CoreDNS did not answer for {PROBE} in {timeout:.0f} s: see {log}")
