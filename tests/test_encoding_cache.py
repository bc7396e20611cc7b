"""`EncodingCache`: cached scoring equals the uncached path on real pages, stays bounded, is dropped
when the weights change, and is never used in training.

The policy is the tiny random `ActionScorerModel` of tests/tiny_policy.py; the pages are real
text_rich pages of the WebShop environment (1k catalog), collected along a few seeded episodes.
One test runs the real MiniLM-L6 policy with the processor settings of the IL recipe.
"""

from __future__ import annotations

import random

import pytest
import torch

from webshop_trl.envs import WebShopConfig, WebShopVectorEnv
from webshop_trl.envs.vector import session_info
from webshop_trl.policy import ActionScorerModel, EncodingCache
from webshop_trl.policy.encoding_cache import LRUStore, model_fingerprint, plan_groups

from tiny_policy import tiny_policy

pytestmark = pytest.mark.usefixtures("one_thread")

ATOL = 1e-5


def collect_steps(webshop_dir, goals, num_envs=4, step_limit=8, seed=0):
    """The choice pages of each vector step (a list of steps, each a list of (observation,
    click candidates)) along episodes whose clicks are drawn at random with ``seed``."""
    envs = WebShopVectorEnv(num_envs, WebShopConfig(data_dir=str(webshop_dir), observation_mode="text_rich", step_limit=step_limit))
    obs, infos = envs.reset(seed=seed, options={"goal_queue": list(goals)})
    rng = random.Random(seed)
    steps = []
    while envs.active.any():
        actions: list[str | None] = [None] * num_envs
        pages = []
        for i in range(num_envs):
            if not envs.active[i]:
                continue
            info = session_info(infos, i)
            clicks = [a for a in info["available_actions"] if a.startswith("click[")]
            if info["page_type"] == "search" or not clicks:
                actions[i] = f"search[{info['instruction'].lower()}]"
            else:
                pages.append((obs[i], clicks))
                actions[i] = rng.choice(clicks)
        if pages:
            steps.append(pages)
        obs, _, _, _, infos = envs.step(actions)
    return steps


@pytest.fixture(scope="module")
def steps(webshop_dir):
    return collect_steps(webshop_dir, goals=[1500, 1501, 2000, 2500, 3000, 3500])


@pytest.fixture
def model():
    return tiny_policy(seed=0, num_hidden_layers=2)


def score_steps(model, steps, cache):
    return [model.score([o for o, _ in page], [c for _, c in page], cache=cache) for page in steps]


def assert_same_scores(a, b, atol=ATOL):
    for step_a, step_b in zip(a, b, strict=True):
        for x, y in zip(step_a, step_b, strict=True):
            assert x.shape == y.shape
            assert torch.allclose(x, y, atol=atol, rtol=0), float((x - y).abs().max())
            assert int(x.argmax()) == int(y.argmax())


# --------------------------------------------------------------------------- equality
def test_cached_scores_equal_uncached_on_real_pages_across_steps(model, steps):
    assert len(steps) >= 5 and sum(len(p) for p in steps) >= 15
    cache = EncodingCache()
    uncached = score_steps(model, steps, cache=False)
    first = score_steps(model, steps, cache=cache)  # misses, then hits on recurring actions/pages
    again = score_steps(model, steps, cache=cache)  # every sequence is a hit now
    assert_same_scores(uncached, first)
    assert_same_scores(uncached, again)
    stats = cache.stats
    assert stats.actions.hits > stats.actions.misses > 0  # "click[next >]", "click[buy now]", ... recur
    assert stats.observations.misses > 0 and stats.observations.hits >= sum(len(p) for p in steps)
    assert stats.invalidations == 0 and stats.bypassed == 0


def test_values_and_act_use_the_cache_with_the_same_results(steps):
    model = tiny_policy(seed=1, use_value_head=True)
    obs = [o for page in steps[:3] for o, _ in page]
    cands = [c for page in steps[:3] for _, c in page]
    lp, values = model.score(obs, cands, return_values=True, cache=False)
    cache = model.enable_encoding_cache()
    for _ in range(2):
        lp_c, values_c = model.score(obs, cands, return_values=True)
        assert torch.allclose(values, values_c, atol=ATOL, rtol=0)
        assert_same_scores([lp], [lp_c])
        plain = model.act(obs, cands, greedy=True, cache=False)
        cached = model.act(obs, cands, greedy=True)
        assert plain.indices == cached.indices and torch.allclose(plain.log_probs, cached.log_probs, atol=ATOL, rtol=0)
    assert cache.stats.actions.hits > 0 and cache.stats.observations.hits > 0


