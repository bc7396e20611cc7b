"""Imitation learning: decision-step data, the collator, `ILTrainer` and the recipe entry script.

Everything runs on a tiny random BERT (2 layers, hidden 32) saved as a local encoder folder and
on synthetic text_rich pages where the right click is the colour the instruction asks for, so
the file takes seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from webshop_trl.errors import DataFileError
from webshop_trl.policy import ActionScorerModel, ActionScoringProcessor
from webshop_trl.trainers import (
    ILConfig,
    ILDataCollator,
    ILModelArguments,
    ILScriptArguments,
    ILTrainer,
    build_il_datasets,
    freeze_encoder,
    load_decision_steps,
    load_policy,
)
from webshop_trl.trainers.il_data import split_by_group
from webshop_trl.trajectories import Step, Trajectory, write_trajectories

REPO = Path(__file__).resolve().parents[1]
COLORS = ["red", "blue", "green", "black"]
ITEMS = ["shirt", "dress", "shoes"]
WORDS = (
    "webshop instruction i need a want back to search next prev page results total item click buy now "
    "description features reviews price size small large color button clicked < > [ ] : - $ . , 1 2 3 4 5 b0"
).split() + COLORS + ITEMS
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny ops: one thread avoids OpenMP barrier waits on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_tokenizer() -> BertTokenizer:
    # transformers 5: BertTokenizer(vocab_file=...) silently built a 5-token vocab; vocab=dict works
    return BertTokenizer(vocab={tok: i for i, tok in enumerate(dict.fromkeys(SPECIALS + WORDS))})


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> Path:
    """A tiny random BERT checkpoint folder (weights + tokenizer), as from_bert expects."""
    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    tokenizer = make_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def page(color: str, item: str, kind: str = "item", clicked: str | None = None) -> tuple[str, list[str]]:
    """A text_rich page for the goal 'i need a <color> <item>' and its click candidates."""
    head = f"WebShop\nInstruction: \ni need a {color} {item}\n[button] Back to Search [button_]\n"
    if kind == "results":
        asins = [f"b0{i}" for i in range(1, 4)]
        body = "".join(f"[button] {a} [button_]\n{c} {item}\n$ 1.2\n" for a, c in zip(asins, COLORS))
        return head + "[button] Next > [button_]\n" + body, ["click[back to search]", "click[next >]"] + [f"click[{a}]" for a in asins]
    options = "".join(
        f"  [clicked button] {c} [clicked button_]\n" if c == clicked else f"  [button] {c} [button_]\n" for c in COLORS
    )
    body = f"[button] < Prev [button_]\ncolor\n{options}{item}\nPrice: $ 2.3\n[button] Buy Now [button_]\n"
    return head + body, ["click[back to search]", "click[< prev]", "click[buy now]"] + [f"click[{c}]" for c in COLORS]


def make_trajectory(goal_index: int, color: str, item: str, reward: float = 1.0) -> Trajectory:
    results, results_cands = page(color, item, "results")
    item_page, item_cands = page(color, item)
    chosen_page, chosen_cands = page(color, item, clicked=color)
    return Trajectory(
        goal={"index": goal_index, "instruction_text": f"i need a {color} {item}"},
        steps=[
            Step("WebShop\nInstruction: \ni need a ...\n[button] Search [button_]", ["search[<query>]"], f"search[{color} {item}]"),
            Step(results, ["search[<query>]"] + results_cands, "click[b01]"),
            Step(item_page, item_cands, f"click[{color}]"),
            Step(chosen_page, chosen_cands, "click[buy now]", reward),
        ],
        final_reward=reward,
        source="expert",
    )


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demos") / "demos.jsonl"
    trajs = [make_trajectory(1500 + i, COLORS[i % 4], ITEMS[i % 3], reward=1.0 if i % 5 else 0.5) for i in range(20)]
    write_trajectories(path, trajs)
    return path


def tiny_args(tmp_path: Path, **overrides) -> ILConfig:
    kwargs = dict(
        output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none", save_strategy="no", max_observation_length=96,
        max_action_length=16, per_device_train_batch_size=4, per_device_eval_batch_size=8, gradient_accumulation_steps=1,
        learning_rate=3e-3, num_train_epochs=1, logging_steps=1, seed=0, disable_tqdm=True,
    )
    kwargs.update(overrides)
    return ILConfig(**kwargs)


def tiny_policy(encoder_dir: Path, args: ILConfig | None = None, **model_kwargs) -> ActionScorerModel:
    torch.manual_seed(0)
    overrides = args.processor_overrides() if args is not None else {"max_observation_length": 96, "max_action_length": 16}
    return load_policy(ILModelArguments(encoder_name_or_path=str(encoder_dir), **model_kwargs), overrides)


# --------------------------------------------------------------------------- data
def test_collator_handles_variable_candidates(encoder_dir):
    model = tiny_policy(encoder_dir)
    obs1, c1 = page("red", "shirt", "results")
    obs2, c2 = page("blue", "dress")
    features = [
        {"observation": obs1, "candidates": c1, "label": 2, "goal_index": 3, "source": "expert", "length": 9},
        {"observation": obs2, "candidates": c2, "label": 4},
        {"observation": obs2, "candidates": c2[:1], "label": 0},
        {"observation": obs1, "available_actions": c1, "action": "click[b03]"},
    ]
    batch = ILDataCollator(model.processor)(features)
    assert batch["num_candidates"].tolist() == [len(c1), len(c2), 1, len(c1)]
    assert batch["labels"].tolist() == [2, 4, 0, 4]
    assert batch["input_ids"].shape[0] == 4 and batch["action_index"].shape[0] == 2 * len(c1) + len(c2) + 1
    out = model.eval()(**batch)
    assert out.logits.shape == (4, max(len(c1), len(c2)))
    assert out.candidate_mask.sum(-1).tolist() == [len(c1), len(c2), 1, len(c1)]
    assert torch.isinf(out.log_probs[2, 1:]).all() and out.log_probs[2, 0].item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="no label"):
        ILDataCollator(model.processor)([{"observation": obs1, "candidates": c1}])
    with pytest.raises(ValueError, match="empty"):
        ILDataCollator(model.processor)([])


def test_decision_steps_from_trajectories_saved_datasets_and_goal_split(demos, tmp_path):
    ds = load_decision_steps([demos])
    assert len(ds) == 60  # 20 trajectories x 3 clicks (the search step is skipped)
    assert {"observation", "candidates", "label", "goal_index", "group", "length"} <= set(ds.column_names)
    row = ds[0]
    assert row["candidates"][row["label"]] == "click[b01]" and "search[<query>]" not in row["candidates"]
    assert len(load_decision_steps([demos], min_reward=1.0)) == 48  # every 5th trajectory has reward 0.5

    train, eval_ = split_by_group(ds, 0.2, seed=0)
    assert len(train) + len(eval_) == 60 and len(eval_) == 12  # 4 of the 20 goals, whole
    assert not set(train["goal_index"]) & set(eval_["goal_index"])
    assert split_by_group(ds, 0.2, seed=0)[1]["goal_index"] == eval_["goal_index"]  # seeded

    saved = tmp_path / "saved"
    ds.save_to_disk(str(saved))
    again = load_decision_steps([str(saved), str(demos)])  # a saved dataset and a file together
    assert len(again) == 120 and again[0]["observation"] == ds[0]["observation"]

    script = ILScriptArguments(dataset_paths=[str(demos.parent / "*.jsonl")], eval_fraction=0.25, max_train_samples=10)
    train, eval_ = build_il_datasets(script, tiny_args(tmp_path))
    assert len(train) == 10 and len(eval_) == 15

    with pytest.raises(DataFileError, match="does not exist"):
        load_decision_steps([str(tmp_path / "missing.jsonl")])
    with pytest.raises(DataFileError, match="no file matches"):
        load_decision_steps([str(tmp_path / "nothing-*.jsonl")])
    with pytest.raises(DataFileError, match="no training data"):
        build_il_datasets(ILScriptArguments(), tiny_args(tmp_path))
    with pytest.raises(ValueError, match="eval_fraction"):
        ILScriptArguments(dataset_paths=[str(demos)], eval_fraction=1.0)


# --------------------------------------------------------------------------- training
def test_a_few_steps_lower_the_loss_and_report_choice_accuracy(encoder_dir, demos, tmp_path):
    args = tiny_args(tmp_path, num_train_epochs=4)
    train, eval_ = build_il_datasets(ILScriptArguments(dataset_paths=[str(demos)], eval_fraction=0.2), args)
    model = tiny_policy(encoder_dir, args)
    trainer = ILTrainer(model=model, args=args, train_dataset=train, eval_dataset=eval_)
    assert args.remove_unused_columns  # our text columns survive Trainer's column filter
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_loss"] < 0.7 * before["eval_loss"], (before, after)
    assert after["eval_choice_accuracy"] > before["eval_choice_accuracy"]
    assert 0.0 <= after["eval_choice_accuracy"] <= 1.0 and after["eval_num_candidates"] > 1
    # per-page metrics: the exact mean over the 12 evaluation pages
    assert after["eval_choice_accuracy"] * 12 == pytest.approx(round(after["eval_choice_accuracy"] * 12))
    # eval_loss is the exact mean of -log pi(a*|s) over the evaluation pages
    scores = trainer.model.eval().score(eval_["observation"], eval_["candidates"])
    nll = [-lp[y].item() for lp, y in zip(scores, eval_["label"])]
    assert after["eval_loss"] == pytest.approx(sum(nll) / len(nll), rel=1e-4)
    train_logs = [log for log in trainer.state.log_history if "loss" in log]
    assert train_logs and all({"choice_accuracy", "entropy", "num_candidates"} <= set(log) for log in train_logs)
    assert train_logs[-1]["loss"] < train_logs[0]["loss"]


def test_loss_does_not_depend_on_micro_batching(encoder_dir, demos, tmp_path):
    """3 pages per update, as 3x1 or as 2+1 micro-batches (gradient accumulation): same update."""
    train = load_decision_steps([demos]).select(range(3))
    weights = []
    for batch, accumulation in ((3, 1), (2, 2)):
        args = tiny_args(
            tmp_path, per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation, max_steps=1,
            optim="sgd", learning_rate=0.5, max_grad_norm=0.0, logging_steps=1,
        )
        model = tiny_policy(encoder_dir, args)
        trainer = ILTrainer(model=model, args=args, train_dataset=train)
        trainer.train()
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        weights.append(trainer.state.log_history[0]["loss"])
    assert weights[1] == pytest.approx(weights[3], rel=1e-5)
    for name, tensor in weights[0].items():
        torch.testing.assert_close(tensor, weights[2][name], rtol=1e-4, atol=1e-6, msg=name)


def test_bf16_and_frozen_layers(encoder_dir, demos, tmp_path):
    args = tiny_args(tmp_path, bf16=True, max_steps=2, train_sampling_strategy="group_by_length")
    model = tiny_policy(encoder_dir, args, freeze_embeddings=True, freeze_encoder_layers=1)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("text_encoder.embeddings") or ".layer.0." in n for n in frozen)
    trainer = ILTrainer(model=model, args=args, train_dataset=load_decision_steps([demos]))
    trainer.train()
    assert math.isfinite(trainer.state.log_history[-1]["train_loss"])
    lengths = [trainer.train_dataset[i]["length"] for i in trainer._get_train_sampler()]
    assert lengths[0] == max(lengths)  # length-grouped batches, the longest first
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name
    assert freeze_encoder(model, 0, False) == 0
    with pytest.raises(ValueError, match="layers"):
        freeze_encoder(model, 5)


def test_config_and_trainer_errors(encoder_dir, tmp_path):
    with pytest.raises(ValueError, match="max_candidates"):
        tiny_args(tmp_path, max_candidates=10)
    with pytest.raises(ValueError, match="page_truncation_side"):
        tiny_args(tmp_path, page_truncation_side="middle")
    model = tiny_policy(encoder_dir)
    with pytest.raises(ValueError, match="compute_loss_func"):
        ILTrainer(model=model, args=tiny_args(tmp_path), compute_loss_func=lambda *a, **k: 0)
    with pytest.raises(ValueError, match="label_smoothing"):
        ILTrainer(model=model, args=tiny_args(tmp_path, label_smoothing_factor=0.1))
    assert tiny_args(tmp_path).processor_overrides() == {"max_observation_length": 96, "max_action_length": 16}


# --------------------------------------------------------------------------- the recipe entry script
def test_recipe_run_saves_a_checkpoint_that_reloads_to_identical_scores(encoder_dir, demos, tmp_path):
    from webshop_trl.scripts.il import main, make_parser

    out = tmp_path / "il"
    argv = [
        "--config", str(REPO / "recipes/minilm/il/config_smoke.yaml"),
        "--encoder_name_or_path", str(encoder_dir), "--dataset_paths", str(demos), "--output_dir", str(out),
        "--max_observation_length", "96", "--max_action_length", "16", "--max_steps", "3", "--learning_rate", "1e-3",
        "--disable_tqdm", "true",
    ]
    script_args, training_args, model_args = make_parser().parse_args_and_config(argv)
    assert training_args.max_steps == 3 and model_args.encoder_name_or_path == str(encoder_dir)
    trainer = main(script_args, training_args, model_args)
    assert {"config.json", "model.safetensors", "action_scoring_processor.json", "train_results.json"} <= {
        p.name for p in out.iterdir()
    }
    assert json.loads((out / "eval_results.json").read_text())["eval_choice_accuracy"] >= 0.0

    trained = trainer.model.eval()
    reloaded = ActionScorerModel.from_pretrained(out).eval()
    assert reloaded.processor.has_webshop_tokens and reloaded.processor.limits.max_observation_length == 96
    assert reloaded.value_head is None
    pages = [page("red", "shirt", "results"), page("green", "shoes"), page("black", "dress", clicked="black")]
    observations, candidates = [p[0] for p in pages], [p[1] for p in pages]
    for a, b in zip(trained.score(observations, candidates), reloaded.score(observations, candidates)):
        assert torch.equal(a, b)

    # continuing from the saved checkpoint (model_name_or_path) keeps its processor and weights
    again = load_policy(ILModelArguments(model_name_or_path=str(out)), {"max_observation_length": 64})
    assert again.processor.limits.max_observation_length == 64 and again.processor.has_webshop_tokens
    assert torch.equal(again.score_out.weight, reloaded.score_out.weight)


def test_unknown_recipe_keys_fail(tmp_path):
    from webshop_trl.scripts.il import make_parser

    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "recipes/minilm/il/config_smoke.yaml").read_text() + "\nmax_prompt_length: 128\n")
    with pytest.raises(ValueError, match="max_prompt_length"):
        make_parser().parse_args_and_config(["--config", str(bad)])


def test_cli_train_il_reports_missing_data(encoder_dir, tmp_path, capsys):
    from webshop_trl.cli.main import main

    code = main([
        "train", "il", "--config", str(REPO / "recipes/minilm/il/config_smoke.yaml"),
        "--encoder_name_or_path", str(encoder_dir), "--dataset_paths", str(tmp_path / "none.jsonl"),
        "--output_dir", str(tmp_path / "out"),
    ])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_head_learning_rate_gets_its_own_groups(encoder_dir, demos, tmp_path):
    args = tiny_args(tmp_path, head_learning_rate=1e-2, learning_rate=1e-4, weight_decay=0.01)
    model = tiny_policy(encoder_dir, args)
    trainer = ILTrainer(model=model, args=args, train_dataset=load_decision_steps([demos]))
    optimizer = trainer.create_optimizer()
    head = {id(p) for n, p in model.named_parameters() if not n.startswith("text_encoder.")}
    groups = [(g["lr"], g["weight_decay"], {id(p) in head for p in g["params"]}) for g in optimizer.param_groups]
    assert groups[0][0] == 1e-4 and groups[0][2] == {False}  # the encoder first: its rate is the one logged
    assert {lr for lr, _, kinds in groups if kinds == {True}} == {1e-2}
    assert {wd for _, wd, _ in groups} == {0.0, 0.01}  # Trainer's decay / no-decay split is kept
    assert sum(len(g["params"]) for g in optimizer.param_groups) == sum(1 for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="head_learning_rate"):
        tiny_args(tmp_path, head_learning_rate=0.0)


# --------------------------------------------------------------------------- item names, reproducibility, curves
@pytest.mark.parametrize("mode", ["text", "text_rich"])
def test_item_names_read_each_product_title_off_a_real_results_page(catalog, mode):
    from webshop_trl.envs import WebShopConfig, WebShopEnv
    from webshop_trl.policy.processing_action_scorer import item_titles, with_item_names

    env = WebShopEnv(WebShopConfig(observation_mode=mode))
    env.reset(seed=0, options={"goal_index": 3})
    obs, _, _, _, info = env.step(f"search[{env.goal.instruction_text}]")
    actions = info["available_actions"]
    products = [a for a in actions if a.startswith("click[b") and a != "click[back to search]"]
    assert len(products) == 10
    titles = item_titles(obs)
    assert len(titles) == 10
    renamed = with_item_names(obs, actions)
    assert len(renamed) == len(actions)
    for before, after in zip(actions, renamed):
        if before in products:
            asin = before[len("click["):-1].upper()
            assert after == f"click[item - {catalog.get(asin).title.strip().lower()}]"
        else:
            assert after == before  # buttons and the search placeholder stay as they are
    # an item page: options (some ten characters long, like an ASIN) are never renamed
    obs, _, _, _, info = env.step(products[0])
    assert item_titles(obs) == {}
    assert with_item_names(obs, info["available_actions"]) == info["available_actions"]


def test_item_names_change_what_the_encoder_reads_not_the_labels(encoder_dir, tmp_path):
    processor = ActionScoringProcessor.from_pretrained(encoder_dir, max_observation_length=96, max_action_length=16)
    obs, cands = page("red", "shirt", "results")
    # ten-character ASINs and prices as the environment prints them
    obs = obs.replace("$ 1.2", "$1.20").replace("b0", "b00000000")
    cands = [c.replace("[b0", "[b00000000") for c in cands]
    plain = processor([obs], [cands], labels=[2])
    processor.item_names = True
    named = processor([obs], [cands], labels=[2])
    assert torch.equal(plain["labels"], named["labels"]) and torch.equal(plain["num_candidates"], named["num_candidates"])
    texts = processor.tokenizer.batch_decode(named["action_input_ids"], skip_special_tokens=True)
    assert any("item - red shirt" in t for t in texts)
    assert not torch.equal(plain["action_input_ids"], named["action_input_ids"][: plain["action_input_ids"].shape[0]])
    # the setting travels with the checkpoint; a processor saved before it existed reads as off
    processor.save_pretrained(tmp_path / "p")
    assert ActionScoringProcessor.from_pretrained(tmp_path / "p").item_names is True
    settings = json.loads((tmp_path / "p" / "action_scoring_processor.json").read_text())
    del settings["item_names"]
    (tmp_path / "p" / "action_scoring_processor.json").write_text(json.dumps(settings))
    assert ActionScoringProcessor.from_pretrained(tmp_path / "p").item_names is False


def _run_il_script(encoder_dir, demos, out, seed, *extra):
    from webshop_trl.scripts.il import main, make_parser

    argv = [
        "--config", str(REPO / "recipes/minilm/il/config_full.yaml"),
        "--encoder_name_or_path", str(encoder_dir), "--dataset_paths", str(demos), "--output_dir", str(out),
        "--max_observation_length", "96", "--max_action_length", "16", "--max_steps", "4", "--max_train_samples", "16",
        "--per_device_train_batch_size", "4", "--eval_steps", "2", "--logging_steps", "1", "--eval_fraction", "0.2",
        "--disable_tqdm", "true", "--seed", str(seed), *extra,  # bf16 autocast as the recipe
    ]
    main(*make_parser().parse_args_and_config(argv))
    return (out / "model.safetensors").read_bytes()


def test_il_recipe_rerun_with_the_same_seed_gives_bit_identical_weights_and_draws_curves(encoder_dir, demos, tmp_path):
    first = _run_il_script(encoder_dir, demos, tmp_path / "a", seed=3)
    second = _run_il_script(encoder_dir, demos, tmp_path / "b", seed=3)
    other = _run_il_script(encoder_dir, demos, tmp_path / "c", seed=4)
    assert first == second
    assert first != other
    curves = tmp_path / "a" / "training_curves.png"
    assert curves.is_file() and curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from webshop_trl.trainers.curves import series

    state = json.loads((tmp_path / "a" / "trainer_state.json").read_text())
    steps, acc = series(state["log_history"], "eval_choice_accuracy")
    assert steps == [2, 4] and all(0.0 <= a <= 1.0 for a in acc)
