"""The dataset card (README.md): how the preference pairs were built, from `build_info`.

The same text goes into the saved folder and to the Hub. On the Hub, `DatasetDict.push_to_hub`
later adds its own metadata (``dataset_info``, ``configs``) to the card's YAML header and keeps
the rest.
"""

from __future__ import annotations

import json
from typing import Any

SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"))


def size_category(n: int) -> str:
    for limit, name in SIZE_CATEGORIES:
        if n < limit:
            return name
    return "10M<n<100M"


def _fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def rejection_text(info: dict[str, Any]) -> str:
    rej = info["rejection"]
    if rej["method"] == "uniform":
        return ("**Uniform.** The rejected action is drawn uniformly at random from the page's other candidates "
                "(those whose text differs from the chosen action), with a generator seeded by the seed and the row.")
    ref = rej.get("reference") or {}
    greedy = rej.get("temperature") is None
    text = [
        "**Reference policy** (Feng & Feng, KDD'24 RelKD workshop, section 3.1): the rejected action is what a reference "
        "policy would do on that page" + (" -- its argmax." if greedy else
                                           f" -- a draw from softmax(log pi / T) with T = {rej['temperature']:g}, "
                                           "seeded per row."),
        "",
        f"- reference checkpoint: `{ref.get('name_or_path')}`"
        + (f" ({ref['parameters']:,} parameters" if ref.get("parameters") else "")
        + (f", encoder `{ref['encoder']}`)" if ref.get("encoder") else (")" if ref.get("parameters") else "")),
    ]
    for name, sha in (ref.get("weights_sha256") or {}).items():
        text.append(f"- weights `{name}` sha256 `{sha}`")
    if ref.get("hub_commit"):
        text.append(f"- hub commit `{ref['hub_commit']}`")
    if ref.get("weights_fingerprint"):
        text.append(f"- weights fingerprint (tensors that score actions) `{ref['weights_fingerprint']}`")
    agreed = info["counts"]["reference_agreed"]
    if info["config"].get("skip_agreeing"):
        text.append(f"- when the reference's choice was the demonstrated action ({agreed} pages, "
                    f"{_fmt_pct(info['reference_agreement'])}), the page was **dropped** (`--skip-agreeing`).")
    else:
        other = "its best other action" if greedy else "a draw from its distribution renormalised over the other actions"
        text.append(f"- when the reference's choice was the demonstrated action ({agreed} pages, "
                    f"{_fmt_pct(info['reference_agreement'])}), the rejected action is the reference's choice among "
                    f"the other candidates ({other}); these rows have `reference_agreed = true`.")
    return "\n".join(text)


def reference_log_probs_text(info: dict[str, Any]) -> str:
    """The card section on the stored reference log-probs ("" for uniform rejection)."""
    rec = info.get("reference_log_probs")
    if not rec:
        return ""
    proc = rec.get("processor") or {}
    settings = ", ".join(f"{k} {v}" for k, v in proc.items() if k not in ("vocab_sha256",))
    return f"""
## Reference log-probabilities

`ref_chosen_logps` and `ref_rejected_logps` are the reference policy's log pi(a|s) of the chosen and
the rejected action: its log-softmax over the row's `available_actions` (after the candidate cap),
computed while choosing the rejected actions. They are TRL's precomputed-reference columns: a DPO
run (`python -m webshop_trl.scripts.dpo`, option `reference_log_probs_from_dataset`) whose reference
is this same policy -- the same weights, processor settings and precision -- uses them and skips its
own reference pass.

- reference: `{rec.get('reference')}`
- weights fingerprint `{rec.get('weights_fingerprint')}` ({rec.get('fingerprint_method')})
- precision: {rec.get('precision')}
- processor: {settings}; vocabulary sha256 `{proc.get('vocab_sha256')}`
"""


