"""`host:port[,host:port]`: the llama.cpp RPC servers a model is offloaded to, as written by a
user (--rpc, or load.json's "rpc"). Plain parsing, so settings can check the text without
loading llama.cpp (engine/rpc.py does the connecting)."""

from __future__ import annotations

from dataclasses import dataclass

from llamadesk.app.core.errors import BadInputError


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoints(text: str, setting: str = "--rpc") -> list[Endpoint]:
    """'host:port[,host:port]' -> endpoints; BadInputError names `setting` and the part that is wrong."""
    endpoints = []
    for part in (p.strip() for p in text.split(",")):
        host, sep, port = part.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadInputError(f"{setting} wants host:port[,host:port], and {part!r} is not host:port")
        endpoints.append(Endpoint(host, int(port)))
    return endpoints
