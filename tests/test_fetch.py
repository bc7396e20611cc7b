"""`webshop-trl data fetch`: folder and URL sources, sha256 checks, atomic writes, resume, CLI.

Most tests use a tiny release made in tmp_path with its own manifest, so they run in
milliseconds; one test fetches the real 1k release with the package's built-in manifest. URL tests
serve files from a ThreadingHTTPServer on 127.0.0.1 that the test starts and stops.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from webshop_trl import paths
from webshop_trl.data import fetch as fetch_mod
from webshop_trl.data.fetch import FetchReport, fetch_webshop_data
from webshop_trl.data.manifest import (
    DEFAULT_MANIFEST,
    Manifest,
    ManifestEntry,
    load_manifest,
    manifest_from_dir,
)
from webshop_trl.errors import FetchError

REPO = Path(__file__).resolve().parents[1]

FILES = {
    "items.json": b'[{"asin": "B000000001"}, {"asin": "B000000002"}]\n',
    "logs/session_1.jsonl": b'{"step": 1}\n{"step": 2}\n',
    "big.bin": bytes(range(256)) * 800,  # 200 KiB: big enough to cut in the middle
}
OPTIONAL = {"index/segments_1": b"lucene-ish bytes"}


def _entry(path: str, data: bytes, optional: bool = False) -> ManifestEntry:
    return ManifestEntry(path, hashlib.sha256(data).hexdigest(), len(data), optional)


def _parts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.part"))


@pytest.fixture
def release(tmp_path) -> tuple[Path, Manifest]:
    """A source folder with three required files and one optional one, plus its manifest."""
    src = tmp_path / "src"
    for rel, data in {**FILES, **OPTIONAL}.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    entries = [_entry(r, d) for r, d in FILES.items()] + [_entry(r, d, True) for r, d in OPTIONAL.items()]
    return src, Manifest("test release", tuple(entries))


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "dest"


# --------------------------------------------------------------------------- local HTTP server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1:<free port> serving ``root``; always shut down."""

    def __init__(self, root: Path, handler: type[http.server.BaseHTTPRequestHandler] = _QuietHandler):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve():
    servers: list[_Server] = []

    def start(root: Path, handler=_QuietHandler) -> _Server:
        server = _Server(root, handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


class _DropMidFileHandler(_QuietHandler):
    """Announces big.bin's full length, sends half of it, then closes the connection."""

    def do_GET(self) -> None:
        if not self.path.endswith("/big.bin"):
            return super().do_GET()
        data = FILES["big.bin"]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.after_half()
        self.close_connection = True

    def after_half(self) -> None:
        """What the server does once half the file is out, before it closes: nothing."""


_STALL_RELEASE = threading.Event()


class _StallMidFileHandler(_DropMidFileHandler):
    """Sends half of big.bin and then waits (bounded) so a client can be killed mid-file."""

    def after_half(self) -> None:
        _STALL_RELEASE.wait(timeout=20)


# --------------------------------------------------------------------------- folder source


def test_folder_source_copies_every_file_verified(release, dest):
    src, manifest = release
    report = fetch_webshop_data(src, dest, manifest=manifest)
    assert isinstance(report, FetchReport)
    assert report.fetched == [e.path for e in manifest.entries]
    assert report.already_present == [] and report.missing_optional == []
    assert report.bytes_fetched == sum(e.size for e in manifest.entries)
    for rel, data in {**FILES, **OPTIONAL}.items():
        assert (dest / rel).read_bytes() == data
    assert _parts(dest) == []


def test_fetched_files_get_normal_permissions(release, dest):
    """Not mkstemp's 0o600, and not the read-only mode of the shared source files."""
    src, manifest = release
    (src / "items.json").chmod(0o444)
    fetch_webshop_data(src, dest, manifest=manifest)
    umask = os.umask(0)
    os.umask(umask)
    assert (dest / "items.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_rerun_skips_files_already_present(release, dest):
    src, manifest = release
    fetch_webshop_data(src, dest, manifest=manifest)
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}
    report = fetch_webshop_data(src, dest, manifest=manifest)
    assert report.fetched == [] and report.bytes_fetched == 0
    assert report.already_present == [e.path for e in manifest.entries]
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()} == before


