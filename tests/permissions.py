"""File permissions that hold even for root, so tests of read-only files mean something everywhere.

Tests often run as root (containers, CI), and root writes to a read-only file as if it were not:
the capability CAP_DAC_OVERRIDE overrides the file's mode. `permissions_enforced()` takes that
capability (and CAP_DAC_READ_SEARCH) out of the calling thread's effective set and puts it back
afterwards; for any other user the file modes apply already and it changes nothing. Files opened
inside the block keep the access they were opened with, so open what is under test inside it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator

_CAPABILITY_VERSION_3 = 0x20080522
_OVERRIDES = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _capabilities() -> tuple[ctypes.CDLL, _Header, ctypes.Array]:
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _Header(_CAPABILITY_VERSION_3, 0), (_Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    return libc, header, data


def _set_effective(effective: int) -> None:
    libc, header, data = _capabilities()
    data[0].effective = effective
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def drop_permission_overrides() -> None:
    """For the rest of this thread (a forked child's): file modes apply to root too."""
    if os.geteuid() == 0 and sys.platform == "linux":
        _set_effective(_capabilities()[2][0].effective & ~_OVERRIDES)
    _check_enforced()


@contextlib.contextmanager
def permissions_enforced() -> Iterator[None]:
    """Within the block, in this thread, file modes apply to root too."""
    if os.geteuid() != 0 or sys.platform != "linux":
        yield
        return
    before = _capabilities()[2][0].effective
    _set_effective(before & ~_OVERRIDES)
    try:
        _check_enforced()
        yield
    finally:
        _set_effective(before)


def _check_enforced() -> None:
    """A read-only file must refuse a write now, or a test of read-only files would test nothing."""
    with tempfile.TemporaryDirectory() as folder:
        probe = os.path.join(folder, "read-only")
        with open(probe, "w"):
            pass
        os.chmod(probe, 0o444)
        try:
            with open(probe, "a"):
                pass
        except PermissionError:
            return
        raise AssertionError("a read-only file accepted a write: file permissions are not enforced here")


_PR_CAPBSET_DROP = 24


def drop_permission_overrides_at_exec() -> None:
    """For subprocess's preexec_fn: file modes apply to the program the child runs, root too.

    At exec a root process gets back every capability of its bounding set, whatever its effective
    set was: the two overrides leave the bounding set (for this child only).
    """
    if os.geteuid() != 0 or sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_bound_by_file_modes(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a command for whom file modes apply, root too (drop_permission_overrides_at_exec); its output as text."""
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=drop_permission_overrides_at_exec
    )
