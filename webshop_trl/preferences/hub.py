"""Pushing a preference dataset to the Hugging Face Hub, with its card and build info.

Two commits to a dataset repo (created if missing):

1. ``README.md`` (the card) and ``build_info.json``, with `HfApi.create_commit`;
2. the data, with `DatasetDict.push_to_hub` (Parquet shards under ``data/``, old shards removed).
   It reads the card of step 1 and adds its metadata (``dataset_info``, ``configs``) to the YAML
   header, keeping the card's text, so the final card describes both the build and the files.

The endpoint and token are huggingface_hub's (``HF_ENDPOINT``, ``HF_TOKEN`` or ``hf auth login``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from webshop_trl.preferences.build import BUILD_INFO_NAME, CARD_NAME


def push_preferences_to_hub(
    dataset: Any,
    repo_id: str,
    *,
    card: str,
    build_info: dict[str, Any],
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    api: Any = None,
) -> dict[str, str]:
    """Push ``dataset`` (a DatasetDict) to the dataset repo ``repo_id`` with ``card`` and
    ``build_info``. Returns ``{"repo_id", "url", "card_commit", "data_commit"}``.

    ``revision`` names a branch (created if missing). ``api`` is an `HfApi` to use for the repo
    and card (default: a new one with ``token``); the data always goes through
    ``dataset.push_to_hub``.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    api = api if api is not None else HfApi(token=token)
    repo_url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    repo_id = getattr(repo_url, "repo_id", None) or repo_id
    if revision is not None:
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
    info_bytes = (json.dumps(build_info, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    card_commit = api.create_commit(
        repo_id,
        operations=[CommitOperationAdd(CARD_NAME, card.encode("utf-8")), CommitOperationAdd(BUILD_INFO_NAME, info_bytes)],
        commit_message="Dataset card and build info (webshop-trl build-preferences)",
        repo_type="dataset",
        revision=revision,
    )
    data_commit = dataset.push_to_hub(
        repo_id,
        private=private,
        token=token,
        revision=revision,
        commit_message=commit_message or "Preference pairs (webshop-trl build-preferences)",
    )
    return {
        "repo_id": repo_id,
        "url": str(repo_url),
        "card_commit": getattr(card_commit, "commit_url", str(card_commit)),
        "data_commit": getattr(data_commit, "commit_url", str(data_commit)),
    }


def push_saved_preferences(path: str | os.PathLike, repo_id: str, **kwargs: Any) -> dict[str, str]:
    """Push a folder written by `save_preferences` (e.g. after a failed push), card and build info included."""
    from webshop_trl.preferences.storage import load_preferences

    dataset, info, card = load_preferences(path)
    return push_preferences_to_hub(dataset, repo_id, card=card, build_info=info, **kwargs)