def test_rerun_fetches_only_what_is_missing_or_wrong(release, dest):
    src, manifest = release
    fetch_webshop_data(src, dest, manifest=manifest)
    (dest / "logs/session_1.jsonl").unlink()
    (dest / "items.json").write_bytes(b"[]")  # present but not the release's bytes
    report = fetch_webshop_data(src, dest, manifest=manifest)
    assert sorted(report.fetched) == ["items.json", "logs/session_1.jsonl"]
    assert (dest / "items.json").read_bytes() == FILES["items.json"]


def test_force_fetches_again(release, dest):
    src, manifest = release
    fetch_webshop_data(src, dest, manifest=manifest)
    report = fetch_webshop_data(src, dest, force=True, manifest=manifest)
    assert report.fetched == [e.path for e in manifest.entries]


def test_missing_optional_file_is_skipped(release, dest):
    src, manifest = release
    (src / "index/segments_1").unlink()
    report = fetch_webshop_data(src, dest, manifest=manifest)
    assert report.missing_optional == ["index/segments_1"]
    assert not (dest / "index/segments_1").exists()
    assert "1 optional not in source" in report.summary()


def test_missing_required_file_fails_before_copying_anything(release, dest):
    src, manifest = release
    (src / "logs/session_1.jsonl").unlink()
    with pytest.raises(FetchError, match=r"lacks 1 required file.*logs/session_1\.jsonl"):
        fetch_webshop_data(src, dest, manifest=manifest)
    assert not dest.exists() or not any(dest.rglob("*"))


# --------------------------------------------------------------------------- sha256 checks


def test_sha256_mismatch_names_file_and_both_hashes(release, dest):
    src, manifest = release
    corrupted = b'[{"asin": "B000000001"}, {"asin": "B00000000X"}]\n'  # same length, one byte off
    (src / "items.json").write_bytes(corrupted)
    expected = hashlib.sha256(FILES["items.json"]).hexdigest()
    actual = hashlib.sha256(corrupted).hexdigest()
    with pytest.raises(FetchError) as info:
        fetch_webshop_data(src, dest, manifest=manifest)
    message = str(info.value)
    assert "items.json" in message and expected in message and actual in message
    assert "--manifest" in message  # tells a user with another release what to do
    assert not (dest / "items.json").exists()
    assert _parts(dest) == []


def test_sha256_mismatch_leaves_a_good_existing_file_untouched(release, dest):
    src, manifest = release
    fetch_webshop_data(src, dest, manifest=manifest)
    stat_before = (dest / "items.json").stat()
    (src / "items.json").write_bytes(b"[]\n")
    with pytest.raises(FetchError, match="existing file is unchanged"):
        fetch_webshop_data(src, dest, force=True, manifest=manifest)
    assert (dest / "items.json").read_bytes() == FILES["items.json"]
    assert (dest / "items.json").stat().st_ino == stat_before.st_ino
    assert _parts(dest) == []


