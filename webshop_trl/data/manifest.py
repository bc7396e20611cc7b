"""The list of WebShop files that `webshop-trl data fetch` copies, with the sha256 of each.

Why a manifest in the package: a fetch can then prove that what landed in data/webshop is byte
for byte the release the tests and reference numbers were computed on, whatever the source (a
shared folder, a mirror URL). A user with a newer or different data release passes their own
manifest (``--manifest FILE``, a JSON file; ``webshop-trl data manifest DIR`` writes one) rather
than switching verification off.

Optional entries (the prebuilt Lucene index used only by the parity benchmark, the provenance
notes) are fetched and verified when the source has them and skipped when it does not.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from webshop_trl.errors import FetchError

MANIFEST_FORMAT = "webshop-trl-manifest/1"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One file: its path relative to the data folder (always "/"-separated), sha256 and size."""

    path: str
    sha256: str
    size: int
    optional: bool = False


@dataclass(frozen=True)
class Manifest:
    """A named list of files. ``name`` says which release it describes (shown in messages)."""

    name: str
    entries: tuple[ManifestEntry, ...]

    @property
    def required(self) -> tuple[ManifestEntry, ...]:
        return tuple(e for e in self.entries if not e.optional)

    @property
    def optional(self) -> tuple[ManifestEntry, ...]:
        return tuple(e for e in self.entries if e.optional)

    def to_json(self) -> str:
        files = [{k: v for k, v in asdict(e).items() if k != "optional" or v} for e in self.entries]
        return json.dumps({"format": MANIFEST_FORMAT, "name": self.name, "files": files}, indent=1) + "\n"


def check_relative_path(path: str, where: str) -> str:
    """A manifest path must stay inside the destination folder: relative, no "..", no backslash."""
    p = PurePosixPath(path)
    if not path or "\\" in path or p.is_absolute() or ".." in p.parts or str(p) != path or path.startswith("./"):
        raise FetchError(f"{where}: path {path!r} must be a plain relative path like 'dir/file.json'")
    return path


def _entry_from_json(raw: Any, where: str) -> ManifestEntry:
    if not isinstance(raw, dict):
        raise FetchError(f"{where} is a {type(raw).__name__}, expected an object with path, sha256, size")
    missing = [k for k in ("path", "sha256", "size") if k not in raw]
    if missing:
        raise FetchError(f"{where} lacks {', '.join(missing)}")
    path, sha, size = raw["path"], raw["sha256"], raw["size"]
    if not isinstance(path, str):
        raise FetchError(f"{where}: path must be a string")
    check_relative_path(path, where)
    if not isinstance(sha, str) or not _SHA256.match(sha.lower()):
        raise FetchError(f"{where} ({path}): sha256 {sha!r} is not 64 hex digits")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise FetchError(f"{where} ({path}): size {size!r} is not a non-negative integer")
    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        raise FetchError(f"{where} ({path}): optional must be true or false")
    return ManifestEntry(path, sha.lower(), size, optional)


def load_manifest(path: str | Path) -> Manifest:
    """Read a JSON manifest (as written by `Manifest.to_json`), checking every entry."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FetchError(f"manifest file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FetchError(f"manifest {path} could not be read as JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise FetchError(f"manifest {path}: expected an object with a 'files' list")
    entries = tuple(_entry_from_json(raw, f"manifest {path}: files[{i}]") for i, raw in enumerate(data["files"]))
    seen: set[str] = set()
    for e in entries:
        if e.path in seen:
            raise FetchError(f"manifest {path}: {e.path!r} is listed twice")
        seen.add(e.path)
    if not entries:
        raise FetchError(f"manifest {path}: the 'files' list is empty")
    return Manifest(name=str(data.get("name") or path.name), entries=entries)


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def manifest_from_dir(folder: str | Path, name: str, optional: Iterable[str] = ()) -> Manifest:
    """Hash every file under ``folder`` (hidden files skipped); paths under an ``optional``
    prefix are marked optional. For users who publish or mirror their own data release."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FetchError(f"not a folder: {folder}")
    prefixes = tuple(optional)
    entries = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if not p.is_file() or any(part.startswith(".") for part in PurePosixPath(rel).parts):
            continue
        entries.append(ManifestEntry(rel, sha256_file(p), p.stat().st_size, rel.startswith(prefixes)))
    if not entries:
        raise FetchError(f"no files under {folder}")
    return Manifest(name=name, entries=tuple(entries))


