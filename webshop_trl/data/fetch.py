"""Copy or download the WebShop data files into the data folder, verifying each one's sha256.

Why it is careful about writes: the tests, the index and every reported number depend on these
exact bytes, and a fetch can be killed at any time (Ctrl-C, a CI timeout, a dropped connection).
So each file is streamed to a hidden temporary name in the destination folder, hashed on the way,
fsynced, and only then renamed over the final name with `os.replace` (atomic on POSIX). A file
under its final name is therefore always complete, and a re-run skips every file that is already
present with the right hash, so it is quick and continues where a killed run stopped.

A file whose hash is wrong is never installed, and a good file already in place is never touched
unless the replacement has been verified.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

from webshop_trl.data.manifest import DEFAULT_MANIFEST, Manifest, ManifestEntry, sha256_file
from webshop_trl.errors import FetchError
from webshop_trl.paths import fsync_dir

URL_SCHEMES = ("http", "https", "file")
CHUNK_SIZE = 1 << 20
URL_TIMEOUT_S = 60.0
# A temporary file left by a killed fetch is removed by a later fetch once it has not been
# written for this long (a younger one may belong to a fetch running right now).
STALE_PART_AGE_S = 300.0

ProgressFn = Callable[[int], None]


@dataclass
class FetchReport:
    """What a fetch did. Paths are relative to ``dest``, in manifest order."""

    source: str
    dest: Path
    manifest: str
    fetched: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    missing_optional: list[str] = field(default_factory=list)
    stale_parts_removed: list[str] = field(default_factory=list)
    bytes_fetched: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [f"{len(self.fetched)} fetched ({self.bytes_fetched / 1e6:.1f} MB)"]
        parts.append(f"{len(self.already_present)} already present")
        if self.missing_optional:
            parts.append(f"{len(self.missing_optional)} optional not in source")
        return f"{', '.join(parts)} -> {self.dest} in {self.seconds:.1f}s"


class _Source:
    """Where files are read from. ``open`` returns a binary stream or None if the file is absent."""

    description: str

    def open(self, rel: str) -> IO[bytes] | None:  # pragma: no cover - interface
        raise NotImplementedError

    def location(self, rel: str) -> str:  # pragma: no cover - interface
        raise NotImplementedError


class _FolderSource(_Source):
    def __init__(self, root: Path):
        if not root.exists():
            raise FetchError(f"source folder not found: {root}")
        if not root.is_dir():
            raise FetchError(f"source is not a folder: {root}")
        self.root = root
        self.description = str(root)

    def location(self, rel: str) -> str:
        return str(self.root / rel)

    def open(self, rel: str) -> IO[bytes] | None:
        path = self.root / rel
        if not path.is_file():
            return None
        try:
            return open(path, "rb")
        except OSError as exc:
            raise FetchError(f"cannot read {path}: {exc}") from exc


class _UrlSource(_Source):
    """``<base URL>/<relative path>`` over http, https or file, via urllib."""

    def __init__(self, base: str, timeout: float = URL_TIMEOUT_S):
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.description = base

    def location(self, rel: str) -> str:
        return f"{self.base}/{urllib.parse.quote(rel)}"

    def open(self, rel: str) -> IO[bytes] | None:
        url = self.location(rel)
        try:
            return urllib.request.urlopen(url, timeout=self.timeout)  # noqa: S310 - scheme checked
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (404, 410):
                return None
            raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, FileNotFoundError):  # file:// URL of an absent file
                return None
            raise FetchError(f"cannot reach {url}: {exc.reason}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"cannot reach {url}: {exc}") from exc


def _open_source(source: str | Path) -> _Source:
    text = str(source)
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme in URL_SCHEMES:
        return _UrlSource(text)
    if "://" in text:
        raise FetchError(f"unsupported URL scheme {scheme!r} in {text}: use one of {', '.join(URL_SCHEMES)}")
    return _FolderSource(Path(text).expanduser())


def resolve_source(source: str | Path | None) -> str | Path:
    """The named source, else $WEBSHOP_TRL_SOURCE (a folder or URL), else the shared folder beside
    the checkout (`paths.default_source()`), else a FetchError saying what to pass."""
    if source is not None and str(source) != "":
        return source
    env = os.environ.get("WEBSHOP_TRL_SOURCE")
    if env:  # read here as text: paths.default_source() makes it a Path, which breaks URLs
        return env
    from webshop_trl import paths

    default = paths.default_source()
    if default is not None:
        return default
    raise FetchError(
        "no data source: pass --source DIR or --source URL (a folder or base URL holding the WebShop "
        "files), or set WEBSHOP_TRL_SOURCE; no ../shared/webshop_data folder was found beside the checkout"
    )


def _part_prefix(final: Path) -> str:
    return f".{final.name}."


def _remove_stale_parts(dest: Path, manifest: Manifest, now: float) -> list[str]:
    """Delete temporary files a killed fetch left behind (only our own naming pattern)."""
    removed: list[str] = []
    for entry in manifest.entries:
        final = dest / entry.path
        if not final.parent.is_dir():
            continue
        for part in final.parent.glob(f"{_part_prefix(final)}*.part"):
            try:
                if now - part.stat().st_mtime >= STALE_PART_AGE_S:
                    part.unlink()
                    removed.append(part.relative_to(dest).as_posix())
            except FileNotFoundError:
                continue
    return removed


@contextmanager
def _temp_beside(final: Path) -> Iterator[tuple[Path, IO[bytes]]]:
    """A new hidden file next to ``final`` (same file system, so the rename is atomic).

    Created with mode 0o666 minus the umask, like any normal file, rather than mkstemp's 0o600.
    Removed on any error, including KeyboardInterrupt; only a hard kill can leave it behind, and
    its name never matches the final name.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.parent / f"{_part_prefix(final)}{secrets.token_hex(6)}.part"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield temp, fh
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _install(entry: ManifestEntry, stream: IO[bytes], final: Path, location: str, progress: ProgressFn | None) -> int:
    """Stream ``stream`` into ``final`` via a verified temporary file; return the byte count."""
    h = hashlib.sha256()
    size = 0
    # read1 returns what has arrived instead of waiting for a full chunk: smoother progress on a
    # slow link, and bytes reach the temporary file as they come.
    read = getattr(stream, "read1", stream.read)
    with _temp_beside(final) as (temp, out):
        try:
            while chunk := read(CHUNK_SIZE):
                out.write(chunk)
                h.update(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(
                f"{entry.path}: reading {location} failed after {size} of {entry.size} bytes "
                f"({type(exc).__name__}: {exc}); nothing was installed, run the fetch again"
            ) from exc
        actual = h.hexdigest()
        if actual != entry.sha256:
            if size < entry.size:
                what = f"only {size} of {entry.size} bytes arrived: a dropped connection or a truncated source file"
                advice = "Run the fetch again (files already verified are skipped)."
            else:
                what = f"{size} bytes, expected {entry.size}"
                advice = "If this is a different data release, pass its own hashes with --manifest FILE."
            kept = "; the existing file is unchanged" if final.exists() else ""
            raise FetchError(
                f"{entry.path}: sha256 mismatch for {location}: expected {entry.sha256}, got {actual} "
                f"({what}). The file was not installed{kept}. {advice}"
            )
        out.flush()
        os.fsync(out.fileno())
        out.close()
        os.replace(temp, final)
    fsync_dir(final.parent)
    return size


def _present_and_valid(final: Path, entry: ManifestEntry) -> bool:
    try:
        if not final.is_file() or final.stat().st_size != entry.size:
            return False
    except OSError:
        return False
    return sha256_file(final) == entry.sha256


def fetch_webshop_data(
    source: str | Path | None = None,
    dest: str | Path | None = None,
    force: bool = False,
    *,
    manifest: Manifest | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> FetchReport:
    """Copy (folder source) or download (http/https/file URL source) the manifest's files into
    ``dest`` (default `paths.webshop_data_dir()`), verifying each sha256.

    ``source`` defaults to `paths.default_source()`. Files already present with the right hash
    are skipped unless ``force``; with ``force`` they are fetched again but replaced only once the
    new copy is verified. Optional manifest entries absent from the source are skipped.
    ``progress`` shows a tqdm byte bar on stderr; ``log`` receives one line per fetched file.
    Raises `FetchError` naming the file on a missing required file, a read error or a hash mismatch.
    """
    from webshop_trl import paths

    started = time.monotonic()
    manifest = manifest or DEFAULT_MANIFEST
    src = _open_source(resolve_source(source))
    dest = Path(dest).expanduser() if dest is not None else paths.webshop_data_dir()
    if dest.exists() and not dest.is_dir():
        raise FetchError(f"destination is not a folder: {dest}")
    if isinstance(src, _FolderSource):
        absent = [e.path for e in manifest.required if not (src.root / e.path).is_file()]
        if absent:  # fail before copying anything, naming every missing file
            shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
            raise FetchError(
                f"source folder {src.root} lacks {len(absent)} required file(s) of manifest "
                f"{manifest.name!r}: {shown}"
            )
    dest.mkdir(parents=True, exist_ok=True)
    report = FetchReport(source=src.description, dest=dest, manifest=manifest.name)
    report.stale_parts_removed = _remove_stale_parts(dest, manifest, time.time())

    todo: list[ManifestEntry] = []
    for entry in manifest.entries:
        if not force and _present_and_valid(dest / entry.path, entry):
            report.already_present.append(entry.path)
        else:
            todo.append(entry)

    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(
            total=sum(e.size for e in todo), unit="B", unit_scale=True, desc="webshop data", leave=False, disable=None
        )  # disable=None: no bar when stderr is not a terminal (CI logs)
    try:
        for entry in todo:
            stream = src.open(entry.path)
            if stream is None:
                if entry.optional:
                    report.missing_optional.append(entry.path)
                    if bar is not None:
                        bar.total -= entry.size
                        bar.refresh()
                    continue
                raise FetchError(f"{entry.path}: not found at {src.location(entry.path)}")
            with stream:
                n = _install(entry, stream, dest / entry.path, src.location(entry.path), bar.update if bar else None)
            report.fetched.append(entry.path)
            report.bytes_fetched += n
            if log is not None:
                log(f"fetched {entry.path} ({n:,} bytes, sha256 ok)")
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.monotonic() - started
    return report