def test_cached_forward_for_rollout_loops_under_no_grad(steps):
    model = tiny_policy(seed=2, use_value_head=True)
    obs, cands = [o for o, _ in steps[2]], [c for _, c in steps[2]]
    batch = model.processor(obs, cands)
    cache = model.enable_encoding_cache()
    with torch.no_grad():
        plain = model(**batch)
        for _ in range(2):
            out = model.cached_forward(**batch)
            assert torch.allclose(out.log_probs, plain.log_probs, atol=ATOL, rtol=0)
            assert torch.allclose(out.state_values, plain.state_values, atol=ATOL, rtol=0)
            assert torch.equal(out.candidate_mask, plain.candidate_mask)
    assert cache.stats.observations.hits == len(obs)
    model.train()
    out = model.cached_forward(**batch)  # train mode: plain forward, with grad
    assert out.log_probs.requires_grad and cache.stats.bypassed == 1
    with pytest.raises(ValueError, match="no loss"):
        model.cached_forward(**model.processor(obs, cands, labels=[0] * len(obs)))


def test_chunked_scoring_and_pages_repeated_within_a_call(model, steps):
    page = steps[1]
    obs = [o for o, _ in page] * 2  # two sessions on the same page in one call
    cands = [c for _, c in page] * 2
    plain = model.score(obs, cands, cache=False)
    cache = EncodingCache()
    assert_same_scores([plain], [model.score(obs, cands, cache=cache)])
    assert cache.stats.observations.misses == len(obs)  # looked up per page ...
    assert len(cache.observations) == len(set(obs)) < len(obs)  # ... but each distinct page encoded once
    distinct_tokens = sum(s.shape[0] for s in cache.observations._data.values()) + sum(
        s.shape[0] for s in cache.actions._data.values())
    assert cache.stats.encoded_tokens == distinct_tokens
    chunked = EncodingCache()
    assert_same_scores([plain], [model.score(obs, cands, cache=chunked, batch_size=3)])
    assert chunked.stats.observations.hits + chunked.stats.observations.misses == len(obs)
    assert len(chunked.observations) == len(set(obs))


def test_minilm_cached_equals_uncached_with_the_il_settings(steps):
    model = ActionScorerModel.from_bert(
        add_webshop_tokens=True, use_value_head=False,
        processor_kwargs={"max_observation_length": 384, "max_action_length": 32},
    )
    torch.manual_seed(0)
    with torch.no_grad():  # a head that separates the candidates more than its init does
        model.score_out.weight.mul_(20.0)
    few = [steps[0][:2], steps[3][:2], steps[0][:2]]  # the third step recurs
    cache = EncodingCache()
    assert_same_scores(score_steps(model, few, cache=False), score_steps(model, few, cache=cache))
    assert cache.stats.observations.hits == 2 and cache.stats.actions.hits > 0


def test_bf16_entries_are_kept_apart_and_close_to_the_uncached_bf16_path(model, steps):
    cache = EncodingCache()
    obs, cands = [o for o, _ in steps[0]], [c for _, c in steps[0]]
    model.score(obs, cands, cache=cache)
    misses = cache.stats.actions.misses
    bf16 = model.score(obs, cands, cache=cache, bf16=True)
    assert cache.stats.actions.misses == 2 * misses  # fp32 states are not reused under autocast
    plain = model.score(obs, cands, cache=False, bf16=True)
    # bf16 rounding: a different batch (other shapes, possibly another attention kernel) is not bit-identical
    assert_same_scores([plain], [bf16], atol=5e-2)


# --------------------------------------------------------------------------- bounds
def test_lru_store_bounds_entries_and_bytes_and_evicts_least_recently_used():
    store = LRUStore(max_entries=3, max_bytes=None)
    for k in "abc":
        store.put(k, torch.zeros(4))
    assert store.get("a") is not None  # "a" becomes the most recently used
    store.put("d", torch.zeros(4))
    assert "b" not in store and all(k in store for k in "acd") and store.stats.evictions == 1
    by_bytes = LRUStore(max_entries=None, max_bytes=100)  # 100 bytes: three 32-byte tensors
    for k in range(5):
        by_bytes.put(k, torch.zeros(8))
        assert by_bytes.nbytes <= 100
    assert len(by_bytes) == 3 and by_bytes.nbytes == 96 and 4 in by_bytes and 0 not in by_bytes
    by_bytes.put("big", torch.zeros(100))  # larger than the whole budget: not stored, nothing evicted
    assert "big" not in by_bytes and len(by_bytes) == 3
    off = LRUStore(max_entries=0, max_bytes=None)
    off.put("a", torch.zeros(1))
    assert len(off) == 0


def test_cache_bounds_hold_on_real_pages_and_scores_stay_equal(model, steps):
    cache = EncodingCache(max_action_entries=5, max_observation_bytes=20_000)
    plain = score_steps(model, steps, cache=False)
    cached = score_steps(model, steps, cache=cache)
    assert_same_scores(plain, cached)
    assert len(cache.actions) <= 5 and cache.actions.stats.evictions > 0
    assert cache.observations.nbytes <= 20_000 and cache.observations.stats.evictions > 0
    no_pages = EncodingCache(max_observation_entries=0)
    assert_same_scores(plain, score_steps(model, steps, cache=no_pages))
    assert len(no_pages.observations) == 0 and len(no_pages.actions) > 0


