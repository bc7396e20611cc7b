"""Every recipe parses against the pinned versions (TrlParser: unknown keys fail), every
accelerate config loads with accelerate's own reader, and the model READMEs' commands name files
that exist. A recipe for GPUs (bf16 without use_cpu) is parsed with ``--use_cpu true`` appended on
a machine without one: TrainingArguments checks the hardware, which is not what is tested here."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
TRAINING_RECIPES = sorted(p for p in RECIPES.glob("*/*/config_*.yaml") if p.parent.parent.name != "accelerate_configs")
ACCELERATE_CONFIGS = sorted((RECIPES / "accelerate_configs").glob("*.yaml"))
MODEL_READMES = sorted(p for p in RECIPES.glob("*/README.md") if p.parent.name != "accelerate_configs")


def parser_for(recipe: Path):
    method = recipe.parent.name  # recipes/<model>/<method>/config_<variant>.yaml
    module = importlib.import_module(f"webshop_trl.scripts.{method}")
    return module.make_parser()


def test_the_recipe_tree_is_there():
    assert {p.relative_to(RECIPES).as_posix() for p in TRAINING_RECIPES} >= {
        "minilm/il/config_full.yaml", "minilm/il/config_smoke.yaml", "bert-base-uncased/il/config_full.yaml",
    }
    assert {p.name for p in ACCELERATE_CONFIGS} >= {"cpu.yaml", "single_gpu.yaml", "multi_gpu.yaml", "deepspeed_zero2.yaml"}
    assert {p.parent.name for p in MODEL_READMES} >= {"minilm", "bert-base-uncased"}


@pytest.mark.parametrize("recipe", TRAINING_RECIPES, ids=lambda p: p.relative_to(RECIPES).as_posix())
def test_recipe_parses_with_trl_parser(recipe):
    config = yaml.safe_load(recipe.read_text())
    assert isinstance(config, dict) and config.get("output_dir"), "a recipe names its output_dir"
    argv = ["--config", str(recipe)]
    if config.get("bf16") and not config.get("use_cpu") and not torch.cuda.is_available():
        argv += ["--use_cpu", "true"]
    parsed = parser_for(recipe).parse_args_and_config(argv)
    # the project's own fields arrive as written (TrainingArguments normalises some of its own)
    from transformers import TrainingArguments

    base_fields = set(TrainingArguments.__dataclass_fields__)
    for args in parsed:
        for key, value in config.items():
            if key in type(args).__dataclass_fields__ and key not in base_fields:
                assert getattr(args, key) == value, key


@pytest.mark.parametrize("recipe", TRAINING_RECIPES, ids=lambda p: p.relative_to(RECIPES).as_posix())
def test_unknown_recipe_key_fails(recipe, tmp_path):
    bad = tmp_path / recipe.name
    bad.write_text(recipe.read_text() + "\nmax_prompt_length: 512\n")  # a key DPOConfig dropped, as in old recipes
    argv = ["--config", str(bad), "--use_cpu", "true"]
    with pytest.raises(ValueError, match="max_prompt_length"):
        parser_for(recipe).parse_args_and_config(argv)


@pytest.mark.parametrize("config", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_loads(config):
    from accelerate.commands.config.config_args import load_config_from_file

    loaded = load_config_from_file(str(config))  # raises on unknown keys
    assert loaded.num_processes >= 1
    if config.name == "cpu.yaml":
        assert loaded.use_cpu and loaded.num_processes == 1


@pytest.mark.parametrize("readme", MODEL_READMES, ids=lambda p: p.parent.name)
def test_readme_commands_name_existing_files(readme):
    commands = [line.strip() for line in _code_lines(readme.read_text()) if line.strip().startswith("accelerate launch")]
    assert commands, f"{readme} has no accelerate launch command"
    recipes_named = set()
    for command in commands:
        argv = shlex.split(command)
        assert "--config_file" in argv and "--config" in argv, command
        accelerate_config = REPO / argv[argv.index("--config_file") + 1]
        recipe = REPO / argv[argv.index("--config") + 1]
        assert accelerate_config.is_file(), command
        assert recipe.is_file() and recipe.parent.parent == readme.parent, command
        assert "-m" in argv and argv[argv.index("-m") + 1] == f"webshop_trl.scripts.{recipe.parent.name}", command
        recipes_named.add(recipe)
    # every recipe of a method the README documents has its command
    methods = {p.parent.name for p in recipes_named}
    expected = {p for p in TRAINING_RECIPES if p.parent.parent == readme.parent and p.parent.name in methods}
    assert recipes_named == expected, f"recipes without a command in {readme}: {sorted(map(str, expected - recipes_named))}"


def _code_lines(markdown: str) -> list[str]:
    """Lines inside ``` blocks, with backslash continuations joined."""
    lines, inside = [], False
    for raw in markdown.splitlines():
        if raw.strip().startswith("```"):
            inside = not inside
            continue
        if inside:
            lines.append(raw)
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return joined.splitlines()