def test_exception_mid_write_leaves_no_file_and_rerun_completes(release, dest, monkeypatch):
    """Simulates a crash (here: an exception from the writer) half-way through a file."""
    src, manifest = release
    real_open = fetch_mod._FolderSource.open

    class _Failing:
        def __init__(self, fh):
            self.fh, self.calls = fh, 0

        def read1(self, n):
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt  # what Ctrl-C looks like half-way
            return self.fh.read(len(FILES["big.bin"]) // 2)

        read = read1

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def flaky_open(self, rel):
        fh = real_open(self, rel)
        return _Failing(fh) if rel == "big.bin" else fh

    monkeypatch.setattr(fetch_mod._FolderSource, "open", flaky_open)
    with pytest.raises(KeyboardInterrupt):
        fetch_webshop_data(src, dest, manifest=manifest)
    assert not (dest / "big.bin").exists()
    assert _parts(dest) == []
    monkeypatch.undo()
    report = fetch_webshop_data(src, dest, manifest=manifest)
    assert "big.bin" in report.fetched and "items.json" in report.already_present
    assert (dest / "big.bin").read_bytes() == FILES["big.bin"]


# --------------------------------------------------------------------------- URL sources


def test_http_source(release, dest, serve):
    src, manifest = release
    server = serve(src)
    report = fetch_webshop_data(server.url + "/", dest, manifest=manifest)
    assert report.fetched == [e.path for e in manifest.entries]
    assert report.source == server.url + "/"
    for rel, data in {**FILES, **OPTIONAL}.items():
        assert (dest / rel).read_bytes() == data


def test_http_source_missing_files(release, dest, serve):
    src, manifest = release
    (src / "index/segments_1").unlink()
    server = serve(src)
    report = fetch_webshop_data(server.url, dest, manifest=manifest)
    assert report.missing_optional == ["index/segments_1"]
    (src / "logs/session_1.jsonl").unlink()
    with pytest.raises(FetchError, match=r"logs/session_1\.jsonl: not found at http://127\.0\.0\.1"):
        fetch_webshop_data(server.url, dest, force=True, manifest=manifest)


def test_file_url_source(release, dest):
    src, manifest = release
    report = fetch_webshop_data(src.as_uri(), dest, manifest=manifest)
    assert report.fetched == [e.path for e in manifest.entries]


def test_connection_dropped_mid_file_installs_nothing_and_rerun_completes(release, dest, serve):
    src, manifest = release
    flaky = serve(src, _DropMidFileHandler)
    with pytest.raises(FetchError, match=r"big\.bin: sha256 mismatch .*\(only 102400 of 204800 bytes arrived"):
        fetch_webshop_data(flaky.url, dest, manifest=manifest)
    assert not (dest / "big.bin").exists()
    assert _parts(dest) == []
    good = serve(src)
    report = fetch_webshop_data(good.url, dest, manifest=manifest)
    assert "big.bin" in report.fetched
    assert (dest / "big.bin").read_bytes() == FILES["big.bin"]


def test_killed_fetch_leaves_no_file_under_final_name(release, dest, serve, tmp_path):
    """SIGKILL a fetch in a subprocess while it is half-way through a file, then re-run."""
    src, manifest = release
    # big.bin first, so the kill happens before anything else is installed
    ordered = Manifest(manifest.name, tuple(sorted(manifest.entries, key=lambda e: e.path != "big.bin")))
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_text(ordered.to_json())
    _STALL_RELEASE.clear()
    stalling = serve(src, _StallMidFileHandler)
    code = (
        "import sys\n"
        "from webshop_trl.data.fetch import fetch_webshop_data\n"
        "from webshop_trl.data.manifest import load_manifest\n"
        "fetch_webshop_data(sys.argv[1], sys.argv[2], manifest=load_manifest(sys.argv[3]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, stalling.url, str(dest), str(manifest_file)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            parts = _parts(dest) if dest.exists() else []
            if parts and parts[0].stat().st_size > 0:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        else:
            pytest.fail("the fetch never started writing big.bin")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()
        _STALL_RELEASE.set()

    assert not (dest / "big.bin").exists()
    leftover = _parts(dest)
    assert len(leftover) == 1 and leftover[0].name.startswith(".big.bin.")
    assert 0 < leftover[0].stat().st_size < len(FILES["big.bin"])

    # a fresh leftover might belong to a fetch still running: it is left alone ...
    good = serve(src)
    report = fetch_webshop_data(good.url, dest, manifest=manifest)
    assert (dest / "big.bin").read_bytes() == FILES["big.bin"]
    assert report.stale_parts_removed == [] and leftover[0].exists()
    # ... an old one is cleaned up by the next run
    old = time.time() - fetch_mod.STALE_PART_AGE_S - 1
    os.utime(leftover[0], (old, old))
    report = fetch_webshop_data(good.url, dest, manifest=manifest)
    assert report.stale_parts_removed == [leftover[0].relative_to(dest).as_posix()]
    assert report.fetched == [] and _parts(dest) == []


# --------------------------------------------------------------------------- source errors


def test_unknown_source_folder(dest, tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FetchError, match=f"source folder not found: {missing}"):
        fetch_webshop_data(missing, dest)


def test_source_that_is_a_file(dest, tmp_path):
    (tmp_path / "f.json").write_text("{}")
    with pytest.raises(FetchError, match="source is not a folder"):
        fetch_webshop_data(tmp_path / "f.json", dest)


def test_unsupported_url_scheme(dest):
    with pytest.raises(FetchError, match="unsupported URL scheme 'ftp'"):
        fetch_webshop_data("ftp://example.org/webshop", dest)


def test_unreachable_server(release, dest):
    _, manifest = release
    with pytest.raises(FetchError, match="cannot reach http://127.0.0.1:9/"):
        fetch_webshop_data("http://127.0.0.1:9", dest, manifest=manifest)


def test_no_source_and_no_default(monkeypatch, dest):
    monkeypatch.delenv("WEBSHOP_TRL_SOURCE", raising=False)
    monkeypatch.setattr(paths, "default_source", lambda: None)
    with pytest.raises(FetchError, match="no data source: pass --source DIR or --source URL"):
        fetch_webshop_data(None, dest)


def test_default_source_is_used(monkeypatch, release, dest):
    src, manifest = release
    monkeypatch.delenv("WEBSHOP_TRL_SOURCE", raising=False)
    monkeypatch.setattr(paths, "default_source", lambda: src)
    assert fetch_webshop_data(dest=dest, manifest=manifest).source == str(src)


def test_source_from_environment_may_be_a_url(monkeypatch, release, dest, serve, tmp_path):
    src, manifest = release
    server = serve(src)
    monkeypatch.setenv("WEBSHOP_TRL_SOURCE", server.url)
    assert fetch_webshop_data(dest=dest, manifest=manifest).source == server.url
    monkeypatch.setenv("WEBSHOP_TRL_SOURCE", str(tmp_path / "gone"))
    with pytest.raises(FetchError, match=f"source folder not found: {tmp_path / 'gone'}"):
        fetch_webshop_data(dest=dest, manifest=manifest)


def test_dest_that_is_a_file(release, tmp_path):
    src, manifest = release
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FetchError, match="destination is not a folder"):
        fetch_webshop_data(src, tmp_path / "afile", manifest=manifest)


# --------------------------------------------------------------------------- manifests


def test_manifest_round_trip_and_from_dir(release, tmp_path):
    src, manifest = release
    built = manifest_from_dir(src, "test release", optional=["index/"])
    assert sorted(built.entries, key=lambda e: e.path) == sorted(manifest.entries, key=lambda e: e.path)
    path = tmp_path / "m.json"
    path.write_text(built.to_json())
    assert load_manifest(path) == built


@pytest.mark.parametrize(
    "files, message",
    [
        ("not a list", "expected an object with a 'files' list"),
        ([], "the 'files' list is empty"),
        ([{"path": "a", "sha256": "0" * 64}], r"files\[0\] lacks size"),
        ([{"path": "../etc/passwd", "sha256": "0" * 64, "size": 1}], "must be a plain relative path"),
        ([{"path": "/abs", "sha256": "0" * 64, "size": 1}], "must be a plain relative path"),
        ([{"path": "a", "sha256": "xyz", "size": 1}], r"files\[0\] \(a\): sha256 'xyz' is not 64 hex digits"),
        ([{"path": "a", "sha256": "0" * 64, "size": -1}], "size -1 is not a non-negative integer"),
        ([{"path": "a", "sha256": "0" * 64, "size": 1}] * 2, "'a' is listed twice"),
        (["a"], r"files\[0\] is a str"),
    ],
)
def test_bad_manifest_is_a_clear_error(tmp_path, files, message):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"files": files}))
    with pytest.raises(FetchError, match=message) as info:
        load_manifest(path)
    assert str(path) in str(info.value)


