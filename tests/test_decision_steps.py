import random

from webshop_trl.datasets import decision_steps, limit_candidates
from webshop_trl.trajectories import Step, Trajectory


def make_traj():
    return Trajectory(
        goal={"index": 7},
        steps=[
            Step("search page", ["search[<query>]"], "search[red shoes]"),
            Step("results", ["search[<query>]", "click[back to search]", "click[next >]", "click[b01]", "click[b02]"], "click[b02]"),
            Step("item", ["click[< prev]", "click[buy now]"], "click[not here]"),
            Step("", ["click[< prev]", "click[buy now]"], "click[buy now]"),
        ],
        final_reward=1.0,
        source="expert",
    )


def test_search_steps_skipped_and_labels():
    skipped = []
    rows = list(decision_steps([make_traj()], skipped=skipped))
    assert len(rows) == 1
    row = rows[0]
    assert row.candidates == ["click[back to search]", "click[next >]", "click[b01]", "click[b02]"]
    assert row.chosen == "click[b02]" and row.label == 3 and row.goal_index == 7 and row.step == 1
    assert len(skipped) == 2 and "not among the candidates" in skipped[0] and "no observation" in skipped[1]


def test_limit_candidates_keeps_first_six_and_chosen():
    cands = [f"click[{i}]" for i in range(40)]
    for seed in range(20):
        kept = limit_candidates(cands, "click[33]", random.Random(seed))
        assert len(kept) == 16 and kept[:6] == cands[:6] and "click[33]" in kept
        assert len(set(kept)) == 16
    assert limit_candidates(cands[:5], "click[1]", random.Random(0)) == cands[:5]
