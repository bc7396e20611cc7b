"""Trajectory format, WebShop IL import/export and the MTurk session-log importer."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from webshop_trl.errors import DataFileError
from webshop_trl.trajectories import Step, Trajectory, append_trajectory, read_trajectories, write_trajectories
from webshop_trl.trajectories.il_format import export_il_trajectories, import_il_trajectories, translate_action
from webshop_trl.trajectories.importers import import_session_logs
from webshop_trl.trajectories.instructions import HumanGoalIndex, normalize_instruction, split_of_index

LOG_DIR_NAME = "human_session_logs"


@pytest.fixture(scope="module")
def human_goals_path(shared_dir) -> Path:
    return shared_dir / "human_goals.json"


@pytest.fixture(scope="module")
def log_dir(shared_dir) -> Path:
    return shared_dir / LOG_DIR_NAME


@pytest.fixture(scope="module")
def goal_strings(human_goals_path) -> list[str]:
    return json.loads(human_goals_path.read_text())


# ============================================================== our trajectory format
def _trajectory(k: int = 0) -> Trajectory:
    return Trajectory(
        goal={"index": k, "instruction_text": f"goal {k}"},
        steps=[
            Step("WebShop\nInstruction: \ngoal\n[button] Search [button_]\n", ["search[<query>]"], "search[shoes]"),
            Step("page 2 — ünïcode", ["click[back to search]", "click[buy now]"], "click[buy now]", 0.5),
        ],
        final_reward=0.5,
        source="rule",
        metadata={"seed": k},
    )


def test_format_round_trip(tmp_path):
    path = tmp_path / "t.jsonl"
    assert write_trajectories(path, [_trajectory(0), _trajectory(1)]) == 2
    append_trajectory(path, _trajectory(2))
    assert list(read_trajectories(path)) == [_trajectory(0), _trajectory(1), _trajectory(2)]


def test_format_truncated_last_line_is_reported(tmp_path):
    path = tmp_path / "t.jsonl"
    write_trajectories(path, [_trajectory(0), _trajectory(1)])
    text = path.read_text()
    path.write_text(text[: len(text) - 25])  # a writer killed half-way through line 2
    with pytest.raises(DataFileError, match=r"t\.jsonl:2: truncated last line.*interrupted"):
        list(read_trajectories(path))
    skipped: list[str] = []
    assert list(read_trajectories(path, lenient=True, skipped=skipped)) == [_trajectory(0)]
    assert len(skipped) == 1 and "truncated" in skipped[0]


def test_format_malformed_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    good = json.dumps(_trajectory(0).to_json())
    bad_step = json.dumps({"goal": {}, "steps": [{"observation": 3, "available_actions": [], "action": "x"}]})
    path.write_text("\n".join([good, "{not json", "[1, 2]", bad_step, good]) + "\n")
    with pytest.raises(DataFileError, match=r"t\.jsonl:2: malformed trajectory: not valid JSON"):
        list(read_trajectories(path))
    skipped: list[str] = []
    assert len(list(read_trajectories(path, lenient=True, skipped=skipped))) == 2
    assert [s.split(": ")[0].rsplit(":", 1)[1] for s in skipped] == ["2", "3", "4"]


# ================================================================ instruction lookup
def test_normalize_instruction_follows_webshop():
    state = "Amazon Shopping Game\nInstruction: \nI'm looking for \"red\" shoes , and price lower than 40.00 dollars\n[button] Search [button_]\n"
    # stripped before the price clause is cut: the space before the comma survives, as in human_goals.json
    assert normalize_instruction(state) == "im looking for red shoes "
    assert normalize_instruction("WebShop\nInstruction: \nA Hat\n[button] Search [button_]\n") == "a hat"
    assert [split_of_index(i) for i in (0, 499, 500, 1499, 1500, 12086)] == ["test", "test", "eval", "eval", "train", "train"]


@pytest.mark.shared
def test_goal_lookup_takes_first_of_duplicates(goal_strings):
    seen: dict[str, int] = {}
    dup = next((s, seen[s]) for i, s in enumerate(goal_strings) if seen.setdefault(s, i) != i)
    assert HumanGoalIndex(goal_strings).index_of(dup[0]) == dup[1]


# ========================================================================= IL format
def _search_state(instruction: str, header: str = "WebShop") -> str:
    return f"{header}\nInstruction: \n{instruction}\n[button] Search [button_]\n"


def _results_state(instruction: str, items: list[tuple[str, str, str]]) -> str:
    out = f"Instruction: \n{instruction}\n[button] Back to Search [button_]\nPage 1 (Total results: 50)\n[button] Next > [button_]\n"
    for asin, title, price in items:
        out += f"\n[button] {asin} [button_]\n{title}\n{price}\n"
    return out


def _item_state(instruction: str, title: str, price: str, options: dict[str, list[str]], clicked: str | None = None) -> str:
    out = f"You have clicked {clicked}.\n" if clicked else ""
    out += f"Instruction: \n{instruction}\n[button] Back to Search [button_]\n[button] < Prev [button_]\n"
    for name, values in options.items():
        out += f"{name}\n" + "".join(
            f"  [clicked button] {v} [clicked button_]\n" if v == clicked else f"  [button] {v} [button_]\n" for v in values
        )
    out += f"{title}\nPrice: {price}\nRating: N.A.\n[button] Description [button_]\n[button] Features [button_]\n[button] Reviews [button_]\n[button] Buy Now [button_]\n"
    return out


def write_il_fixture(path: Path) -> list[dict]:
    """Three demonstrations in WebShop's il_trajs_finalized_images.jsonl format, by hand.

    1: old "Amazon Shopping Game" header, goal 91 (test split; its instruction has a space before
       the price clause), search -> result -> option -> buy.
    2: "WebShop" header, goal 600 (eval), an apostrophe in the instruction, search -> buy.
    3: goal 1600 (train), two searches (back to search in between) and a next page.
    """
    i1 = "I'm looking for a earbud headphones for stereo sound quality of style je-04b which will be more comfortable for me to use without disturbing others , and price lower than 40.00 dollars"
    items1 = [("B09JC84P1M", "JE-04B Wired Earbuds, Stereo Sound", "$12.99"), ("B07N33BPQ6", "Sport Earphones", "$8.5")]
    r1 = _results_state(i1, items1)
    clicks1 = ["click[back to search]", "click[next >]", "click[b09jc84p1m]", "click[b07n33bpq6]"]
    tr1 = ["click[back to search]", "click[next >]", "click[item - je-04b wired earbuds, stereo sound]", "click[item - sport earphones]"]
    item1 = ["click[back to search]", "click[< prev]", "click[description]", "click[features]", "click[reviews]", "click[buy now]", "click[black]", "click[white]"]
    t1 = {
        "states": [
            _search_state(i1, "Amazon Shopping Game"),
            r1,
            _item_state(i1, items1[0][1], items1[0][2], {"color": ["black", "white"]}),
            _item_state(i1, items1[0][1], items1[0][2], {"color": ["black", "white"]}, clicked="white"),
        ],
        "available_actions": [[], tr1, item1, item1],
        "action_idxs": [-1, 2, 7, 5],
        "actions": ["search[je-04b earbud headphones]", clicks1[2], "click[white]", "click[buy now]"],
        "actions_translate": ["search[je-04b earbud headphones]", tr1[2], "click[white]", "click[buy now]"],
        "images": [0, [0.25] * 4, 0, 0],
    }
    i2 = "i am looking for caffeine free organic tea flavored 'chocolate rooibos', and price lower than 30.00 dollars"
    items2 = [("B000GG0BQ6", "Organic Rooibos Tea, Chocolate", "$6.49")]
    tr2 = ["click[back to search]", "click[next >]", "click[item - organic rooibos tea, chocolate]"]
    t2 = {
        "states": [_search_state(i2), _results_state(i2, items2), _item_state(i2, items2[0][1], items2[0][2], {})],
        "available_actions": [[], tr2, item1[:6]],
        "action_idxs": [-1, 2, 5],
        "actions": ["search[caffeine free chocolate rooibos]", "click[b000gg0bq6]", "click[buy now]"],
        "actions_translate": ["search[caffeine free chocolate rooibos]", tr2[2], "click[buy now]"],
        "images": [0, 0, 0],
    }
    i3 = "i want a morden art paint throw pillow cover size 20*20 color 02, and price lower than 20.00 dollars"
    items3 = [("B09NQ2N5S7", "Modern Art Pillow Cover 20x20", "$9.99 to $12.99")]
    r3 = _results_state(i3, items3).replace("[button] Next > [button_]\n", "[button] < Prev [button_]\n[button] Next > [button_]\n").replace("Page 1", "Page 2")
    tr3 = ["click[back to search]", "click[< prev]", "click[next >]", "click[item - modern art pillow cover 20x20]"]
    t3 = {
        "states": [_search_state(i3), _results_state(i3, []), _search_state(i3), _results_state(i3, []), r3, _item_state(i3, items3[0][1], items3[0][2], {})],
        "available_actions": [[], tr1[:2], [], tr1[:2], tr3, item1[:6]],
        "action_idxs": [-1, 0, -1, 1, 3, 5],
        "actions": ["search[pillow]", "click[back to search]", "search[art pillow cover]", "click[next >]", "click[b09nq2n5s7]", "click[buy now]"],
        "actions_translate": ["search[pillow]", "click[back to search]", "search[art pillow cover]", "click[next >]", tr3[3], "click[buy now]"],
        "images": [0] * 6,
    }
    lines = [t1, t2, t3]
    path.write_text("".join(json.dumps(t) + "\n" for t in lines))
    return lines


@pytest.mark.shared
def test_il_import(tmp_path, human_goals_path):
    path = tmp_path / "il_trajs_finalized_images.jsonl"
    raw = write_il_fixture(path)
    trajs = list(import_il_trajectories(path, human_goals_path))
    assert [t.metadata["goal_index"] for t in trajs] == [91, 600, 1600]
    assert [t.metadata["split"] for t in trajs] == ["test", "eval", "train"]
    assert [t.goal["index"] for t in trajs] == [91, 600, 1600]
    assert trajs[1].goal["instruction_text"].startswith("i am looking for caffeine free organic tea flavored 'chocolate rooibos'")
    assert trajs[1].goal["price_upper"] == 30.0
    for t, r in zip(trajs, raw):
        assert t.source == "webshop-il"
        assert [s.observation for s in t.steps] == r["states"]
        assert [s.action for s in t.steps] == r["actions"]  # raw actions, not the translated ones
        assert [s.available_actions for s in t.steps] == r["available_actions"]
        assert t.metadata["action_idxs"] == r["action_idxs"] and t.metadata["actions_translate"] == r["actions_translate"]
        assert all(s.reward == 0.0 for s in t.steps) and t.final_reward == 0.0 and t.metadata["reward_known"] is False
    assert trajs[0].steps[0].observation.startswith("Amazon Shopping Game\nInstruction:")
    assert trajs[0].metadata["action_idxs"][0] == -1 and trajs[0].steps[0].action.startswith("search[")
    assert trajs[0].metadata["image_features_dropped"] is True
    kept = next(import_il_trajectories(path, human_goals_path, keep_images=True))
    assert kept.metadata["images"] == raw[0]["images"]


@pytest.mark.shared
def test_il_round_trips(tmp_path, human_goals_path):
    src = tmp_path / "il.jsonl"
    write_il_fixture(src)
    for keep in (True, False):
        first = list(import_il_trajectories(src, human_goals_path, keep_images=keep))
        out = tmp_path / f"export_{keep}.jsonl"
        assert export_il_trajectories(first, out) == 3
        second = list(import_il_trajectories(out, human_goals_path, keep_images=keep))
        if not keep:
            # the features were dropped on the first import; the flag saying so is the only difference
            assert first[0].metadata.pop("image_features_dropped") is True
        assert second == first
        again = tmp_path / f"again_{keep}.jsonl"
        export_il_trajectories(import_il_trajectories(out, human_goals_path, keep_images=keep), again)
        assert again.read_bytes() == out.read_bytes()
    # with the image features kept, the export is the original file, key for key
    original = [json.loads(line) for line in src.read_text().splitlines()]
    assert [json.loads(line) for line in (tmp_path / "export_True.jsonl").read_text().splitlines()] == original


@pytest.mark.shared
def test_il_export_of_our_trajectories(tmp_path, catalog, human_goals_path, goal_strings):
    """A trajectory of ours (no IL metadata): indices found among the candidates, -1 on
    searches, product clicks translated with the catalog's titles."""
    product = catalog.products[0]
    asin = product.asin.lower()
    instruction = goal_strings[1600] + ", and price lower than 20.00 dollars"
    traj = Trajectory(
        goal={"index": 1600},
        steps=[
            Step(_search_state(instruction), ["search[<query>]"], "search[pillow cover]"),
            Step("results", ["search[<query>]", "click[back to search]", "click[next >]", f"click[{asin}]"], f"click[{asin}]"),
            Step("item", ["search[<query>]", "click[back to search]", "click[< prev]", "click[buy now]"], "click[buy now]", 1.0),
        ],
        final_reward=1.0,
    )
    out = tmp_path / "ours.jsonl"
    export_il_trajectories([traj], out, catalog=catalog)
    record = json.loads(out.read_text())
    assert list(record) == ["states", "available_actions", "action_idxs", "actions", "actions_translate", "images"]
    assert record["action_idxs"] == [-1, 3, 3]
    assert record["actions_translate"][1] == f"click[item - {product.title.lower()}]"
    assert record["images"] == [0, 0, 0]
    assert translate_action("click[buy now]", catalog) == "click[buy now]"
    back = next(import_il_trajectories(out, human_goals_path))
    assert back.metadata["goal_index"] == 1600 and [s.action for s in back.steps] == [s.action for s in traj.steps]
    traj.steps[1].action = "click[b000000000]"  # not a candidate: no IL index exists
    with pytest.raises(ValueError, match="trajectory 0 .*step 1: action 'click\\[b000000000\\]' is not among"):
        export_il_trajectories([traj], tmp_path / "bad.jsonl")
    assert not (tmp_path / "bad.jsonl").exists()


