"""Shared fixtures: the real 1k WebShop catalog (fetched into data/, or ../shared as fallback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webshop_trl import paths


def _webshop_dir() -> Path:
    fetched = paths.webshop_data_dir()
    if (fetched / "items_shuffle_1000.reconstructed.json").is_file():
        return fetched
    source = paths.default_source()
    if source is not None and (source / "items_shuffle_1000.reconstructed.json").is_file():
        return source
    pytest.fail(
        "WebShop data not found: run `make data` (or `webshop-trl data fetch --source DIR`) "
        "or put the shared folder beside the checkout"
    )


@pytest.fixture(scope="session")
def webshop_dir() -> Path:
    return _webshop_dir()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only reference folder (lucene_index_1k, reference/, session logs)."""
    source = paths.default_source()
    if source is None:
        pytest.skip("../shared/webshop_data is not beside this checkout")
    return source


@pytest.fixture(scope="session")
def catalog(webshop_dir):
    from webshop_trl.data import load_catalog

    return load_catalog(webshop_dir)


@pytest.fixture(scope="session")
def goals(catalog):
    from webshop_trl.data import build_goals

    return build_goals(catalog, "synthetic")


@pytest.fixture(scope="session")
def human_goals(catalog):
    from webshop_trl.data import build_goals

    return build_goals(catalog, "human")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: thread barriers on a busy 2-core machine cost more than the ops.

    Files of tiny-model tests opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """The tiny random policy (tests/tiny_policy.py, seed 0, no value head) saved once per module."""
    from tiny_policy import save_tiny_policy

    return save_tiny_policy(tmp_path_factory.mktemp("policy"), use_value_head=False)