# The 1k-product release in ../shared/webshop_data (see its PROVENANCE.md).
WEBSHOP_1K = Manifest(
    name="webshop-1k (shared/webshop_data)",
    entries=(
    ManifestEntry("items_shuffle_1000.reconstructed.json", "472d2b756304ec53317dc4ed78e039b77db9a56f0384dda0002056cb498b1395", 2747586),
    ManifestEntry("items_ins_v2_1000.json", "f88a36314a397b53b3d9c3fa5878e5f7b26d35019a51ec83fbedeca61a948f6f", 147099),
    ManifestEntry("items_human_ins.subset_1000.json", "8bc0ae02b37351395091c55b29352ba21a26a231d093c151cf1a83847ca66359", 5640),
    ManifestEntry("human_goals.json", "b68746ed66cd31fdc5f70eb3f5831a46b38163563b57a66ddcab8fd60ee0cbdc", 999419),
    ManifestEntry("goal_query_map.json", "1524f438ffbc51c7e308e635d7d9e14fa696b08f5d4300922d454ef0105cea86", 244809),
    ManifestEntry("webshop_1k_documents.jsonl", "24fb9257c435accee9cc82e570dc8ec76a218d3b188222a84fdeb7fc5937d00e", 5522996),
    ManifestEntry("human_session_logs/20220427_1_12.jsonl", "55f6c0eda3e6b2c9cdd1bbf40da2241d1fde24d5aac2476e8a9decf9ceb78535", 5298),
    ManifestEntry("human_session_logs/20220427_1_13.jsonl", "287af3889c12cd33788e59f7b255c17d2554e5a458f4f26290fb3c5bc460c219", 6017),
    ManifestEntry("human_session_logs/20220427_1_15.jsonl", "08417d5e756736178cf09a75a5d77c051e1ad4d3472b7e0974999efab90daddc", 5267),
    ManifestEntry("human_session_logs/20220427_1_17.jsonl", "00859e263c96f62f8999a9773d6be6a13e971f3a1ec2c0951d9b989b5fa0d743", 5449),
    ManifestEntry("human_session_logs/20220427_1_18.jsonl", "2cdba54bdd3c2877285bfa044f61d20277a100ef55cd54bc3761ff9b2b6ae2e6", 3123),
    ManifestEntry("human_session_logs/20220427_1_21.jsonl", "3e32d0c311478c9505eb54b335113c6d61b42cc6054fb78deea3d08d456e6217", 4443),
    ManifestEntry("human_session_logs/20220427_1_23.jsonl", "95959eeb4d5cfe813c88bd534cae89341f8ad5fdab64c8d5245914b3b2bcb329", 4867),
    ManifestEntry("human_session_logs/20220427_1_6.jsonl", "f1e9dfbbafd47373ef8cec5e6d23b4c4919a3056437e1bcb872cbc2db4a4569b", 13966),
    ManifestEntry("human_session_logs/20220427_1_7.jsonl", "26ed0213c32e8856ec71e0a56fa6d6521647ab424aa2bbe763912ddeb3cb910a", 5438),
    ManifestEntry("reference/reward_cases_dev.json", "0db2dd64eac0db0456525dc960e0f271435fead5929b9cf7c70932f6287f4778", 2509186),
    ManifestEntry("PROVENANCE.md", "3a6afa7e3c46d97b436bc1736e0a412c37074e331304ddecd791a2c7287a4236", 3798, optional=True),
    ManifestEntry("reference/README.md", "10b8914911cc44ffc7d828e80e813ab6f355804f570cadbccce16564f3d1be82", 3266, optional=True),
    ManifestEntry("lucene_index_1k/_1.fdm", "804476acb856e9576d9b124182c73cfb8c8979fd368a7083d18c0113fdd8bd9f", 157, optional=True),
    ManifestEntry("lucene_index_1k/_1.fdt", "b28ae2c4de76ce0faf8b14b4a41513e942022590c286ec9e687566874242d750", 2231467, optional=True),
    ManifestEntry("lucene_index_1k/_1.fdx", "eba311bf30621c6db1639ba4c422408c8452f71c0ce3fe1c9c776eaafd0cc617", 271, optional=True),
    ManifestEntry("lucene_index_1k/_1.fnm", "6ec0aac31b20abb904cdb2358603c7098737def2faa944012bf7cc1edf9bacce", 343, optional=True),
    ManifestEntry("lucene_index_1k/_1.nvd", "b4c0789f2eece575be17717e0df676baf4e0687696922cca05856cd0e69a97a9", 1059, optional=True),
    ManifestEntry("lucene_index_1k/_1.nvm", "ec8dc5b89dfadea60a6265f5ce9cfb581cdd17595890f6887742818fc59802d4", 103, optional=True),
    ManifestEntry("lucene_index_1k/_1.si", "28ba9006c9c00b630be3dec6b573318b23fafef360f77855ab6c4abc11ef477e", 516, optional=True),
    ManifestEntry("lucene_index_1k/_1.tvd", "063e2301090ec751e271a7b0567b79123e7faa74fba3cc0afd2987cbc9e98b19", 440053, optional=True),
    ManifestEntry("lucene_index_1k/_1.tvm", "35bfc303b194d6a0522499ecf00ae73a1f90ed0238b625544a9fafa709ad4072", 162, optional=True),
    ManifestEntry("lucene_index_1k/_1.tvx", "3fe30957a044b03dbccd504f4bba2c89e2bccf7d735e42574d35ff59d6e0635c", 258, optional=True),
    ManifestEntry("lucene_index_1k/_1_Lucene90_0.doc", "9b77bd1d902553c9b23b8d68195385539a71e9b24262f2893a7aee6030ebdb70", 91405, optional=True),
    ManifestEntry("lucene_index_1k/_1_Lucene90_0.dvd", "48c49d4dd7aabfe41c5d87085a3adcfe2b0e18a37e507c7ff133d23ce0731cbd", 10073, optional=True),
    ManifestEntry("lucene_index_1k/_1_Lucene90_0.dvm", "7e892e9d63af7bc38f12c24395aec599639cc6f221a52d550cd92f72f60b8112", 133, optional=True),
    ManifestEntry("lucene_index_1k/_1_Lucene90_0.pos", "9ed9dfc3bedef2c4d84464dad77673cc7ecdef3eed920036835f0e5b94221b8a", 126225, optional=True),
    ManifestEntry("lucene_index_1k/_1_Lucene90_0.tim", "07c47c46e16d634758012d230381deca69195d913c97f55778c514e66f6caeda", 126958, optional=True),
    ManifestEntry("lucene_index_1k/_1_Lucene90_0.tip", "3f2a874be6b3df69a7d4b8831fe680091685827c6ede0bc01ed15c55522816b8", 3151, optional=True),
    ManifestEntry("lucene_index_1k/_1_Lucene90_0.tmd", "638a5cf18aeb7008ad6fc3668a6bdb10bcf5f1d46c2c8c24d1d0a7fe562cfef3", 276, optional=True),
    ManifestEntry("lucene_index_1k/segments_2", "95c7ed15bd6fcbd631d8ac83421e24e54eec59b3fa50ae38d83c2f6f12abfb0b", 154, optional=True),
    ),
)
DEFAULT_MANIFEST = WEBSHOP_1K