def render_card(info: dict[str, Any], title: str | None = None) -> str:
    """The README.md text for a build (``info`` is `BuiltPreferences.info`)."""
    counts = info["counts"]
    rows = counts["rows"]
    total = sum(rows.values())
    cfg = info["config"]
    pkg = info.get("package", {})
    title = title or "WebShop preference pairs (DPO)"
    yaml = [
        "---",
        f"pretty_name: {json.dumps(title)}",
        "language:",
        "- en",
        "tags:",
        "- webshop",
        "- dpo",
        "- preference",
        "- trl",
        "- webshop-trl",
        "size_categories:",
        f"- {size_category(total)}",
        "---",
    ]
    inputs = "\n".join(
        f"| `{i['path']}` | `{i['sha256']}` | {i['trajectories']} | {i['malformed_lines_skipped']} |" for i in info["inputs"])
    columns = "\n".join(f"| `{name}` | {desc} |" for name, desc in info["columns"].items())
    sources = ", ".join(f"{s}: {n}" for s, n in counts["rows_by_source"].items()) or "none"
    version = pkg.get("version", "?")
    commit = pkg.get("git_commit")
    version_text = f"webshop-trl {version}" + (f" (git `{commit[:12]}`{', with uncommitted changes' if pkg.get('git_dirty') else ''})" if commit else "")
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())
    cap = cfg.get("max_candidates") or "none"
    command = info.get("command")
    agreement_rows = ""
    if info["rejection"]["method"] == "reference":
        agreement_rows = (f"| reference chose the demonstrated action | {counts['reference_agreed']} "
                          f"({_fmt_pct(info.get('reference_agreement'))}) |\n"
                          f"| dropped as agreeing (`--skip-agreeing`) | {counts['agreeing_skipped']} |\n")
    body = f"""
# {title}

Preference pairs for DPO on [WebShop](https://github.com/princeton-nlp/WebShop) shopping agents,
built by `webshop-trl build-preferences` (Feng & Feng, *An Extremely Data-efficient and Generative
LLM-based Reinforcement Learning Agent for Recommenders*, KDD'24 RelKD workshop, section 3.1).
One row per choice decision of the demonstrations (click steps; search steps are not choices):
the demonstrated action is `chosen`, another action of the same page is `rejected`.

## Splits

| split | rows | goals |
|---|---|---|
| train | {rows['train']} | {info['split']['goals']['train']} |
| eval | {rows['eval']} | {info['split']['goals']['eval']} |

Split by goal (goal kind and index; no goal in both splits): {cfg['eval_fraction']:g} of the goals go to
`eval`, chosen by a hash seeded with {info['split']['seed']}. Rows keep the order of the input files.
With TRL scripts set `dataset_test_split="eval"`.

## Columns

| column | meaning |
|---|---|
{columns}

`prompt`, `chosen` and `rejected` are TRL's preference columns (explicit prompt, standard format).

## How the rejected action was chosen

{rejection_text(info)}

Candidates are the page's click actions; above {cap} of them, WebShop's cap keeps the first 6 plus
10 drawn at random (the chosen action always kept). Pages with fewer than two distinct candidates
cannot form a pair and were skipped.
{reference_log_probs_text(info)}
## Counts

| | |
|---|---|
| trajectories read | {counts['trajectories']} |
| steps | {counts['steps']} |
| steps that are not choices (search) | {counts['not_choice_steps']} |
| click steps unusable (chosen action not among the page's candidates, or no observation) | {counts['invalid_steps']} |
| malformed input lines skipped (`--lenient`) | {counts['malformed_lines']} |
| choice decisions | {counts['decision_steps']} |
| skipped: fewer than two distinct candidates | {counts['single_candidate']} |
| pairs | {counts['pairs']} |
{agreement_rows}| rows (train + eval) | {total} |
| rows by source | {sources} |

## Inputs

| file | sha256 | trajectories | malformed lines skipped |
|---|---|---|---|
{inputs}

## Reproducing

- seed {cfg['seed']}; eval fraction {cfg['eval_fraction']:g}; candidate cap {cap}; rejection `{cfg['rejection']}`
- built with {version_text}; {versions}
- built {info.get('created', '?')} in {info.get('build_seconds', '?')} s
- content sha256: train `{info['rows_sha256']['train']}`, eval `{info['rows_sha256']['eval']}`
{f'''
```bash
{command}
```
''' if command else ''}
Everything above is also in `build_info.json` next to this card.

## Loading

```python
from datasets import load_from_disk          # a saved folder
pairs = load_from_disk("path/to/folder")     # DatasetDict with "train" and "eval"
# or, from the Hub: datasets.load_dataset("<this repo id>")
```
"""
    return "\n".join(yaml) + "\n" + body