@pytest.mark.shared
def test_il_malformed_lines(tmp_path, human_goals_path):
    src = tmp_path / "il.jsonl"
    t1, t2, t3 = write_il_fixture(src)
    short = dict(t2, actions=t2["actions"][:2])
    unknown_goal = dict(t2, states=[_search_state("a goal nobody wrote")] + t2["states"][1:])
    not_search = dict(t2, states=t2["states"][1:] + t2["states"][:1])
    bad_index = dict(t2, action_idxs=[-1, 9, 5])
    lines = [json.dumps(t1), "{cut", json.dumps(short), json.dumps(unknown_goal), json.dumps(not_search), json.dumps(bad_index), json.dumps(t3)]
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=r"il\.jsonl:2: malformed IL trajectory: not valid JSON"):
        list(import_il_trajectories(src, human_goals_path))
    skipped: list[str] = []
    kept = list(import_il_trajectories(src, human_goals_path, lenient=True, skipped=skipped))
    assert [t.metadata["goal_index"] for t in kept] == [91, 1600]
    assert len(skipped) == 5
    assert "il.jsonl:3:" in skipped[1] and "differ in length" in skipped[1]
    assert "il.jsonl:4:" in skipped[2] and "not in human_goals.json" in skipped[2]
    assert "il.jsonl:5:" in skipped[3] and "not a search page" in skipped[3]
    assert "il.jsonl:6:" in skipped[4] and "outside its 3 available actions" in skipped[4]
    with pytest.raises(DataFileError, match="human goals file not found"):
        import_il_trajectories(src, tmp_path / "missing.json")