def test_manifest_that_is_not_json(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{nope")
    with pytest.raises(FetchError, match=f"manifest {path} could not be read as JSON"):
        load_manifest(path)
    with pytest.raises(FetchError, match="manifest file not found"):
        load_manifest(tmp_path / "absent.json")


def test_default_manifest_lists_the_release():
    required = {e.path for e in DEFAULT_MANIFEST.required}
    assert {
        "items_shuffle_1000.reconstructed.json",
        "items_ins_v2_1000.json",
        "items_human_ins.subset_1000.json",
        "human_goals.json",
        "goal_query_map.json",
        "webshop_1k_documents.jsonl",
        "reference/reward_cases_dev.json",
    } <= required
    assert sum(p.startswith("human_session_logs/") for p in required) == 9
    assert all(e.optional for e in DEFAULT_MANIFEST.entries if e.path.startswith("lucene_index_1k/"))
    assert len({e.path for e in DEFAULT_MANIFEST.entries}) == len(DEFAULT_MANIFEST.entries)


@pytest.mark.shared
def test_real_release_fetch_with_builtin_manifest(shared_dir, dest):
    """The package's hashes match the shared 1k release, and the result loads."""
    from webshop_trl.data import load_catalog

    report = fetch_webshop_data(shared_dir, dest)
    assert len(report.fetched) == len(DEFAULT_MANIFEST.entries) == 36
    assert report.missing_optional == []
    assert len(load_catalog(dest)) == 1000
    assert fetch_webshop_data(shared_dir, dest).fetched == []


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(monkeypatch):
    """Run `webshop-trl ...` in-process through the real entry point (exit codes included)."""
    from webshop_trl.cli import main as main_mod

    # only our sub-command: the test must not depend on the other sub-commands importing
    monkeypatch.setattr(main_mod, "COMMAND_MODULES", ("data",))
    return main_mod.main


def test_cli_fetch_and_rerun(cli, release, dest, tmp_path, capsys):
    src, manifest = release
    manifest_file = tmp_path / "m.json"
    manifest_file.write_text(manifest.to_json())
    args = ["data", "fetch", "--source", str(src), "--dest", str(dest), "--manifest", str(manifest_file)]
    assert cli(args) == 0
    out = capsys.readouterr().out
    assert "fetched big.bin (204,800 bytes, sha256 ok)" in out
    assert "4 fetched" in out and "0 already present" in out
    assert cli(args + ["--quiet"]) == 0
    assert "0 fetched (0.0 MB), 4 already present" in capsys.readouterr().out


def test_cli_unknown_source_exits_2(cli, dest, tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert cli(["data", "fetch", "--source", str(missing), "--dest", str(dest)]) == 2
    err = capsys.readouterr().err
    assert f"webshop-trl data: error: source folder not found: {missing}" in err
    assert "Traceback" not in err


def test_cli_checksum_error_exits_2(cli, release, dest, tmp_path, capsys):
    src, manifest = release
    (src / "big.bin").write_bytes(b"\0" * len(FILES["big.bin"]))
    manifest_file = tmp_path / "m.json"
    manifest_file.write_text(manifest.to_json())
    code = cli(["data", "fetch", "--source", str(src), "--dest", str(dest), "--manifest", str(manifest_file), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "big.bin: sha256 mismatch" in err and manifest.entries[2].sha256 in err


def test_cli_manifest_command(cli, release, dest, tmp_path, capsys):
    src, _ = release
    out_file = tmp_path / "mine.json"
    assert cli(["data", "manifest", str(src), "--optional", "index/", "-o", str(out_file)]) == 0
    manifest = load_manifest(out_file)
    assert [e.path for e in manifest.optional] == ["index/segments_1"]
    assert cli(["data", "fetch", "--source", str(src), "--dest", str(dest), "--manifest", str(out_file)]) == 0


def test_cli_bad_arguments_exit_2(cli, capsys):
    with pytest.raises(SystemExit) as info:
        cli(["data", "fetch", "--no-such-flag"])
    assert info.value.code == 2
