"""llama.cpp's RPC backend: lend this machine's CPU/GPU to another llamadesk, or borrow others'.

llama-cpp-python binds only `llama_supports_rpc()`, but a build with `-DGGML_RPC=on` links the RPC
backend into libggml, and ggml's public C API reaches it: `ggml_backend_reg_by_name("RPC")`, then
`ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_add_server")` (what llama.cpp's own
`--rpc` does in common/arg.cpp) and `ggml_backend_register` make each server's devices ordinary
llama.cpp devices; llama_model_load puts RPC devices first and splits layers across them.
`ggml_backend_rpc_start_server` (same route) is the server side, what llama.cpp's rpc-server runs.

ggml aborts the whole process when a server cannot be reached or speaks another protocol
version, so every endpoint is first checked here with the protocol's own HELLO exchange.
"""

from __future__ import annotations

import ctypes
import ipaddress
import shlex
import socket
import struct
import sys
import threading
from collections.abc import Sequence

import llama_cpp

from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.core.rpc_endpoints import Endpoint
from llamadesk.app.engine.devices import _libggml

# The wire format of the RPC protocol in the bundled llama.cpp (ggml-rpc.cpp, protocol 7.x):
# request  = cmd (u8) | size (u64) | payload; HELLO's payload is the client's 24 capability bytes
# response = size (u64) | major u8 | minor u8 | patch u8 | pad u8 | 24 capability bytes
RPC_CMD_HELLO = 14
RPC_PROTO_MAJOR = 7
RPC_CONN_CAPS_SIZE = 24
PROBE_TIMEOUT_S = 5.0
REBUILD_HINT = (
    f'rebuild llama-cpp-python with the RPC backend: CMAKE_ARGS="-DGGML_RPC=on" {shlex.quote(sys.executable)} '
    f"-m pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python=={llama_cpp.__version__}"
)

_registered: set[str] = set()  # endpoints already added: adding twice would duplicate devices
_lock = threading.Lock()


def rpc_supported() -> bool:
    """Whether the installed llama.cpp build has the RPC backend."""
    return bool(llama_cpp.llama_supports_rpc())


def probe(endpoint: Endpoint) -> tuple[int, int, int]:
    """Connect and exchange HELLO; the server's protocol version, or LlamadeskError saying why not."""
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=PROBE_TIMEOUT_S) as sock:
            sock.sendall(struct.pack("<BQ", RPC_CMD_HELLO, RPC_CONN_CAPS_SIZE) + bytes(RPC_CONN_CAPS_SIZE))
            reply = _receive(sock, 8 + 4 + RPC_CONN_CAPS_SIZE)
    except OSError as err:
        raise LlamadeskError(
            f"cannot reach the RPC server at {endpoint} ({err.strerror or err}); start one there with "
            f"`llamadesk rpc-server --host 0.0.0.0 --port {endpoint.port}` (or llama.cpp's rpc-server)"
        ) from err
    if reply is None:
        raise LlamadeskError(
            f"the RPC server at {endpoint} closed the connection during the handshake: it runs another "
            "llama.cpp version; use the same llama-cpp-python version on both machines"
        )
    (size,) = struct.unpack_from("<Q", reply)
    major, minor, patch = reply[8], reply[9], reply[10]
    if size != 4 + RPC_CONN_CAPS_SIZE or major != RPC_PROTO_MAJOR:
        raise LlamadeskError(
            f"the RPC server at {endpoint} speaks protocol {major}.{minor}.{patch}, this build {RPC_PROTO_MAJOR}.x; "
            "use the same llama-cpp-python version on both machines"
        )
    return major, minor, patch


def _receive(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _rpc_function(name: str, restype, argtypes):
    lib = _libggml()
    lib.ggml_backend_reg_by_name.restype = ctypes.c_void_p
    lib.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    reg = lib.ggml_backend_reg_by_name(b"RPC")
    address = lib.ggml_backend_reg_get_proc_address(reg, name.encode()) if reg else None
    if not address:
        raise LlamadeskError(f"this llama.cpp build has no RPC backend; {REBUILD_HINT}")
    return ctypes.CFUNCTYPE(restype, *argtypes)(address)


def add_servers(endpoints: Sequence[Endpoint]) -> None:
    """Make each server's devices available to the next model load (once per process)."""
    if not endpoints:
        return
    if not rpc_supported():
        raise LlamadeskError(
            "RPC servers (--rpc, or load.json's rpc) need a llama.cpp build with the RPC backend, and this one "
            f"has none; {REBUILD_HINT}"
        )
    add_server = _rpc_function("ggml_backend_rpc_add_server", ctypes.c_void_p, [ctypes.c_char_p])
    lib = _libggml()
    lib.ggml_backend_register.restype = None
    lib.ggml_backend_register.argtypes = [ctypes.c_void_p]
    with _lock:
        for endpoint in endpoints:
            if str(endpoint) in _registered:
                continue
            probe(endpoint)
            reg = add_server(str(endpoint).encode())
            if not reg:
                raise LlamadeskError(f"the RPC server at {endpoint} offers no devices")
            lib.ggml_backend_register(reg)
            _registered.add(str(endpoint))


def serve(host: str, port: int, threads: int, cache_dir: str | None = None) -> None:
    """Run an RPC server on this machine's best device until the process ends (blocks).

    The server trusts every client completely: llama.cpp's RPC protocol has no authentication.
    """
    if not rpc_supported():
        raise LlamadeskError(f"rpc-server needs a llama.cpp build with the RPC backend; {REBUILD_HINT}")
    start = _rpc_function(
        "ggml_backend_rpc_start_server",
        None,
        [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)],
    )
    lib = _libggml()
    lib.ggml_backend_dev_by_type.restype = ctypes.c_void_p
    lib.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    # A GPU when the build has one, else the CPU (ggml_backend_dev_type: 0 CPU, 1 GPU).
    device = lib.ggml_backend_dev_by_type(1) or lib.ggml_backend_dev_by_type(0)
    devices = (ctypes.c_void_p * 1)(device)
    endpoint = str(Endpoint(host, port))
    # The server loop never returns; running it on a daemon thread keeps Ctrl-C working.
    thread = threading.Thread(
        target=start,
        args=(endpoint.encode(), cache_dir.encode() if cache_dir else None, threads, 1, devices),
        daemon=True,
    )
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    raise LlamadeskError(f"the RPC server on {endpoint} stopped (is the port already in use?)")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
