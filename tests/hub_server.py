"""A minimal, in-memory Hugging Face Hub for tests: the HTTP endpoints that `huggingface_hub`
2.4 calls to create a repo, upload files (regular and Git LFS) and read them back.

Nothing here reaches the network beyond 127.0.0.1. Point a *fresh process* at it with
``HF_ENDPOINT`` (huggingface_hub and datasets read it once, at import) and turn Xet off
(``HF_HUB_DISABLE_XET=1``): Xet's content-addressed protocol is not implemented, so LFS files go
through the legacy batch API (``.git/info/lfs/objects/batch``, one PUT, one verify), which
huggingface_hub uses whenever Xet is unavailable::

    with FakeHub(token="hf_test") as hub:
        env = {**os.environ, **hub.env(tmp_path)}       # HF_ENDPOINT, HF_TOKEN, HF_HOME, no Xet
        subprocess.run([...push...], env=env, check=True)
        files = hub.files("tester/my-data", repo_type="dataset")   # {path: bytes} at main

Endpoints (found by reading huggingface_hub 2.4's hf_api.py, _commit_api.py, lfs.py,
hf_file_system.py and datasets 5.2's push_to_hub):

=======  ==========================================================  =========================
method   path                                                        used by
=======  ==========================================================  =========================
GET      /api/whoami-v2                                              whoami (ids without owner)
POST     /api/repos/create                                           create_repo (409 if there)
GET      /api/{type}s/{id}[/revision/{rev}]                          repo_info / dataset_info
POST     /api/validate-yaml                                          create_commit of README.md
POST     /api/{type}s/{id}/preupload/{rev}                           upload modes (regular|lfs)
POST     /{prefix}{id}.git/info/lfs/objects/batch                    LFS batch (basic transfer)
PUT      /_lfs/{oid}                                                 LFS object upload
POST     /_lfs/verify                                                LFS verify
POST     /api/{type}s/{id}/commit/{rev}                              create_commit (ndjson)
POST     /api/{type}s/{id}/branch/{branch}                           create_branch (409 if there)
GET      /api/{type}s/{id}/tree/{rev}[/{path}]                       list_repo_tree, HfFileSystem
POST     /api/{type}s/{id}/paths-info/{rev}                          get_paths_info, HfFileSystem
GET/HEAD /{prefix}{id}/resolve/{rev}/{path}                          hf_hub_download, HfFileSystem
=======  ==========================================================  =========================

Like the Hub: ``*.parquet``/``*.arrow``/``*.safetensors``/... and files over 10 MB are LFS (the
preupload answer says ``lfs``), others are regular and travel base64 inside the commit; a commit
referencing an LFS object that was never uploaded fails; ``parentCommit`` is checked (412); a
404 carries ``X-Error-Code`` (RepoNotFound / RevisionNotFound / EntryNotFound) so the client
raises its typed errors. Every request is recorded in ``hub.requests``; routes this server does
not know answer 404 and are listed in ``hub.unhandled`` so a test can assert there were none.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LFS_PATTERNS = ("*.parquet", "*.arrow", "*.safetensors", "*.bin", "*.pt", "*.pth", "*.h5", "*.zip", "*.gz", "*.npy", "*.pkl")
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_ID = r"(?P<repo>[\w.-]+/[\w.-]+)"
_TYPES = r"(?P<type>models|datasets|spaces)"


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Blob:
    content: bytes
    lfs: bool

    def tree_entry(self, path: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "path": path, "size": len(self.content)}
        if self.lfs:
            sha = hashlib.sha256(self.content).hexdigest()
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(self.content)}\n".encode()
            entry["oid"] = git_blob_sha1(pointer)
            entry["lfs"] = {"oid": sha, "size": len(self.content), "pointerSize": len(pointer)}
        else:
            entry["oid"] = git_blob_sha1(self.content)
        return entry


@dataclass
class Commit:
    oid: str
    parent: str | None
    summary: str
    description: str
    files: dict[str, Blob]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        revision = unquote(revision)
        oid = self.branches.get(revision, revision)
        if oid in self.commits:
            return self.commits[oid]
        matches = [c for o, c in self.commits.items() if len(revision) >= 7 and o.startswith(revision)]
        return matches[0] if len(matches) == 1 else None


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class FakeHub:
    """The server and its state. ``token``: if given, write requests must carry it (401 otherwise)."""

    def __init__(self, user: str = "tester", token: str | None = "hf_test_token", host: str = "127.0.0.1"):
        self.user = user
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer((host, 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def env(self, home: str | Path | None = None) -> dict[str, str]:
        """Environment for a client process: this endpoint, the token, no Xet, no telemetry, and
        (if ``home`` is given) a private HF_HOME so no real token or cache is read."""
        env = {
            "HF_ENDPOINT": self.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
            "HF_HUB_ETAG_TIMEOUT": "5",
            "HF_HUB_DOWNLOAD_TIMEOUT": "5",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        if self.token:
            env["HF_TOKEN"] = self.token
        if home is not None:
            env["HF_HOME"] = str(home)
        return env

    # ------------------------------------------------------------------ inspection
    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> dict[str, bytes]:
        with self._lock:
            commit = self.repo(repo_id, repo_type).resolve(revision)
            assert commit is not None, f"no revision {revision!r} in {repo_id}"
            return {p: b.content for p, b in commit.files.items()}

    def commit_log(self, repo_id: str, repo_type: str = "dataset", branch: str = "main") -> list[Commit]:
        """Commits of a branch, oldest first."""
        with self._lock:
            repo = self.repo(repo_id, repo_type)
            out, oid = [], repo.branches.get(branch)
            while oid is not None:
                out.append(repo.commits[oid])
                oid = repo.commits[oid].parent
            return out[::-1]

    # ------------------------------------------------------------------ state changes
    def _get_repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def _get_commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Revision not found: {revision}", "RevisionNotFound")
        return commit

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, "You already created this repo")
            repo = Repo(repo_type, repo_id, private)
            first = self._new_commit(repo, None, "initial commit", "", {})
            repo.branches["main"] = first.oid
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def _new_commit(self, repo: Repo, parent: str | None, summary: str, description: str, files: dict[str, Blob]) -> Commit:
        seed = f"{repo.repo_id}\0{parent}\0{summary}\0{time.time_ns()}\0{len(repo.commits)}".encode()
        oid = hashlib.sha1(seed).hexdigest()
        commit = Commit(oid, parent, summary, description, files)
        repo.commits[oid] = commit
        return commit

    def apply_commit(self, repo: Repo, revision: str, lines: list[dict[str, Any]]) -> Commit:
        with self._lock:
            branch = unquote(revision)
            if branch not in repo.branches:
                raise HubError(404, f"Revision not found: {branch} (commits go to a branch)", "RevisionNotFound")
            head = repo.commits[repo.branches[branch]]
            if not lines or lines[0].get("key") != "header":
                raise HubError(400, "the first ndjson line must be the header")
            header = lines[0]["value"]
            parent = header.get("parentCommit")
            if parent is not None and not head.oid.startswith(parent):
                raise HubError(412, f"parent commit {parent} is not the head of {branch} ({head.oid})")
            files = dict(head.files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value") or {}
                path = value.get("path", "")
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise HubError(400, f"unsupported encoding for {path}")
                    files[path] = Blob(base64.b64decode(value["content"]), lfs=False)
                elif key == "lfsFile":
                    content = self.lfs_objects.get(value.get("oid", ""))
                    if content is None:
                        raise HubError(400, f"LFS object {value.get('oid')} of {path} was never uploaded")
                    if len(content) != value.get("size"):
                        raise HubError(400, f"size mismatch for {path}")
                    files[path] = Blob(content, lfs=True)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    for p in [p for p in files if p.startswith(prefix)]:
                        del files[p]
                else:
                    raise HubError(400, f"unsupported commit operation {key!r}")
            commit = self._new_commit(repo, head.oid, header.get("summary", ""), header.get("description", ""), files)
            repo.branches[branch] = commit.oid
            return commit


def _tree_listing(files: dict[str, Blob], path: str, recursive: bool) -> list[dict[str, Any]] | None:
    """Entries under ``path`` (files and implied folders); None if ``path`` is neither."""
    prefix = path.strip("/") + "/" if path.strip("/") else ""
    if prefix and not any(p.startswith(prefix) for p in files):
        return None
    out: list[dict[str, Any]] = []
    folders: set[str] = set()
    for p in sorted(files):
        if not p.startswith(prefix):
            continue
        rest = p[len(prefix):]
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            folder = prefix + "/".join(parts[:depth])
            if folder not in folders and (recursive or depth == 1):
                folders.add(folder)
                out.append({"type": "directory", "path": folder, "oid": hashlib.sha1(folder.encode()).hexdigest()})
        if recursive or len(parts) == 1:
            out.append(files[p].tree_entry(p))
    return out


def _path_info(files: dict[str, Blob], path: str) -> dict[str, Any] | None:
    path = path.strip("/")
    if path in files:
        return files[path].tree_entry(path)
    if any(p.startswith(path + "/") for p in files):
        return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()}
    return None


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeHub/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        # -------------------------------------------------------------- plumbing
        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, body: bytes = b"", content_type: str = "application/json", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(data).encode(), headers=headers)

        def _error(self, err: HubError) -> None:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._json(err.status, {"error": err.message}, headers)

        def _require_token(self) -> None:
            if hub.token is None:
                return
            if self.headers.get("Authorization", "") != f"Bearer {hub.token}":
                raise HubError(401, "Invalid credentials in Authorization header")

        def _dispatch(self) -> None:
            split = urlsplit(self.path)
            path, query = unquote(split.path), parse_qs(split.query)
            with hub._lock:
                hub.requests.append((self.command, split.path))
            body = self._body() if self.command in ("POST", "PUT") else b""
            try:
                for method, pattern, handler in ROUTES:
                    if method != self.command and not (method == "GET" and self.command == "HEAD"):
                        continue
                    m = re.fullmatch(pattern, path)
                    if m:
                        handler(self, m, query, body)
                        return
                with hub._lock:
                    hub.unhandled.append((self.command, self.path))
                raise HubError(404, f"FakeHub: no route for {self.command} {path}")
            except HubError as err:
                self._error(err)
            except Exception as exc:  # a bug here must show in the test, not hang the client
                with hub._lock:
                    hub.errors.append(f"{self.command} {self.path}: {exc!r}")
                self._json(500, {"error": repr(exc)})

        do_GET = do_HEAD = do_POST = do_PUT = _dispatch

        # -------------------------------------------------------------- endpoints
        def whoami(self, m, query, body) -> None:
            self._require_token()
            self._json(200, {"type": "user", "name": hub.user, "fullname": hub.user, "orgs": [], "auth": {"type": "access_token", "accessToken": {"role": "write"}}})

        def create_repo(self, m, query, body) -> None:
            self._require_token()
            data = json.loads(body or b"{}")
            repo_type = data.get("type") or "model"
            repo_id = f"{data.get('organization') or hub.user}/{data['name']}"
            repo = hub.create_repo(repo_type, repo_id, data.get("visibility") == "private" or bool(data.get("private")))
            url = f"{hub.url}/{TYPE_PREFIX[repo_type]}{repo.repo_id}"
            self._json(200, {"url": url, "name": repo.repo_id, "id": repo.repo_id})

        def repo_info(self, m, query, body) -> None:
            repo_type = m["type"][:-1]
            repo = hub._get_repo(repo_type, m["repo"])
            commit = hub._get_commit(repo, m["rev"] or "main")
            self._json(200, {
                "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
                "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": commit.oid,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "lastModified": "2025-01-01T00:00:00.000Z",
                "createdAt": "2025-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            })

        def validate_yaml(self, m, query, body) -> None:
            self._json(200, {"errors": [], "warnings": []})

        def preupload(self, m, query, body) -> None:
            self._require_token()
            repo = hub._get_repo(m["type"][:-1], m["repo"])
            commit = repo.resolve(m["rev"])
            existing = commit.files if commit is not None else {}
            files = []
            for f in json.loads(body)["files"]:
                path, size = f["path"], int(f["size"])
                sample = base64.b64decode(f.get("sample", ""))
                lfs = size > LFS_SIZE_THRESHOLD or b"\0" in sample or any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], p) for p in LFS_PATTERNS)
                blob = existing.get(path)
                oid = None
                if blob is not None and blob.lfs == lfs:
                    oid = hashlib.sha256(blob.content).hexdigest() if lfs else git_blob_sha1(blob.content)
                files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
            self._json(200, {"files": files, "commitOid": commit.oid if commit else None})

        def lfs_batch(self, m, query, body) -> None:
            self._require_token()
            data = json.loads(body)
            if data.get("operation") != "upload":
                raise HubError(400, "only uploads are supported")
            objects = []
            for obj in data["objects"]:
                entry: dict[str, Any] = {"oid": obj["oid"], "size": int(obj["size"]), "authenticated": True}
                if obj["oid"] not in hub.lfs_objects:
                    entry["actions"] = {
                        "upload": {"href": f"{hub.url}/_lfs/{obj['oid']}", "header": {}},
                        "verify": {"href": f"{hub.url}/_lfs/verify", "header": {}},
                    }
                objects.append(entry)
            self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(), "application/vnd.git-lfs+json")

        def lfs_put(self, m, query, body) -> None:
            oid = m["oid"]
            if hashlib.sha256(body).hexdigest() != oid:
                raise HubError(400, f"content does not match its sha256 {oid}")
            with hub._lock:
                hub.lfs_objects[oid] = body
            self._send(200, b"", headers={"ETag": f'"{oid}"'})

        def lfs_verify(self, m, query, body) -> None:
            self._require_token()
            data = json.loads(body)
            content = hub.lfs_objects.get(data.get("oid"))
            if content is None or len(content) != data.get("size"):
                raise HubError(404, f"LFS object {data.get('oid')} not found or wrong size")
            self._json(200, {"success": True})

        def commit(self, m, query, body) -> None:
            self._require_token()
            if query.get("create_pr"):
                raise HubError(400, "FakeHub does not support pull requests")
            repo = hub._get_repo(m["type"][:-1], m["repo"])
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            commit = hub.apply_commit(repo, m["rev"], lines)
            url = f"{hub.url}/{TYPE_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{commit.oid}"
            self._json(200, {"commitUrl": url, "commitOid": commit.oid, "pullRequestUrl": None, "success": True})

        def create_branch(self, m, query, body) -> None:
            self._require_token()
            repo = hub._get_repo(m["type"][:-1], m["repo"])
            start = (json.loads(body or b"{}").get("startingPoint")) or "main"
            with hub._lock:
                if m["branch"] in repo.branches:
                    raise HubError(409, f"Reference already exists: refs/heads/{m['branch']}")
                repo.branches[m["branch"]] = hub._get_commit(repo, start).oid
            self._json(200, {})

        def tree(self, m, query, body) -> None:
            repo = hub._get_repo(m["type"][:-1], m["repo"])
            commit = hub._get_commit(repo, m["rev"])
            recursive = (query.get("recursive") or ["false"])[0].lower() in ("1", "true")
            listing = _tree_listing(commit.files, m["path"] or "", recursive)
            if listing is None:
                raise HubError(404, f"Entry not found: {m['path']}", "EntryNotFound")
            self._json(200, listing)

        def paths_info(self, m, query, body) -> None:
            repo = hub._get_repo(m["type"][:-1], m["repo"])
            commit = hub._get_commit(repo, m["rev"])
            if self.headers.get("Content-Type", "").startswith("application/json"):
                paths = json.loads(body).get("paths", [])
            else:
                paths = parse_qs(body.decode()).get("paths", [])
            infos = [i for i in (_path_info(commit.files, p) for p in paths) if i is not None]
            self._json(200, infos)

        def resolve(self, m, query, body) -> None:
            repo_type = {"datasets": "dataset", "spaces": "space", None: "model"}[m["type"]]
            repo = hub._get_repo(repo_type, m["repo"])
            commit = hub._get_commit(repo, m["rev"])
            blob = commit.files.get(m["path"])
            if blob is None:
                raise HubError(404, f"Entry not found: {m['path']}", "EntryNotFound")
            content = blob.content
            headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
            etag = hashlib.sha256(content).hexdigest() if blob.lfs else git_blob_sha1(content)
            headers["ETag"] = f'"{etag}"'
            if blob.lfs:
                headers["X-Linked-Etag"] = f'"{etag}"'
                headers["X-Linked-Size"] = str(len(content))
            status = 200
            rng = self.headers.get("Range")
            if rng:
                r = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
                if r:
                    start = int(r[1]) if r[1] else max(len(content) - int(r[2] or 0), 0)
                    end = int(r[2]) if (r[1] and r[2]) else len(content) - 1
                    end = min(end, len(content) - 1)
                    headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
                    content = content[start:end + 1]
                    status = 206
            self._send(status, content, "application/octet-stream", headers)

    ROUTES = [
        ("GET", r"/api/whoami-v2", Handler.whoami),
        ("POST", r"/api/repos/create", Handler.create_repo),
        ("POST", r"/api/validate-yaml", Handler.validate_yaml),
        ("GET", rf"/api/{_TYPES}/{_ID}(?:/revision/(?P<rev>.+))?", Handler.repo_info),
        ("POST", rf"/api/{_TYPES}/{_ID}/preupload/(?P<rev>[^/]+)", Handler.preupload),
        ("POST", rf"/api/{_TYPES}/{_ID}/commit/(?P<rev>[^/]+)", Handler.commit),
        ("POST", rf"/api/{_TYPES}/{_ID}/branch/(?P<branch>[^/]+)", Handler.create_branch),
        ("GET", rf"/api/{_TYPES}/{_ID}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", Handler.tree),
        ("POST", rf"/api/{_TYPES}/{_ID}/paths-info/(?P<rev>[^/]+)", Handler.paths_info),
        ("POST", rf"/(?:(?:datasets|spaces)/)?{_ID}\.git/info/lfs/objects/batch", Handler.lfs_batch),
        ("PUT", r"/_lfs/(?P<oid>[0-9a-f]{64})", Handler.lfs_put),
        ("POST", r"/_lfs/verify", Handler.lfs_verify),
        ("GET", rf"/(?:(?P<type>datasets|spaces)/)?{_ID}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", Handler.resolve),
    ]
    return Handler
