"""`build-preferences --push_to_hub` against a local Hub (tests/hub_server.py) on 127.0.0.1.

The pushes run the real code path (`HfApi.create_repo`/`create_commit`, `DatasetDict.push_to_hub`)
in child processes pointed at the local server by ``HF_ENDPOINT`` (huggingface_hub and datasets
read it at import). Xet is off (``HF_HUB_DISABLE_XET=1``; the server speaks the legacy LFS batch
protocol huggingface_hub falls back to), so the Parquet shards go as LFS objects.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_from_disk

from hub_server import FakeHub
from webshop_trl.trajectories import Step, Trajectory, write_trajectories

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_local_test_token"


def trajectories(n: int = 12) -> list[Trajectory]:
    out = []
    for g in range(n):
        page = f"Instruction: [SEP] i need item {g} [SEP] Back to Search [SEP] B{g:03d}A [SEP] B{g:03d}B [SEP] B{g:03d}C"
        cands = ["click[back to search]", f"click[b{g:03d}a]", f"click[b{g:03d}b]", f"click[b{g:03d}c]"]
        item = f"Instruction: [SEP] i need item {g} [SEP] Back to Search [SEP] < Prev [SEP] size [SEP] small [SEP] large [SEP] Buy Now"
        out.append(Trajectory(
            goal={"index": 100 + g, "kind": "synthetic"},
            steps=[
                Step("search", ["search[<query>]"], f"search[item {g}]"),
                Step(page, ["search[<query>]", *cands], cands[1 + g % 3]),
                Step(item, ["click[back to search]", "click[< prev]", "click[small]", "click[large]", "click[buy now]"], "click[large]"),
                Step(item, ["click[back to search]", "click[< prev]", "click[small]", "click[large]", "click[buy now]"], "click[buy now]"),
            ],
            final_reward=1.0, source="hand",
        ))
    return out


def cli(args: list[str], env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "webshop_trl.cli.main", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def hub():
    with FakeHub(token=TOKEN) as server:
        yield server


def read_parquet(content: bytes) -> list[dict]:
    return pq.read_table(io.BytesIO(content)).to_pylist()


def test_build_and_push_to_a_local_hub(tmp_path, hub):
    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, trajectories())
    env = {**os.environ, **hub.env(tmp_path / "hf-home")}
    out = tmp_path / "prefs"
    r = cli(["build-preferences", str(demos), "--rejection", "uniform", "--eval_fraction", "0.25", "--output", str(out),
             "--quiet", "--push_to_hub", "--hub_dataset_id", "tester/webshop-dpo"], env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"pushed to {hub.url}/datasets/tester/webshop-dpo" in r.stdout
    assert not hub.unhandled and not hub.errors, (hub.unhandled, hub.errors)

    local = load_from_disk(str(out))
    files = hub.files("tester/webshop-dpo")
    assert set(files) == {"README.md", "build_info.json", "data/train-00000-of-00001.parquet", "data/eval-00000-of-00001.parquet"}
    for split in ("train", "eval"):
        assert read_parquet(files[f"data/{split}-00000-of-00001.parquet"]) == local[split].to_list()
        assert hub.repo("tester/webshop-dpo").resolve("main").files[f"data/{split}-00000-of-00001.parquet"].lfs
    assert json.loads(files["build_info.json"]) == json.loads((out / "build_info.json").read_text())
    # the card: ours, with push_to_hub's metadata (dataset_info, configs) added to its YAML header
    card = files["README.md"].decode()
    local_card = (out / "README.md").read_text()
    assert card.endswith(local_card.split("\n---\n", 1)[1])
    header = card.split("\n---\n", 1)[0]
    for key in ("pretty_name:", "- webshop", "dataset_info:", "configs:", "path: data/train-*", "path: data/eval-*",
                f"num_examples: {local['train'].num_rows}"):
        assert key in header, key
    log = hub.commit_log("tester/webshop-dpo")
    assert [c.summary for c in log][1:] == ["Dataset card and build info (webshop-trl build-preferences)",
                                            "Preference pairs (webshop-trl build-preferences)"]
    methods = {path: method for method, path in hub.requests}
    assert methods["/api/repos/create"] == "POST" and "/datasets/tester/webshop-dpo.git/info/lfs/objects/batch" in methods

    # what was pushed loads back with datasets.load_dataset, from the local hub
    code = ("import datasets, json; d = datasets.load_dataset('tester/webshop-dpo'); "
            "print(json.dumps({s: d[s].to_list() for s in d}))")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert loaded == {s: local[s].to_list() for s in ("train", "eval")}


def test_failed_push_keeps_the_saved_dataset_and_push_only_retries(tmp_path, hub):
    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, trajectories(6))
    env = {**os.environ, **hub.env(tmp_path / "hf-home")}
    out = tmp_path / "prefs"
    r = cli(["build-preferences", str(demos), "--rejection", "uniform", "--output", str(out), "--quiet",
             "--push-to-hub", "--hub-dataset-id", "tester/retry"], {**env, "HF_TOKEN": "hf_wrong"})
    assert r.returncode == 2
    assert "push to the Hub (tester/retry) failed" in r.stderr and "--push-only" in r.stderr
    assert load_from_disk(str(out))["train"].num_rows > 0 and ("dataset", "tester/retry") not in hub.repos

    r = cli(["build-preferences", "--output", str(out), "--push-only", "--hub-dataset-id", "tester/retry", "-q",
             "--hub-revision", "dpo-v1"], env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert hub.files("tester/retry") == {}  # main untouched: everything went to the branch
    files = hub.files("tester/retry", revision="dpo-v1")
    assert read_parquet(files["data/train-00000-of-00001.parquet"]) == load_from_disk(str(out))["train"].to_list()
    assert files["README.md"].decode().endswith((out / "README.md").read_text().split("\n---\n", 1)[1])
    assert not hub.unhandled and not hub.errors