def test_plan_groups_covers_every_sequence_in_length_order():
    rng = random.Random(0)
    for _ in range(50):
        lengths = sorted((rng.randint(1, 384) for _ in range(rng.randint(1, 40))), reverse=True)
        groups = plan_groups(lengths, max_tokens=2048, overhead_tokens=64, hidden_size=384)
        assert [i for a, b in groups for i in range(a, b)] == list(range(len(lengths)))
        assert all(b - a == 1 or (b - a) * lengths[a] <= 2048 for a, b in groups)
    # equal lengths stay together up to the token budget; very different ones are split
    assert plan_groups([10] * 300, 1000, 64, 384) == [(0, 100), (100, 200), (200, 300)]
    assert len(plan_groups([384, 384, 20, 20, 20], 8192, 64, 384)) == 2


# --------------------------------------------------------------------------- invalidation
def train_step(model, steps, optimizer):
    model.train()
    obs, cands = [o for o, _ in steps[0]], [c for _, c in steps[0]]
    batch = model.processor(obs, cands, labels=[0] * len(obs))
    model(**batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    model.eval()


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.1),
        lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=False),
        lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=True),
        lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True),
    ],
    ids=["sgd", "adamw-for-loop", "adamw-foreach", "adamw-fused"],
)
def test_an_optimizer_step_invalidates_the_cache(model, steps, make_optimizer):
    cache = model.enable_encoding_cache()
    before = score_steps(model, steps[:3], cache=None)
    assert len(cache) > 0
    train_step(model, steps, make_optimizer(list(model.parameters())))
    after_cached = score_steps(model, steps[:3], cache=None)
    after_plain = score_steps(model, steps[:3], cache=False)
    assert_same_scores(after_plain, after_cached)
    assert cache.stats.invalidations == 1
    assert any(not torch.allclose(x, y, atol=1e-3) for a, b in zip(before, after_plain) for x, y in zip(a, b))


@pytest.mark.parametrize("assign", [False, True])
def test_load_state_dict_invalidates_the_cache(steps, assign):
    model, other = tiny_policy(seed=0), tiny_policy(seed=1)
    cache = model.enable_encoding_cache()
    score_steps(model, steps[:2], cache=None)
    model.load_state_dict({k: v.clone() for k, v in other.state_dict().items()}, assign=assign)
    assert_same_scores(score_steps(other, steps[:2], cache=False), score_steps(model, steps[:2], cache=None))
    assert cache.stats.invalidations == 1


def test_writes_through_data_and_moves_change_the_fingerprint(model):
    fp = model_fingerprint(model)
    assert model_fingerprint(model) == fp  # stable while nothing changes
    model.score_out.weight.data.mul_(1.5)  # .data bypasses the version counter; the probes see it
    fp2 = model_fingerprint(model)
    assert fp2 != fp and fp2[0] == fp[0]
    with torch.no_grad():
        model.token_proj.bias.add_(1.0)
    fp3 = model_fingerprint(model)
    assert fp3[0] > fp2[0]
    model.double()
    assert model_fingerprint(model)[1] != fp3[1]


def test_clear_drops_everything(model, steps):
    cache = model.enable_encoding_cache()
    score_steps(model, steps[:2], cache=None)
    assert len(cache) > 0 and cache.nbytes > 0
    model.clear_encoding_cache()
    assert len(cache) == 0 and cache.nbytes == 0
    model.disable_encoding_cache()
    assert model.encoding_cache is None


# --------------------------------------------------------------------------- never in training
def test_train_mode_never_reads_or_writes_the_cache(steps):
    model = tiny_policy(seed=0, encoder_dropout=0.3, train=True)
    cache = model.enable_encoding_cache()
    obs, cands = [o for o, _ in steps[0]], [c for _, c in steps[0]]
    a = model.score(obs, cands)
    b = model.score(obs, cands)
    assert len(cache) == 0 and cache.stats.bypassed == 2
    assert cache.stats.actions.hits == cache.stats.actions.misses == 0
    assert any(not torch.allclose(x, y) for x, y in zip(a, b))  # dropout is live: nothing was reused
    model(**model.processor(obs, cands, labels=[0] * len(obs))).loss.backward()  # forward never uses it
    assert len(cache) == 0
    model.eval()
    model.score(obs, cands)
    assert len(cache) > 0


def test_bad_cache_argument(model, steps):
    with pytest.raises(TypeError, match="EncodingCache"):
        model.score([steps[0][0][0]], [steps[0][0][1]], cache="yes")
    with pytest.raises(ValueError, match="max_tokens_per_batch"):
        EncodingCache(max_tokens_per_batch=0)
