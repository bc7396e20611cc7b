"""`webshop-trl build-preferences`: preference pairs for DPO from trajectory files.

    webshop-trl build-preferences demos.jsonl --reference-model outputs/il-policy --output outputs/prefs/expert
    webshop-trl build-preferences a.jsonl b.jsonl --rejection uniform --eval-fraction 0.2 --seed 1 --output prefs
    webshop-trl build-preferences demos.jsonl --reference-model M --output prefs --push_to_hub --hub_dataset_id me/webshop-dpo
    webshop-trl build-preferences --output prefs --push-only --hub-dataset-id me/webshop-dpo   # push a saved folder

One row per choice decision (click step) of the trajectories: prompt (the observation), chosen (the
demonstrated action), rejected, available_actions, goal_index, step, source, ... The rejected action
is the reference policy's choice (greedy, or sampled with --temperature; when it is the chosen
action, the reference's best other action, or the row is dropped with --skip-agreeing), or a
uniformly drawn other candidate (--rejection uniform). Train/eval are split by goal.

The folder is written as <output>.tmp-<random> and renamed when complete, so an interrupted build
never leaves a loadable but incomplete dataset at <output>. It holds the DatasetDict
(`datasets.load_from_disk`), README.md (the dataset card) and build_info.json. The Hub push uses
huggingface_hub's endpoint and token (HF_ENDPOINT, HF_TOKEN or `hf auth login`). Options accept
dashes or underscores (--hub-dataset-id or --hub_dataset_id).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

from webshop_trl.errors import WebShopTrlError


def _both(name: str) -> list[str]:
    """``--a-b`` and ``--a_b`` (TRL/HF scripts spell options with underscores)."""
    dashed = "--" + name.replace("_", "-")
    under = "--" + name.replace("-", "_")
    return [dashed] if dashed == under else [dashed, under]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `build-preferences` (also used by datasets_build/build_preferences.py)."""
    from webshop_trl.datasets.decision_steps import MAX_CANDIDATES

    p.add_argument("inputs", nargs="*", metavar="TRAJECTORIES", help="trajectory files (JSON lines); rows follow their order")
    p.add_argument(*_both("output"), "-o", dest="output", required=True, help="folder to save the dataset to")
    p.add_argument(*_both("overwrite"), dest="overwrite", action="store_true",
                   help="replace an existing output folder (only one built by this command)")

    rej = p.add_argument_group("rejected action")
    rej.add_argument(*_both("rejection"), dest="rejection", choices=["reference", "uniform"], default="reference",
                     help="reference: the reference policy's choice (paper section 3.1, default); uniform: a random other candidate")
    rej.add_argument(*_both("reference_model"), dest="reference_model", default=None,
                     help="folder or hub id of the reference ActionScorerModel (with its tokenizer files)")
    rej.add_argument(*_both("temperature"), dest="temperature", type=float, default=None,
                     help="sample the reference's choice from softmax(log pi / T) (default: greedy argmax)")
    rej.add_argument(*_both("skip_agreeing"), dest="skip_agreeing", action="store_true",
                     help="drop pages where the reference's choice is the demonstrated action "
                          "(default: reject the reference's best other action)")
    rej.add_argument(*_both("batch_size"), dest="batch_size", type=int, default=16, help="pages per reference forward pass (default 16)")
    rej.add_argument(*_both("device"), dest="device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    rej.add_argument(*_both("bf16"), dest="bf16", action="store_true", help="score under bfloat16 autocast")

    data = p.add_argument_group("rows and splits")
    data.add_argument(*_both("eval_fraction"), dest="eval_fraction", type=float, default=0.1,
                      help="share of goals in the eval split (default 0.1; 0: empty eval split)")
    data.add_argument(*_both("seed"), dest="seed", type=int, default=0, help="seeds the split, the candidate cap and every draw (default 0)")
    data.add_argument(*_both("max_candidates"), dest="max_candidates", type=int, default=MAX_CANDIDATES,
                      help=f"WebShop's candidate cap: past N, the first 6 plus 10 random others (default {MAX_CANDIDATES}; 0: no cap)")
    data.add_argument(*_both("lenient"), dest="lenient", action="store_true",
                      help="skip malformed trajectory lines (counted in the card) instead of stopping")

    hub = p.add_argument_group("Hugging Face Hub")
    hub.add_argument(*_both("push_to_hub"), dest="push_to_hub", action="store_true", help="push the dataset, card and build info")
    hub.add_argument(*_both("hub_dataset_id"), dest="hub_dataset_id", default=None, help="dataset repo id, e.g. user/webshop-dpo")
    hub.add_argument(*_both("hub_private"), dest="hub_private", action="store_true", help="create the repo as private")
    hub.add_argument(*_both("hub_revision"), dest="hub_revision", default=None, help="branch to push to (default main)")
    hub.add_argument(*_both("push_only"), dest="push_only", action="store_true",
                     help="build nothing: push the folder already saved at --output (e.g. after a failed push)")

    p.add_argument(*_both("quiet"), "-q", dest="quiet", action="store_true", help="no progress bars")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("build-preferences", help="preference pairs for DPO from trajectories (save, push to the Hub)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    from webshop_trl.preferences import PreferenceBuildConfig

    return PreferenceBuildConfig(
        inputs=list(args.inputs), rejection=args.rejection, reference_model=args.reference_model,
        temperature=args.temperature, skip_agreeing=args.skip_agreeing, eval_fraction=args.eval_fraction,
        seed=args.seed, max_candidates=args.max_candidates or None, lenient=args.lenient,
        batch_size=args.batch_size, device=args.device, bf16=args.bf16,
    )


def canonical_command(args: argparse.Namespace) -> str:
    """The command that rebuilds this dataset: every setting that shapes the rows spelled out
    (not the raw argv, which may be a script, an alias or a test's in-process call)."""
    cmd = ["webshop-trl", "build-preferences", *args.inputs, "--output", str(args.output), "--rejection", args.rejection]
    if args.rejection == "reference":
        cmd += ["--reference-model", str(args.reference_model)]
        if args.temperature:
            cmd += ["--temperature", f"{args.temperature:g}"]
        if args.skip_agreeing:
            cmd.append("--skip-agreeing")
        cmd += ["--batch-size", str(args.batch_size)]
        if args.device != "auto":
            cmd += ["--device", args.device]
        if args.bf16:
            cmd.append("--bf16")
    cmd += ["--eval-fraction", f"{args.eval_fraction:g}", "--seed", str(args.seed), "--max-candidates", str(args.max_candidates or 0)]
    if args.lenient:
        cmd.append("--lenient")
    return shlex.join(cmd)


def _check_hub_args(args: argparse.Namespace) -> None:
    if (args.push_to_hub or args.push_only) and not args.hub_dataset_id:
        raise WebShopTrlError("--push-to-hub needs --hub-dataset-id (e.g. user/webshop-dpo)")
    if args.hub_dataset_id and not (args.push_to_hub or args.push_only):
        raise WebShopTrlError("--hub-dataset-id given without --push-to-hub")


def _push(args: argparse.Namespace, push: Any) -> None:
    try:
        result = push()
    except WebShopTrlError:
        raise
    except Exception as exc:  # network, auth, hub errors: the saved folder is intact
        raise WebShopTrlError(
            f"push to the Hub ({args.hub_dataset_id}) failed: {type(exc).__name__}: {exc}\n"
            f"the dataset is saved at {args.output}; push it again with: "
            f"webshop-trl build-preferences --output {shlex.quote(str(args.output))} --push-only --hub-dataset-id {args.hub_dataset_id}"
        ) from exc
    print(f"pushed to {result['url']} ({result['data_commit']})")


def _progress(quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=quiet, transient=True)


def run(args: argparse.Namespace) -> int:
    from webshop_trl.preferences import (
        build_preferences,
        check_output,
        push_preferences_to_hub,
        push_saved_preferences,
        render_card,
        save_preferences,
        stale_temp_folders,
    )

    _check_hub_args(args)
    if args.quiet:
        import datasets

        datasets.disable_progress_bars()
    push_kwargs = dict(private=args.hub_private or None, revision=args.hub_revision)
    if args.push_only:
        if args.inputs:
            raise WebShopTrlError("--push-only pushes the folder at --output; give no trajectory files")
        _push(args, lambda: push_saved_preferences(args.output, args.hub_dataset_id, **push_kwargs))
        return 0
    if not args.inputs:
        raise WebShopTrlError("give one or more trajectory files (JSON lines), e.g. from `webshop-trl demos expert`")
    config = config_from_args(args)
    config.validate()
    check_output(args.output, args.overwrite)
    for stale in stale_temp_folders(args.output):
        print(f"note: {stale} was left by an interrupted build (safe to delete)", file=sys.stderr)

    command = canonical_command(args)
    bars = _progress(args.quiet)
    tasks: dict[str, Any] = {}

    def progress(stage: str, advanced: int, total: int) -> None:
        if stage not in tasks:
            label = {"reference": "reference policy scoring pages", "uniform": "drawing rejected actions"}[config.rejection]
            tasks[stage] = bars.add_task(label if stage == "reject" else stage, total=total)
        bars.update(tasks[stage], advance=advanced)

    start = time.perf_counter()
    with bars:
        built = build_preferences(config, command=command, progress=progress)
    card = render_card(built.info)
    out = save_preferences(built, args.output, overwrite=args.overwrite, card=card)
    seconds = time.perf_counter() - start
    info = built.info
    c = info["counts"]
    print(f"{c['trajectories']} trajectories, {c['decision_steps']} choice decisions, {c['pairs']} pairs "
          f"({c['single_candidate']} single-candidate pages skipped, {c['invalid_steps']} unusable click steps)")
    if info["reference_agreement"] is not None:
        verb = "dropped" if config.skip_agreeing else "rejected its best other action" if config.temperature in (None, 0) else "resampled among the others"
        print(f"reference chose the demonstrated action on {c['reference_agreed']} pages "
              f"({100 * info['reference_agreement']:.1f} %): {verb}")
    print(f"train: {c['rows']['train']} rows, {info['split']['goals']['train']} goals; "
          f"eval: {c['rows']['eval']} rows, {info['split']['goals']['eval']} goals")
    if built.skipped:
        print(f"{len(built.skipped)} skipped (first: {built.skipped[0]})", file=sys.stderr)
    print(f"saved {out} in {seconds:.1f} s")
    if args.push_to_hub:
        _push(args, lambda: push_preferences_to_hub(built.dataset, args.hub_dataset_id, card=card, build_info=info, **push_kwargs))
    return 0
