"""A Hugging Face Hub stand-in served on 127.0.0.1, for testing code that talks to the Hub offline.

It serves the endpoints huggingface-hub 2.x calls, with the headers it reads:
- GET  /api/models?search=&filter=&sort=&limit=        (HfApi.list_models)
- GET  /api/models/OWNER/NAME[/revision/REV]            (model_info / repo_info; `blobs` adds sizes + LFS)
- GET  /api/models/OWNER/NAME/tree/REV[/PATH]           (list_repo_tree, snapshot_download)
- POST /api/models/OWNER/NAME/paths-info/REV            (get_paths_info)
- HEAD/GET /OWNER/NAME/resolve/REV/PATH                 (hf_hub_download: ETag, X-Repo-Commit,
  X-Linked-Etag/-Size, Content-Length; GET honours `Range: bytes=N-` with 206 + Content-Range)
Errors carry X-Error-Code like the Hub (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo),
so huggingface-hub raises its real exception types.

Faults to inject: drop the connection after N bytes of a file (once), stall after N bytes until
released, serve damaged bytes under the right checksum, list extra (e.g. unsafe) file names.
Hostile answers, as a malicious mirror would give them: a file's ETag or X-Linked-Size
(`StandinFile(etag=..., linked_size=...)`), a repo's commit id (`commit_id=`), any field of its
info answer (`info_patch={"siblings": [...]}`), or the raw bytes of that answer (`raw_info=`).
Every request is recorded for assertions. Use it as a context manager; `env()` gives the
environment (HF_ENDPOINT, an isolated HF_HOME, no stored token) for a subprocess.

    with HubStandin() as hub:
        hub.add_repo("owner/model-GGUF", {"model-Q4_K_M.gguf": data})
        subprocess.run([...], env={**os.environ, **hub.env(tmp_path)})
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

STANDIN_TOKEN = "hf_standin_token"
LFS_POINTER_SIZE = 134
CHUNK = 64 * 1024
STALL_LIMIT_S = 60  # a stalled response never outlives a test that forgot to release it


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class StandinFile:
    data: bytes
    lfs: bool = True
    damaged_in_transit: bool = False  # serve one flipped byte; the metadata keeps the true sha256
    etag: str | None = None  # the ETag to send instead of the hash (a hostile one, e.g. "../../x")
    linked_size: str | None = None  # X-Linked-Size to send instead of the true size (LFS files)

    def __post_init__(self) -> None:
        if self.etag is None:
            self.etag = self.sha256 if self.lfs else git_blob_sha1(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def served_bytes(self) -> bytes:
        if not self.damaged_in_transit or not self.data:
            return self.data
        middle = len(self.data) // 2
        return self.data[:middle] + bytes([self.data[middle] ^ 0xFF]) + self.data[middle + 1 :]


@dataclass
class StandinRepo:
    repo_id: str
    files: dict[str, StandinFile]
    gated: bool = False
    downloads: int = 0
    likes: int = 0
    last_modified: str = "2026-01-15T10:00:00.000Z"
    tags: list[str] = field(default_factory=list)
    listed_only: list[str] = field(default_factory=list)  # names in listings that are never served
    commit_id: str | None = None  # the commit to announce instead of one derived from the id
    info_patch: dict = field(default_factory=dict)  # fields of the info answer replaced as they are
    raw_info: bytes | None = None  # the info answer's body, sent as it is

    @property
    def commit(self) -> str:
        return self.commit_id if self.commit_id is not None else hashlib.sha1(self.repo_id.encode()).hexdigest()

    def sibling(self, name: str) -> dict:
        file = self.files.get(name) or StandinFile(b"")
        out = {"rfilename": name, "size": len(file.data), "blobId": git_blob_sha1(file.data)}
        if file.lfs:
            out["lfs"] = {"sha256": file.sha256, "size": len(file.data), "pointerSize": LFS_POINTER_SIZE}
        return out

    def tree_entry(self, name: str) -> dict:
        file = self.files.get(name) or StandinFile(b"")
        out = {"type": "file", "path": name, "size": len(file.data), "oid": git_blob_sha1(file.data)}
        if file.lfs:
            out["lfs"] = {"oid": file.sha256, "size": len(file.data), "pointerSize": LFS_POINTER_SIZE}
        return out

    def listed_names(self) -> list[str]:
        return sorted(self.files) + list(self.listed_only)

    def info(self, with_blobs: bool) -> dict:
        siblings = [self.sibling(n) if with_blobs else {"rfilename": n} for n in self.listed_names()]
        tags = list(self.tags) + (["gguf"] if any(n.endswith(".gguf") for n in self.files) else [])
        return {
            "_id": hashlib.sha1(self.repo_id.encode()).hexdigest()[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": self.repo_id.split("/")[0],
            "sha": self.commit,
            "lastModified": self.last_modified,
            "createdAt": "2025-06-01T00:00:00.000Z",
            "private": False,
            "disabled": False,
            "gated": "manual" if self.gated else False,
            "downloads": self.downloads,
            "likes": self.likes,
            "tags": tags,
            "library_name": "gguf" if "gguf" in tags else "transformers",
            "siblings": siblings,
        } | self.info_patch


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case


class HubStandin:
    """The server; see the module docstring."""

    def __init__(self) -> None:
        self.repos: dict[str, StandinRepo] = {}
        self.requests: list[RecordedRequest] = []
        self._drops: dict[tuple[str, str], int] = {}
        self._stalls: dict[tuple[str, str], tuple[int, threading.Event, threading.Event]] = {}
        # (methods, compiled regex on the path, handler(request handler, match, query)) tried before the
        # normal routes, so a test can make any endpoint misbehave; a handler returning False passes.
        self.overrides: list[tuple[tuple[str, ...], re.Pattern, Callable]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- setting up ---------------------------------------------------------------------------

    def add_repo(self, repo_id: str, files: dict[str, bytes | StandinFile], **options) -> StandinRepo:
        wrapped = {name: f if isinstance(f, StandinFile) else StandinFile(f) for name, f in files.items()}
        repo = StandinRepo(repo_id, wrapped, **options)
        self.repos[repo_id] = repo
        return repo

    def drop_connection_after(self, repo_id: str, filename: str, nbytes: int) -> None:
        """The next GET of this file sends `nbytes` of the body, then closes the connection."""
        self._drops[(repo_id, filename)] = nbytes

    def stall_after(self, repo_id: str, filename: str, nbytes: int) -> tuple[threading.Event, threading.Event]:
        """The next GET sends `nbytes`, then waits. Returns (reached, release): `reached` is set
        once the bytes are out; setting `release` closes that connection."""
        reached, release = threading.Event(), threading.Event()
        self._stalls[(repo_id, filename)] = (nbytes, reached, release)
        return reached, release

    # --- running ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self, hf_home: Path, token: str | None = None, offline: bool = False) -> dict[str, str]:
        """Environment for a huggingface-hub client that talks to this stand-in only."""
        env = {
            "HF_ENDPOINT": self.url,
            "HF_HOME": str(hf_home),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_XET": "1",
            "HF_TOKEN": token or "",
            "HF_HUB_OFFLINE": "1" if offline else "0",
            "HF_HUB_ETAG_TIMEOUT": "10",
            "HF_HUB_DOWNLOAD_TIMEOUT": "10",
        }
        return env

    def start(self) -> HubStandin:
        standin = self

        class Handler(_HubHandler):
            hub = standin

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for _, _, release in self._stalls.values():
            release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubStandin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- queries for tests --------------------------------------------------------------------

    def file_requests(self, filename: str, method: str = "GET") -> list[RecordedRequest]:
        return [
            r for r in self.requests if r.method == method and "/resolve/" in r.path and r.path.endswith("/" + filename)
        ]

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def take_drop(self, key: tuple[str, str]) -> int | None:
        with self._lock:
            return self._drops.pop(key, None)

    def take_stall(self, key: tuple[str, str]):
        with self._lock:
            return self._stalls.pop(key, None)


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_API_REPO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_API_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?$")
_API_PATHS = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)$")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-answer (a size cap, a deadline, a stopped pull) is what
        tests make happen; anything else is printed as the standard server does."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _HubHandler(BaseHTTPRequestHandler):
    hub: HubStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    # --- plumbing -----------------------------------------------------------------------------

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str, message: str, repo: StandinRepo | None = None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message}
        if repo is not None:
            headers["X-Repo-Commit"] = repo.commit
        self._json({"error": message}, status, headers)

    def _repo(self, repo_id: str, rev: str | None) -> StandinRepo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if rev is not None and unquote(rev) not in ("main", repo.commit):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + unquote(rev), repo)
            return None
        return repo

    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {STANDIN_TOKEN}"

    def _route(self) -> None:
        parts = urlsplit(self.path)
        self.hub.record(
            RecordedRequest(self.command, unquote(parts.path), {k.lower(): v for k, v in self.headers.items()})
        )
        query = parse_qs(parts.query)
        path = parts.path
        for methods, pattern, override in list(self.hub.overrides):
            found = pattern.match(path)
            if found and self.command in methods and override(self, found, query) is not False:
                return
        if self.command == "GET" and path == "/api/models":
            return self._search(query)
        for pattern, method, handler in (
            (_RESOLVE, ("GET", "HEAD"), self._resolve),
            (_API_TREE, ("GET",), self._tree),
            (_API_PATHS, ("POST",), self._paths_info),
            (_API_REPO, ("GET",), self._info),
        ):
            match = pattern.match(path)
            if match and self.command in method:
                return handler(match, query)
        self._error(404, "NotFound", f"no route for {self.command} {path}")

    do_GET = do_HEAD = do_POST = _route

    # --- API ----------------------------------------------------------------------------------

    def _search(self, query: dict) -> None:
        words = query.get("search", [""])[0].lower().split()
        wanted_tags = query.get("filter", [])
        found = [
            r
            for r in self.hub.repos.values()
            if all(w in r.repo_id.lower() for w in words) and all(t in r.info(False)["tags"] for t in wanted_tags)
        ]
        found.sort(key=lambda r: r.downloads, reverse=True)
        limit = int(query.get("limit", ["1000"])[0])
        keys = ("id", "_id", "modelId", "downloads", "likes", "lastModified", "gated", "tags", "private")
        self._json([{k: r.info(False)[k] for k in keys} for r in found[:limit]])

    def _info(self, match: re.Match, query: dict) -> None:
        repo = self._repo(match["repo"], match["rev"])
        if repo is not None and repo.raw_info is not None:
            self._send(200, repo.raw_info, {"Content-Type": "application/json"})
        elif repo is not None:
            self._json(repo.info(with_blobs="blobs" in query), headers={"X-Repo-Commit": repo.commit})

    def _tree(self, match: re.Match, query: dict) -> None:
        repo = self._repo(match["repo"], match["rev"])
        if repo is None:
            return
        prefix = unquote(match["path"] or "").strip("/")
        recursive = query.get("recursive", ["False"])[0].lower() == "true"
        entries, folders = [], set()
        for name in repo.listed_names():
            if prefix and not name.startswith(prefix + "/"):
                continue
            rest = name[len(prefix) + 1 :] if prefix else name
            base = prefix + "/" if prefix else ""
            if "/" in rest:
                # Like the Hub: folders are listed as entries; recursive listings descend into them too.
                steps = rest.split("/")[:-1] if recursive else rest.split("/")[:1]
                folders.update(base + "/".join(steps[: i + 1]) for i in range(len(steps)))
                if not recursive:
                    continue
            entries.append(repo.tree_entry(name))
        entries += [{"type": "directory", "path": f, "oid": git_blob_sha1(f.encode())} for f in sorted(folders)]
        self._json(entries)

    def _paths_info(self, match: re.Match, query: dict) -> None:
        repo = self._repo(match["repo"], match["rev"])
        if repo is None:
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body).get("paths", [])
        self._json([repo.tree_entry(p) for p in paths if p in repo.files])

    # --- files --------------------------------------------------------------------------------

    def _resolve(self, match: re.Match, query: dict) -> None:
        repo = self._repo(match["repo"], match["rev"])
        if repo is None:
            return
        if repo.gated and not self._authorized():
            self._error(
                401,
                "GatedRepo",
                f"Access to model {repo.repo_id} is restricted. "
                "You must have access to it and be authenticated to access it. Please log in.",
                repo,
            )
            return
        name = unquote(match["path"])
        file = repo.files.get(name)
        if file is None:
            self._error(404, "EntryNotFound", f'{name} does not exist on "main"', repo)
            return
        data = file.served_bytes()
        headers = {
            "ETag": f'"{file.etag}"',
            "X-Repo-Commit": repo.commit,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if file.lfs:
            size = file.linked_size if file.linked_size is not None else str(len(file.data))
            headers |= {"X-Linked-Etag": f'"{file.etag}"', "X-Linked-Size": size}
        start, status = self._range_start(len(data)), 200
        if start:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        self._stream(body, (repo.repo_id, name))

    def _range_start(self, size: int) -> int:
        header = self.headers.get("Range", "")
        found = re.fullmatch(r"bytes=(\d+)-", header.strip())
        start = int(found[1]) if found else 0
        return start if start < size else 0

    def _stream(self, body: bytes, key: tuple[str, str]) -> None:
        cut_at = self.hub.take_drop(key)
        stall = self.hub.take_stall(key)
        if stall is not None:
            cut_at = stall[0]
        limit = len(body) if cut_at is None else min(cut_at, len(body))
        for offset in range(0, limit, CHUNK):
            self.wfile.write(body[offset : min(offset + CHUNK, limit)])
        self.wfile.flush()
        if cut_at is None:
            return
        if stall is not None:
            stall[1].set()
            stall[2].wait(STALL_LIMIT_S)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def pull_test_env(hub: HubStandin, tmp_path: Path, gemma_path: Path) -> dict[str, str]:
    """A fresh llamadesk home and Hugging Face cache for one test, talking to the stand-in."""
    home = tmp_path / "home"
    (home / "data" / "models").mkdir(parents=True)
    # The assembled starter Gemma is shared, not rebuilt per home (it takes a second and 250 MB).
    (home / "data" / "models" / gemma_path.name).symlink_to(gemma_path)
    return {**hub.env(tmp_path / "hf"), "LLAMADESK_HOME": str(home)}