# ================================================================ MTurk session logs
def _logged_done_rewards(log_dir: Path) -> dict[str, float]:
    """The reward of each session's 'done' row, read straight from the files."""
    out = {}
    for path in sorted(log_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["page"] == "done":
                out[row["url"].split("/done/")[1].split("/")[0]] = row["reward"]
    return out


@pytest.fixture(scope="module")
def real_log_trajs(log_dir, human_goals_path):
    return list(import_session_logs(log_dir, human_goals_path=human_goals_path))


@pytest.mark.shared
def test_real_session_logs(real_log_trajs, log_dir):
    trajs = real_log_trajs
    assert len(list(log_dir.glob("*.jsonl"))) == 9
    assert len(trajs) == 9 and len({t.metadata["session_id"] for t in trajs}) == 9
    assert sum(len(t.steps) for t in trajs) == 51
    rewards = _logged_done_rewards(log_dir)
    assert {t.metadata["session_id"]: t.final_reward for t in trajs} == rewards
    for t in trajs:
        assert t.source == "webshop-mturk-log" and t.metadata["completed"]
        assert t.steps[-1].action == "click[buy now]" and t.steps[-1].reward == t.final_reward
        assert all(s.reward == 0.0 for s in t.steps[:-1])
        assert t.steps[0].action.startswith("search[")
        assert t.metadata["observations"] == "none (no catalog given)" and all(s.observation == "" for s in t.steps)
    by_id = {t.metadata["session_id"]: t for t in trajs}
    assert sorted(t.metadata["split"] for t in trajs) == ["eval"] + ["train"] * 8
    assert by_id["20220427_1_17"].goal["index"] == 1319
    # one reload: the search page of session 13 was visited twice in a row
    assert [(k, t.metadata["reloads"]) for k, t in by_id.items() if t.metadata["reloads"]] == [
        ("20220427_1_13", [f"{log_dir / '20220427_1_13.jsonl'}:2"])
    ]


@pytest.mark.shared
def test_real_session_actions_by_hand(real_log_trajs):
    """Checked against the rows of the files by hand."""
    by_id = {t.metadata["session_id"]: t for t in real_log_trajs}
    actions = lambda sid: [s.action for s in by_id[sid].steps]  # noqa: E731
    # index -> results -> item -> Description -> item -> done
    assert actions("20220427_1_7") == [
        "search[lenovo chromebook i3-8130u cpu]", "click[b07xc7gvrk]", "click[description]", "click[< prev]", "click[buy now]",
    ]
    # index -> results -> index -> results -> item -> done
    assert actions("20220427_1_12") == [
        "search[living room furniture]", "click[back to search]", "search[living room and kitchen furniture]",
        "click[b09lylklvx]", "click[buy now]",
    ]
    # results page 1 -> 2, then an option
    assert actions("20220427_1_23") == ["search[red earbud headphones]", "click[next >]", "click[b08cz8ws38]", "click[red]", "click[buy now]"]
    # two options, one of them with the ' | ' WebShop puts for '/'
    assert actions("20220427_1_17")[2:] == ["click[teal]", "click[38 | 40 | 41 mm]", "click[buy now]"]
    # five products looked at, each left with '< prev'
    a6 = actions("20220427_1_6")
    assert a6.count("click[< prev]") == 5 and a6[-2:] == ["click[3t280]", "click[buy now]"]
    t15 = by_id["20220427_1_15"]
    assert t15.metadata["purchased"] == {"asin": "B0868KF3ZB", "options": {"size": "8", "color": "z2-pink"}, "price": 17.920569396236054}
    assert t15.metadata["reward_info"]["r_option"] is not None
    # available actions the log alone gives: the search page and the results page
    assert t15.steps[0].available_actions == ["search[<query>]"]
    assert t15.steps[1].available_actions[:2] == ["click[back to search]", "click[next >]"] and "click[b0868kf3zb]" in t15.steps[1].available_actions
    assert t15.steps[2].available_actions == []  # an item page: its options need the catalog


@pytest.mark.shared
@pytest.mark.lucene
def test_real_session_logs_with_catalog(log_dir, catalog, human_goals_path):
    """The 1k catalog lacks almost all products the workers saw (they used the full catalog):
    the search pages are drawn, the rest is reported, and the replay names the first click our
    environment cannot follow."""
    trajs = list(import_session_logs(log_dir, catalog=catalog, human_goals_path=human_goals_path))
    assert len(trajs) == 9
    for t in trajs:
        m = t.metadata
        assert m["observation_mode"] == "text_rich" and m["observations"] == "partial"
        first = t.steps[0].observation
        assert first == f"WebShop\nInstruction: \n{t.goal['instruction_text']}\n[button] Search [button_]\n"
        assert all(t.steps[k].observation == "" for k in m["missing_observation_steps"])
        assert m["missing_products"] and all(a not in catalog.by_asin for a in m["missing_products"])
        replay = m["replay"]
        assert replay["checked"] and len(replay["invalid"]) == 1
        bad = replay["invalid"][0]
        assert t.steps[bad["step"]].action == bad["action"] and "is not in the catalog" in bad["reason"]
        assert replay["valid_steps"] + 1 + replay["unchecked_steps"] == len(t.steps)
        assert replay["observation_mismatches"] == []
    # session 12's second search page (after 'back to search') was drawn and matched the env's
    t12 = next(t for t in trajs if t.metadata["session_id"] == "20220427_1_12")
    assert t12.metadata["missing_observation_steps"] == [1, 3, 4] and t12.metadata["replay"]["valid_steps"] == 3


# ----------------------------------------------- a log written from our own environment
def _segment(text: str) -> str:
    return quote(text, safe=":")


def _log_row(env, sid: str, goal: dict) -> dict:
    """The row WebShop's server would log for the env's current page."""
    s = env.state
    kw = _segment(repr(list(s.keywords)))
    opts = _segment(repr(dict(s.options)))
    page = s.page.value
    if page == "search":
        return {"page": "index", "url": f"http://h:3000/{sid}", "goal": goal}
    if page == "results":
        lo = (s.page_num - 1) * 10
        content = {"keywords": list(s.keywords), "search_result_asins": s.results[lo : lo + 10], "page": s.page_num}
        return {"page": "search_results", "url": f"http://h:3000/search_results/{sid}/{kw}/{s.page_num}", "goal": goal, "content": content}
    content = {"keywords": repr(list(s.keywords)), "page": str(s.page_num), "asin": s.asin, "options": dict(s.options)}
    if page == "item":
        return {"page": "item_page", "url": f"http://h:3000/item_page/{sid}/{s.asin}/{kw}/{s.page_num}/{opts}", "goal": goal, "content": content}
    if page == "item_sub_page":
        sub = s.sub_page.capitalize()
        return {"page": "item_sub_page", "url": f"http://h:3000/item_sub_page/{sid}/{s.asin}/{kw}/{s.page_num}/{sub}/{opts}", "goal": goal, "content": content}
    content = {"asin": s.asin, "options": dict(s.options), "price": 1.0}
    return {"page": "done", "url": f"http://h:3000/done/{sid}/{s.asin}/{opts}", "goal": goal, "content": content, "reward": 0.75, "reward_info": {}}


@pytest.fixture(scope="module")
def env_episode(catalog, webshop_dir):
    """Play an episode in our env that visits every page type, logging each page as WebShop did."""
    from webshop_trl.envs import WebShopConfig, WebShopEnv

    env = WebShopEnv(WebShopConfig(data_dir=str(webshop_dir), goal_kind="human", observation_mode="text_rich"))
    goal_index = next(g.index for g in env.goals if len(catalog.by_asin[g.asin].options) >= 1)
    env.reset(options={"goal_index": goal_index})
    goal = env.goal.to_dict()
    goal.pop("index"), goal.pop("kind")  # the logs carry WebShop's goal dict, without these
    sid = "fixed_test"
    rows, observations, actions = [_log_row(env, sid, goal)], [], []

    def act(action: str) -> None:
        observations.append(env.render())
        actions.append(action)
        _, _, _, _, info = env.step(action)
        assert info["valid_action"], (action, info.get("invalid_reason"))
        rows.append(_log_row(env, sid, goal))

    act(f"search[{env.goal.instruction_text.lower()}]")
    act("click[next >]")
    act("click[< prev]")
    links = [c for c in env.get_available_actions()["clickables"] if c.startswith("b0")]
    act(f"click[{links[1]}]")
    act("click[< prev]")
    target = env.goal.asin.lower() if env.goal.asin.lower() in links else links[0]
    act(f"click[{target}]")
    product = catalog.by_asin[target.upper()]
    act(f"click[{next(iter(product.options.values()))[-1]}]" if product.options else "click[features]")
    act("click[description]")
    act("click[< prev]")
    rows.insert(3, dict(rows[2]))  # a reload of the second results page (line 4)
    act("click[buy now]")
    return {"rows": rows, "observations": observations, "actions": actions, "goal": goal, "env": env}


@pytest.mark.shared
@pytest.mark.lucene
def test_log_from_our_env_replays_exactly(tmp_path, env_episode, catalog, human_goals_path):
    path = tmp_path / "fixed_test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in env_episode["rows"]))
    (t,) = import_session_logs(path, catalog=catalog, human_goals_path=human_goals_path)
    assert [s.action for s in t.steps] == env_episode["actions"]
    assert t.metadata["reloads"] == [f"{path}:4"]
    assert "Total results: 50" in env_episode["observations"][1]  # the log's assumed total holds here
    # every page drawn from the log is the page our env showed, text_rich, clicked marks included
    assert [s.observation for s in t.steps] == env_episode["observations"]
    assert t.metadata["observations"] == "complete" and t.metadata["missing_products"] == []
    assert any("[clicked button]" in s.observation for s in t.steps)
    replay = t.metadata["replay"]
    assert replay["invalid"] == [] and replay["observation_mismatches"] == [] and replay["valid_steps"] == len(t.steps)
    assert replay["env_reward"] is not None
    assert t.final_reward == 0.75 and t.goal["instruction_text"] == env_episode["goal"]["instruction_text"]
    # ... and exports to WebShop's IL format
    out = tmp_path / "il.jsonl"
    export_il_trajectories([t], out, catalog=catalog)
    record = json.loads(out.read_text())
    assert record["action_idxs"][0] == -1 and all(i >= 0 for i in record["action_idxs"][1:])


def _rows(sid: str, goal: dict, pages: list[tuple[str, str, dict]]) -> list[dict]:
    return [{"page": p, "url": f"http://h:3000{u}", "goal": goal, **({"content": c} if c else {})} for p, u, c in pages]


def _mini_session(sid: str, goal: dict, asin: str = "B000000001", reward: float = 1.0) -> list[dict]:
    kw = _segment(repr(["red", "hat"]))
    return _rows(sid, goal, [
        ("index", f"/{sid}", {}),
        ("search_results", f"/search_results/{sid}/{kw}/1", {"keywords": ["red", "hat"], "search_result_asins": [asin], "page": 1}),
        ("item_page", f"/item_page/{sid}/{asin}/{kw}/1/%7B%7D", {"asin": asin, "options": {}}),
    ]) + [{"page": "done", "url": f"http://h:3000/done/{sid}/{asin}/%7B%7D", "goal": goal,
           "content": {"asin": asin, "options": {}, "price": 3.0}, "reward": reward, "reward_info": {}}]


GOAL_A = {"asin": "B000000001", "instruction_text": "i want a red hat, and price lower than 20.00 dollars", "attributes": [], "goal_options": [], "price_upper": 20.0}
GOAL_B = dict(GOAL_A, instruction_text="i want a blue hat, and price lower than 20.00 dollars")


def test_session_grouping_by_id_and_goal(tmp_path):
    """Two sessions interleaved in one file, one of them with two goals and a repeat of a goal."""
    a1, a2, b1 = _mini_session("s1", GOAL_A, reward=0.5), _mini_session("s1", GOAL_B, reward=1.0), _mini_session("s2", GOAL_A, reward=0.25)
    a3 = _mini_session("s1", GOAL_B, reward=0.125)  # same goal again after a purchase: a new episode
    rows = a1[:2] + b1[:2] + a1[2:] + b1[2:] + a2 + a3
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    trajs = list(import_session_logs([path]))
    got = [(t.metadata["session_id"], t.metadata["episode"], t.goal["instruction_text"][7:15], t.final_reward) for t in trajs]
    assert got == [("s1", 0, "a red ha", 0.5), ("s2", 0, "a red ha", 0.25), ("s1", 1, "a blue h", 1.0), ("s1", 2, "a blue h", 0.125)]
    assert all([s.action for s in t.steps] == ["search[red hat]", "click[b000000001]", "click[buy now]"] for t in trajs)
    assert trajs[0].goal["index"] is None and trajs[0].metadata["split"] is None  # no human_goals.json given


def test_session_log_malformed_rows(tmp_path):
    rows = _mini_session("s1", GOAL_A)
    lines = [json.dumps(r) for r in rows]
    bad_url = dict(rows[1], url="http://h:3000/item_page/s1")
    bad_content = dict(rows[2], content={"asin": "B999999999", "options": {}})
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(lines[:2] + ["not json", json.dumps(bad_url), json.dumps({"page": "cart"}), json.dumps(bad_content)] + lines[2:]) + "\n")
    with pytest.raises(DataFileError, match=r"log\.jsonl:3: malformed session log row: not valid JSON"):
        list(import_session_logs(path))
    skipped: list[str] = []
    (t,) = import_session_logs(path, lenient=True, skipped=skipped)
    assert [s.split("log.jsonl:")[1].split(":")[0] for s in skipped] == ["3", "4", "5", "6"]
    assert "does not match its URL" in skipped[1] and "unknown page type 'cart'" in skipped[2] and "differs from the URL" in skipped[3]
    assert [s.action for s in t.steps] == ["search[red hat]", "click[b000000001]", "click[buy now]"]


def test_session_log_unexplained_jump(tmp_path):
    """An item page straight after the search page: no single action does that."""
    rows = _mini_session("s1", GOAL_A)
    good = _mini_session("s2", GOAL_A)
    path = tmp_path / "jump.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [rows[0], rows[2], rows[3]] + good))
    with pytest.raises(DataFileError, match=r"jump\.jsonl:1: episode 0 of session 's1' cannot be followed: no single action leads from index"):
        list(import_session_logs(path))
    skipped: list[str] = []
    assert [t.metadata["session_id"] for t in import_session_logs(path, lenient=True, skipped=skipped)] == ["s2"]
    assert len(skipped) == 1 and "jump.jsonl:2" in skipped[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match="no session log files"):
        import_session_logs(tmp_path / "empty")
    with pytest.raises(DataFileError, match="session log file not found"):
        import_session_logs([tmp_path / "missing.jsonl"])
