"""Thompson-sampling evaluation over agents (Feng & Feng, KDD'24 RelKD workshop, §4 and figures 3-6).

Every agent is an arm of a bandit. Each round picks an arm by drawing from the posteriors, rolls
that agent out for one episode on a random goal of the split, and updates the posteriors with the
episode's reward. Good agents get most of the rollouts, so the budget goes where it tells the
agents apart; the posteriors give each agent's success rate and score with credible intervals and
the probability that it is the best.

    from webshop_trl.evaluation.thompson import AgentSpec, ThompsonConfig, run_thompson
    from webshop_trl.evaluation.plots import plot_thompson

    agents = [AgentSpec.parse("rule"), AgentSpec.parse("il=policy:outputs/il/minilm:greedy")]
    report = run_thompson(agents, ThompsonConfig(num_runs=4, rollouts_per_run=1000, rollouts_per_round=8))
    report.save("outputs/thompson/il-vs-rule/report.json")
    print(report.table_markdown())
    plot_thompson(report, "outputs/thompson/il-vs-rule")

or from the shell (writes report.json, table.md and the PNGs into the folder)::

    webshop-trl thompson --agent rule --agent il=policy:outputs/il/minilm --runs 4 --rollouts 1000 \\
        --output outputs/thompson/il-vs-rule

Posteriors (two per arm, both Beta with prior Beta(``prior_alpha``, ``prior_beta``)):

* **success** (reward == 1): the textbook Beta-Bernoulli posterior,
  alpha = prior_alpha + successes, beta = prior_beta + failures.
* **score** (mean reward in [0, 1]): a Beta with *fractional* updates, alpha += r, beta += 1 - r
  for an episode of reward r. It is the Beta-Bernoulli posterior an episode of reward r would give
  if it counted as r of a success and 1 - r of a failure: its mean is the (prior-smoothed) mean
  reward and it narrows like 1/sqrt(pulls), it stays inside [0, 1] (a Normal posterior would not),
  and with rewards in {0, 1} it equals the success posterior. It is a pseudo-posterior (a reward
  of 0.5 is not a coin flip), which is the usual and well-behaved choice for Thompson sampling
  with rewards in [0, 1]. Reported scores are 100 x the posterior mean, as WebShop reports scores.

``objective`` (``"success"`` by default, or ``"score"``) says which posterior the arms are picked
by; both are updated and reported either way.

Rounds: with ``rollouts_per_round`` = k, each round draws k times from the *current* posteriors
(each draw a sample for every arm, the arm with the largest sample picked), draws a goal of the
split uniformly for each pick, rolls the k episodes out together (grouped by agent, each group on
one `WebShopVectorEnv` with one batched policy call per step, through `evaluate_agent`), then
updates. k = 1 is the textbook algorithm; a larger k is batched Thompson sampling, which explores a
little more per rollout but lets a policy score k pages per forward pass (a policy step costs
0.1-0.3 s on a CPU). The last round of a run is shorter when k does not divide the rollouts.

Runs: ``num_runs`` independent runs, run i seeded with (``seed``, i): its posterior draws and goal
draws come from ``numpy.random.default_rng(SeedSequence([seed, i]))`` and each sampling agent's seed
from (``seed``, i, agent name), so a run's result depends only on the seed and its index. Runs go
to ``num_workers`` processes (``concurrent.futures.ProcessPoolExecutor``, spawn context; each worker
loads its own catalog, search engine and models, and sets torch to ``threads_per_worker``
threads when it runs a policy); 0 or 1 runs them one after another in this process. A worker that
raises or dies stops the evaluation with a `ThompsonError` naming the run. Spawned workers
re-import the calling script, so a script that calls `run_thompson` with workers must do so under
``if __name__ == "__main__":`` (the ``webshop-trl`` command does).

Report (`ThompsonReport`): per agent, pulls; the pooled posterior (prior + the data of all runs)
of success and score, its mean and equal-tailed ``credible_level`` interval; the spread across
runs of each run's posterior mean (mean, std, min, max); the probability that the agent is the
best, by Monte Carlo from the posteriors (``p_best_samples`` joint draws), per run and pooled;
the observed counts beside them (successes / pulls, mean reward), since a posterior mean is pulled
towards the prior and is not an observed rate. The "most likely best" agent (``best``) is the one
with the largest P(best) *among the agents with pulls*: an agent never pulled keeps its prior,
which can carry a large P(best) without saying anything about the agent. For every pair of agents
with pulls, P(A > B) from the pooled posteriors; a pair is *settled* when P(A > B) or P(B > A)
reaches ``credible_level``, and the table says so, or says plainly that no difference is settled.
The JSON holds the config, the agents, and for every run the per-round history of the posterior
parameters and pulls and every episode (round, agent, goal, reward), which is all the plots need.
Everything is deterministic given the seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import queue as queue_module
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from webshop_trl.errors import WebShopTrlError
from webshop_trl.paths import write_json_atomic

AGENT_KINDS = ("rule", "random", "policy")
OBJECTIVES = ("success", "score")
SPLITS = ("test", "eval", "train")
SPLIT_MODES = ("index", "product")
QUERY_SOURCES = ("instruction", "human")
OBSERVATION_MODES = ("text", "text_rich")

# a rollout function: [(arm, goal index), ...] -> one reward in [0, 1] per pick, in pick order
Rollout = Callable[[Sequence[tuple[int, int]]], Sequence[float]]


class ThompsonError(WebShopTrlError, ValueError):
    """Bad Thompson-evaluation input (the message names the value) or a run that failed."""


# --------------------------------------------------------------------------- configuration
@dataclass
class ThompsonConfig:
    """How many runs and rollouts, how arms are picked, and the environment the agents play in."""

    num_runs: int = field(default=4, metadata={"help": "Independent Thompson-sampling runs (run i is seeded with (seed, i))."})
    rollouts_per_run: int = field(default=1000, metadata={"help": "Episodes per run (the paper: 1000)."})
    rollouts_per_round: int = field(default=1, metadata={"help": "Arms picked per round from the same posterior and rolled out together (1: textbook Thompson sampling)."})
    objective: str = field(default="success", metadata={"help": "Posterior the arms are picked by: 'success' (reward == 1) or 'score' (mean reward)."})
    split: str = field(default="test", metadata={"help": "Goal split the goals are drawn from (uniformly, with replacement)."})
    split_mode: str = field(default="index", metadata={"help": "'index' (WebShop's split) or 'product'."})
    seed: int = field(default=0, metadata={"help": "Seed of the posterior draws, goal draws and sampling agents."})
    num_workers: int = field(default=2, metadata={"help": "Worker processes the runs are spread over; 0 or 1 runs them in this process."})
    threads_per_worker: int = field(default=1, metadata={"help": "torch threads of each worker process (0: leave torch's default)."})
    prior_alpha: float = field(default=1.0, metadata={"help": "alpha of the Beta prior of both posteriors."})
    prior_beta: float = field(default=1.0, metadata={"help": "beta of the Beta prior of both posteriors."})
    credible_level: float = field(default=0.95, metadata={"help": "Mass of the equal-tailed credible intervals."})
    p_best_samples: int = field(default=20000, metadata={"help": "Monte Carlo draws for the probability that an agent is best."})
    # environment (as `webshop-trl evaluate`)
    data_dir: str | None = field(default=None, metadata={"help": "Folder with the WebShop files (default: the fetched data folder)."})
    goal_kind: str = field(default="synthetic", metadata={"help": "'synthetic' or 'human' goals."})
    engine: str = field(default="lucene", metadata={"help": "Search engine: 'lucene' or 'bm25s' (no Java)."})
    observation_mode: str | None = field(default=None, metadata={"help": "'text' or 'text_rich' for every agent; default per agent: text_rich for policies, text for the baselines."})
    step_limit: int = field(default=100, metadata={"help": "Steps before an episode is truncated."})
    env_seed: int = field(default=0, metadata={"help": "The environment's seed (its load-time price draws)."})

    def validate(self) -> "ThompsonConfig":
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ThompsonError(message)

        for name in ("num_runs", "rollouts_per_run", "rollouts_per_round", "p_best_samples", "step_limit"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        for name in ("num_workers", "threads_per_worker", "seed"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")
        need(self.objective in OBJECTIVES, f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        need(self.split in SPLITS, f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        need(self.split_mode in SPLIT_MODES, f"split_mode must be one of {', '.join(SPLIT_MODES)}, got {self.split_mode!r}")
        for name in ("prior_alpha", "prior_beta"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and math.isfinite(value) and value > 0, f"{name} must be a finite number > 0, got {value!r}")
        need(0 < self.credible_level < 1, f"credible_level must be in (0, 1), got {self.credible_level!r}")
        need(self.goal_kind in ("synthetic", "human"), f"goal_kind must be 'synthetic' or 'human', got {self.goal_kind!r}")
        need(self.engine in ("lucene", "bm25s"), f"engine must be 'lucene' or 'bm25s', got {self.engine!r}")
        need(self.observation_mode in (None, *OBSERVATION_MODES), f"observation_mode must be 'text', 'text_rich' or None, got {self.observation_mode!r}")
        return self

    def env_config(self, observation_mode: str):
        from webshop_trl.envs.config import WebShopConfig

        return WebShopConfig(
            data_dir=self.data_dir, goal_kind=self.goal_kind, search_engine=self.engine,  # type: ignore[arg-type]
            observation_mode=observation_mode, step_limit=self.step_limit, seed=self.env_seed,  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ThompsonConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class AgentSpec:
    """A picklable description of an arm; the agent itself is built in the worker (`make_agent`).

    CLI syntax (`AgentSpec.parse`): ``[NAME=]KIND[:CHECKPOINT][:OPTION]...``

    * ``rule``, ``random``: the baselines (name = kind unless ``NAME=`` is given);
    * ``il=policy:outputs/il/minilm``: a policy checkpoint folder (default name: the folder's name);
    * options, after the checkpoint: ``greedy`` (argmax; the default), ``sample`` (sampling at
      temperature 1), ``t=0.7`` / ``temperature=0.7`` (sampling at that temperature),
      ``query=instruction|human`` (search query source), ``cap=N`` (WebShop's test-time candidate
      cap), and for any kind ``obs=text|text_rich`` (its observation mode).

    Example: ``dpo=policy:outputs/dpo:t=0.5:query=human``.
    """

    name: str
    kind: str
    checkpoint: str | None = None
    greedy: bool = True
    temperature: float = 1.0
    query_source: str = "instruction"
    observation_mode: str | None = None  # None: ThompsonConfig.observation_mode, else per kind
    max_candidates: int | None = None

    @classmethod
    def parse(cls, text: str) -> "AgentSpec":
        raw = text
        text = text.strip()
        if not text:
            raise ThompsonError("empty agent spec: use [NAME=]KIND[:CHECKPOINT][:OPTION]... with KIND rule, random or policy")
        name: str | None = None
        if "=" in text.split(":", 1)[0]:
            name, text = text.split("=", 1)
            name = name.strip()
            if not name:
                raise ThompsonError(f"agent spec {raw!r} has an empty name before '='")
        parts = text.split(":")
        kind = parts[0].strip()
        if kind not in AGENT_KINDS:
            raise ThompsonError(f"unknown agent kind {kind!r} in {raw!r}: choose one of {', '.join(AGENT_KINDS)} ([NAME=]KIND[:CHECKPOINT][:OPTION]...)")
        options = parts[1:]
        spec = cls(name=name or kind, kind=kind)
        if kind == "policy":
            if not options or not options[0].strip():
                raise ThompsonError(f"agent spec {raw!r}: a policy needs a checkpoint folder (NAME=policy:PATH)")
            spec.checkpoint = options[0].strip()
            options = options[1:]
            if name is None:
                spec.name = Path(spec.checkpoint.rstrip("/\\")).name or spec.checkpoint
        for option in options:
            key, _, value = option.strip().partition("=")
            try:
                if key == "greedy" and not value:
                    spec.greedy = True
                elif key == "sample" and not value:
                    spec.greedy, spec.temperature = False, 1.0
                elif key in ("t", "temperature") and value:
                    spec.greedy, spec.temperature = False, float(value)
                elif key == "query" and value:
                    spec.query_source = value
                elif key == "cap" and value:
                    spec.max_candidates = int(value)
                elif key == "obs" and value:
                    spec.observation_mode = value
                else:
                    raise ThompsonError(f"unknown option {option!r} in agent spec {raw!r}: use greedy, sample, t=T, query=SOURCE, cap=N or obs=MODE")
            except ValueError as exc:
                if isinstance(exc, ThompsonError):
                    raise
                raise ThompsonError(f"bad value in option {option!r} of agent spec {raw!r}: {exc}") from None
            if kind != "policy" and key != "obs":
                raise ThompsonError(f"option {option!r} of agent spec {raw!r} is for policies only")
        spec.validate()
        return spec

    def validate(self) -> "AgentSpec":
        if not self.name or not isinstance(self.name, str):
            raise ThompsonError(f"agent name must be a non-empty string, got {self.name!r}")
        if self.kind not in AGENT_KINDS:
            raise ThompsonError(f"unknown agent kind {self.kind!r} for agent {self.name!r}: choose one of {', '.join(AGENT_KINDS)}")
        if self.kind == "policy":
            if not self.checkpoint:
                raise ThompsonError(f"agent {self.name!r}: a policy needs a checkpoint folder")
            path = Path(os.path.expanduser(self.checkpoint))
            if not path.is_dir():
                what = "is a file, not a folder" if path.exists() else "does not exist"
                raise ThompsonError(f"agent {self.name!r}: policy checkpoint folder {self.checkpoint!r} {what}")
            if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature) and self.temperature >= 0):
                raise ThompsonError(f"agent {self.name!r}: temperature must be >= 0, got {self.temperature!r}")
            if self.query_source not in QUERY_SOURCES:
                raise ThompsonError(f"agent {self.name!r}: query source must be one of {', '.join(QUERY_SOURCES)}, got {self.query_source!r}")
        elif self.checkpoint is not None:
            raise ThompsonError(f"agent {self.name!r}: a checkpoint ({self.checkpoint!r}) is for policy agents, not {self.kind!r}")
        if self.observation_mode not in (None, *OBSERVATION_MODES):
            raise ThompsonError(f"agent {self.name!r}: observation mode must be 'text' or 'text_rich', got {self.observation_mode!r}")
        return self

    def resolved_observation_mode(self, config: ThompsonConfig) -> str:
        return self.observation_mode or config.observation_mode or ("text_rich" if self.kind == "policy" else "text")

    def describe(self) -> str:
        if self.kind != "policy":
            return self.kind
        mode = "greedy" if self.greedy or self.temperature == 0 else f"t={self.temperature:g}"
        return f"policy:{self.checkpoint}:{mode}:query={self.query_source}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AgentSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def validate_agents(agents: Sequence[AgentSpec]) -> None:
    if not agents:
        raise ThompsonError("Thompson sampling needs at least one agent (--agent ...)")
    seen: set[str] = set()
    for spec in agents:
        if not isinstance(spec, AgentSpec):
            raise ThompsonError(f"agents must be AgentSpec objects, got {type(spec).__name__}: {spec!r}")
        spec.validate()
        if spec.name in seen:
            raise ThompsonError(f"duplicate agent name {spec.name!r}: give each agent its own name (NAME=KIND...)")
        seen.add(spec.name)


# --------------------------------------------------------------------------- Beta distribution
def beta_cdf(x: Any, a: Any, b: Any) -> np.ndarray:
    """The regularized incomplete beta function I_x(a, b), element-wise (continued fraction,
    evaluated where it converges fast and mirrored with I_x(a, b) = 1 - I_{1-x}(b, a) elsewhere)."""
    x, a, b = np.broadcast_arrays(np.asarray(x, float), np.asarray(a, float), np.asarray(b, float))
    out = np.where(x >= 1.0, 1.0, 0.0)
    inside = (x > 0) & (x < 1)
    if not inside.any():
        return out
    xi, ai, bi = x[inside], a[inside], b[inside]
    flip = xi > (ai + 1) / (ai + bi + 2)
    xs, as_, bs = np.where(flip, 1 - xi, xi), np.where(flip, bi, ai), np.where(flip, ai, bi)
    log_front = (
        _lgamma(as_ + bs) - _lgamma(as_) - _lgamma(bs) + as_ * np.log(xs) + bs * np.log1p(-xs)
    )
    value = np.exp(log_front) * _beta_continued_fraction(xs, as_, bs) / as_
    out[inside] = np.where(flip, 1 - value, value)
    return np.clip(out, 0.0, 1.0)


def _lgamma(values: np.ndarray) -> np.ndarray:
    return np.vectorize(math.lgamma, otypes=[float])(values)


def _beta_continued_fraction(x: np.ndarray, a: np.ndarray, b: np.ndarray, max_terms: int = 1000) -> np.ndarray:
    """The continued fraction of I_x(a, b) (modified Lentz), vectorised with a shared stop."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c = np.ones_like(x)
    d = 1 - qab * x / qap
    d = np.where(np.abs(d) < tiny, tiny, d)
    d = 1 / d
    h = d.copy()
    for m in range(1, max_terms + 1):
        m2 = 2 * m
        for coef in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1 + coef * d
            d = np.where(np.abs(d) < tiny, tiny, d)
            c = 1 + coef / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            d = 1 / d
            delta = d * c
            h = h * delta
        if np.all(np.abs(delta - 1) < 1e-14):
            break
    return h


def beta_ppf(q: Any, a: Any, b: Any) -> np.ndarray:
    """Quantile of Beta(a, b), element-wise, by bisection on `beta_cdf` (to ~1e-15)."""
    q, a, b = np.broadcast_arrays(np.asarray(q, float), np.asarray(a, float), np.asarray(b, float))
    lo, hi = np.zeros(q.shape), np.ones(q.shape)
    for _ in range(52):
        mid = (lo + hi) / 2
        below = beta_cdf(mid, a, b) < q
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def beta_interval(a: Any, b: Any, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The equal-tailed ``level`` credible interval of Beta(a, b)."""
    tail = (1 - level) / 2
    return beta_ppf(tail, a, b), beta_ppf(1 - tail, a, b)


def p_best(alpha: Sequence[float], beta: Sequence[float], samples: int, rng: np.random.Generator) -> list[float]:
    """P(arm i has the largest value) under independent Beta(alpha_i, beta_i), by Monte Carlo."""
    alpha, beta = np.asarray(alpha, float), np.asarray(beta, float)
    draws = rng.beta(alpha, beta, size=(samples, len(alpha)))
    counts = np.bincount(np.argmax(draws, axis=1), minlength=len(alpha))
    return [float(c) / samples for c in counts]


# --------------------------------------------------------------------------- one run
def run_seed_sequence(seed: int, run_index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), int(run_index)])


def derive_seed(*parts: Any) -> int:
    """A stable 63-bit seed from the parts (str hash() is salted per process)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & (2**63 - 1)


def thompson_loop(
    num_arms: int,
    goals: Sequence[int],
    rollout: Rollout,
    config: ThompsonConfig,
    run_index: int = 0,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """One Thompson-sampling run over ``num_arms`` arms: the sampling and bookkeeping only.

    ``rollout(picks)`` plays the picked episodes (``picks``: (arm, goal index) pairs) and returns
    their rewards in pick order; the real one runs agents in the environment, a test can pass a
    synthetic bandit. ``on_round(n)`` is called after each round with its number of episodes.
    Returns the run's record (see `ThompsonReport`).
    """
    if num_arms < 1:
        raise ThompsonError(f"num_arms must be >= 1, got {num_arms}")
    if not goals:
        raise ThompsonError(f"no goals to draw from (split {config.split!r}, split_mode {config.split_mode!r})")
    goals = list(goals)
    rng = np.random.default_rng(run_seed_sequence(config.seed, run_index))
    a0, b0 = float(config.prior_alpha), float(config.prior_beta)
    pulls = np.zeros(num_arms, dtype=np.int64)
    successes = np.zeros(num_arms, dtype=np.int64)
    reward_sums = np.zeros(num_arms, dtype=float)
    history: dict[str, list] = {k: [] for k in ("rollouts", "pulls", "success_alpha", "success_beta", "score_alpha", "score_beta")}
    episodes: dict[str, list] = {"round": [], "arm": [], "goal": [], "reward": []}
    start = time.perf_counter()
    done = 0
    round_index = 0
    while done < config.rollouts_per_run:
        k = min(config.rollouts_per_round, config.rollouts_per_run - done)
        if config.objective == "success":
            alpha, beta = a0 + successes, b0 + (pulls - successes)
        else:
            alpha, beta = a0 + reward_sums, b0 + (pulls - reward_sums)
        picks: list[tuple[int, int]] = []
        for _ in range(k):
            arm = int(np.argmax(rng.beta(alpha, beta)))
            goal = int(goals[int(rng.integers(len(goals)))])
            picks.append((arm, goal))
        rewards = [float(r) for r in rollout(picks)]
        if len(rewards) != k:
            raise ThompsonError(f"the rollout returned {len(rewards)} rewards for {k} picks")
        for (arm, goal), reward in zip(picks, rewards):
            if not (0.0 <= reward <= 1.0):
                raise ThompsonError(f"reward {reward!r} of arm {arm} on goal {goal} is outside [0, 1]")
            pulls[arm] += 1
            successes[arm] += reward == 1.0
            reward_sums[arm] += reward
            for key, value in (("round", round_index), ("arm", arm), ("goal", goal), ("reward", reward)):
                episodes[key].append(value)
        done += k
        history["rollouts"].append(done)
        history["pulls"].append(pulls.tolist())
        history["success_alpha"].append((a0 + successes).tolist())
        history["success_beta"].append((b0 + pulls - successes).tolist())
        history["score_alpha"].append((a0 + reward_sums).tolist())
        history["score_beta"].append((b0 + pulls - reward_sums).tolist())
        round_index += 1
        if on_round is not None:
            on_round(k)
    return {
        "run_index": run_index,
        "seed": [int(config.seed), run_index],
        "pulls": pulls.tolist(),
        "successes": successes.tolist(),
        "reward_sums": reward_sums.tolist(),
        "history": history,
        "episodes": episodes,
        "seconds": round(time.perf_counter() - start, 3),
    }


# --------------------------------------------------------------------------- agents in the environment
_MODELS: dict[str, Any] = {}  # per process: checkpoint -> loaded policy (shared by the runs of a worker)


def build_agent(spec: AgentSpec, config: ThompsonConfig, run_index: int):
    """The agent of ``spec`` for run ``run_index`` (its sampling seed: (seed, run, name))."""
    return agent_from_spec(spec, derive_seed(config.seed, run_index, spec.name), config.data_dir)


def agent_from_spec(spec: AgentSpec, seed: int, data_dir: str | None = None):
    """The agent ``spec`` describes, its sampling seeded with ``seed``; a policy checkpoint is
    loaded once per process and shared by every agent built on it."""
    from webshop_trl.agents import make_agent

    if spec.kind == "rule":
        agent = make_agent("rule")
    elif spec.kind == "random":
        agent = make_agent("random", seed=seed)
    else:
        from webshop_trl.agents.policy_agent import PolicyAgent, load_policy

        key = os.path.abspath(os.path.expanduser(spec.checkpoint or ""))
        if key not in _MODELS:
            _MODELS[key] = load_policy(key)
        agent = PolicyAgent(  # make_agent's own first argument is called name
            model=_MODELS[key], greedy=spec.greedy, temperature=spec.temperature, seed=seed,
            query_source=spec.query_source, max_candidates=spec.max_candidates, data_dir=data_dir, name=spec.name,
        )
    return agent


class EnvRollout:
    """The real rollout: each picked agent plays its goals together on one vector env
    (`evaluate_agent`: one batched act call per step)."""

    def __init__(self, agents: Sequence[AgentSpec], config: ThompsonConfig, run_index: int):
        self.agents = [build_agent(spec, config, run_index) for spec in agents]
        self.env_configs = [config.env_config(spec.resolved_observation_mode(config)) for spec in agents]

    def goals(self, config: ThompsonConfig) -> list[int]:
        from webshop_trl.envs.backend import get_backend

        return list(get_backend(self.env_configs[0]).goals.split(config.split, config.split_mode))

    def __call__(self, picks: Sequence[tuple[int, int]]) -> list[float]:
        from webshop_trl.evaluation.evaluate import evaluate_agent

        rewards: list[float | None] = [None] * len(picks)
        by_arm: dict[int, list[int]] = {}
        for position, (arm, _) in enumerate(picks):
            by_arm.setdefault(arm, []).append(position)
        for arm in sorted(by_arm):
            positions = sorted(by_arm[arm], key=lambda p: picks[p][1])  # evaluate_agent sorts by goal
            goal_list = [picks[p][1] for p in positions]
            result = evaluate_agent(
                self.agents[arm], self.env_configs[arm], goal_indices=goal_list, num_envs=len(goal_list), progress=False,
            )
            for position, episode in zip(positions, result.episodes):
                rewards[position] = episode.reward
        return [float(r) for r in rewards]  # type: ignore[arg-type]


_PROGRESS_QUEUE: Any = None


def _worker_init(progress_queue: Any, threads: int) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue
    if threads > 0:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(threads)
        os.environ["WEBSHOP_TRL_THOMPSON_THREADS"] = str(threads)


def _set_torch_threads(agents: Sequence[AgentSpec]) -> None:
    threads = int(os.environ.get("WEBSHOP_TRL_THOMPSON_THREADS", "0") or 0)
    if threads > 0 and ("torch" in sys.modules or any(a.kind == "policy" for a in agents)):
        import torch

        torch.set_num_threads(threads)


def run_one(task: tuple[list[dict], dict, int]) -> dict[str, Any]:
    """A worker's job: run ``run_index`` with real agents. ``task``: (agent dicts, config dict,
    run index), plain data so it pickles under spawn."""
    agent_dicts, config_dict, run_index = task
    agents = [AgentSpec.from_dict(a) for a in agent_dicts]
    config = ThompsonConfig.from_dict(config_dict)
    _set_torch_threads(agents)
    rollout = EnvRollout(agents, config, run_index)
    progress_queue = _PROGRESS_QUEUE
    on_round = None if progress_queue is None else (lambda n: progress_queue.put((run_index, n)))
    return thompson_loop(len(agents), rollout.goals(config), rollout, config, run_index, on_round)


def execute_runs(
    tasks: Sequence[Any],
    worker: Callable[[Any], Any],
    num_workers: int,
    threads_per_worker: int = 1,
    on_progress: Callable[[int, int], None] | None = None,
    run_labels: Sequence[int] | None = None,
) -> list[Any]:
    """``[worker(task) for task in tasks]``, in ``num_workers`` spawned processes (in this process
    when ``num_workers`` <= 1). ``worker`` must be an importable top-level function. A worker that
    raises, or whose process dies, raises `ThompsonError` naming the run(s); the other workers are
    stopped. Workers report progress by putting ``(run, episodes)`` on the queue `_worker_init`
    hands them; ``on_progress`` gets those."""
    labels = list(run_labels) if run_labels is not None else list(range(len(tasks)))
    if num_workers <= 1 or len(tasks) <= 1:
        global _PROGRESS_QUEUE
        results = []
        saved = _PROGRESS_QUEUE
        _PROGRESS_QUEUE = _CallbackQueue(on_progress) if on_progress else None
        try:
            for label, task in zip(labels, tasks):
                try:
                    results.append(worker(task))
                except Exception as exc:
                    raise ThompsonError(f"run {label} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            _PROGRESS_QUEUE = saved
        return results

    ctx = multiprocessing.get_context("spawn")
    progress_queue = ctx.Queue()
    results: list[Any] = [None] * len(tasks)
    pool = ProcessPoolExecutor(
        max_workers=min(num_workers, len(tasks)), mp_context=ctx,
        initializer=_worker_init, initargs=(progress_queue, threads_per_worker),
    )
    failed = True
    try:
        futures = {pool.submit(worker, task): i for i, task in enumerate(tasks)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(progress_queue, on_progress)
            died = []
            for future in sorted(done, key=futures.__getitem__):
                i = futures[future]
                try:
                    results[i] = future.result()
                except BrokenProcessPool:
                    died.append(labels[i])
                except Exception as exc:
                    raise ThompsonError(f"run {labels[i]} failed in its worker process: {type(exc).__name__}: {exc}") from exc
            if died:
                died += sorted(labels[futures[f]] for f in pending)
                names = ", ".join(map(str, sorted(set(died))))
                raise ThompsonError(
                    f"a worker process died abruptly (killed, out of memory, or a crash) while run(s) {names} "
                    "were running or queued; the evaluation was stopped"
                )
        _drain(progress_queue, on_progress)
        failed = False
        return results
    finally:
        if failed:
            for process in list((getattr(pool, "_processes", None) or {}).values()):  # stop the runs still going
                if process.is_alive():
                    process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        progress_queue.close()
        progress_queue.join_thread()


class _CallbackQueue:
    """What `run_one` sees as its progress queue when runs go in this process."""

    def __init__(self, callback: Callable[[int, int], None]):
        self.callback = callback

    def put(self, item: tuple[int, int]) -> None:
        self.callback(*item)


def _drain(progress_queue: Any, on_progress: Callable[[int, int], None] | None) -> None:
    while True:
        try:
            run, n = progress_queue.get_nowait()
        except (queue_module.Empty, OSError, EOFError, ValueError):
            return
        if on_progress is not None:
            on_progress(run, n)


def run_thompson(
    agents: list[AgentSpec], config: ThompsonConfig, progress: bool = True,
    on_rollouts: Callable[[int], None] | None = None,
) -> "ThompsonReport":
    """Run ``config.num_runs`` Thompson-sampling runs over ``agents``; see the module docstring.
    ``progress`` shows a bar; ``on_rollouts`` gets the number of rollouts done so far (all runs)
    after each round, e.g. for plain progress lines in a log."""
    config = dataclasses.replace(config).validate()
    agents = list(agents)
    validate_agents(agents)
    tasks = [([a.to_dict() for a in agents], config.to_dict(), i) for i in range(config.num_runs)]
    start = time.perf_counter()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn(f"[bold]thompson[/] {len(agents)} agents x {config.num_runs} runs"), BarColumn(), MofNCompleteColumn(),
        TextColumn("rollouts"), TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress,
    ) as bar:
        task_id = bar.add_task("rollouts", total=config.num_runs * config.rollouts_per_run)
        done = 0

        def advance(run: int, n: int) -> None:
            nonlocal done
            done += n
            bar.update(task_id, advance=n)
            if on_rollouts is not None:
                on_rollouts(done)

        runs = execute_runs(tasks, run_one, config.num_workers, config.threads_per_worker, on_progress=advance)
    return ThompsonReport(config, agents, runs, seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------- the report
def _spread(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, float)
    return {
        "mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "min": float(arr.min()), "max": float(arr.max()),
    }


class ThompsonReport:
    """The runs of a Thompson-sampling evaluation and what they say about each agent.

    ``runs[i]`` (from `thompson_loop`): ``pulls``, ``successes``, ``reward_sums`` per agent;
    ``history`` (one entry per round: ``rollouts`` done, and per agent ``pulls``,
    ``success_alpha``/``success_beta``, ``score_alpha``/``score_beta``); ``episodes`` (columns
    ``round``, ``arm``, ``goal``, ``reward``). `summary` derives the per-agent figures.
    """

    def __init__(self, config: ThompsonConfig, agents: Sequence[AgentSpec], runs: Sequence[dict[str, Any]], seconds: float = 0.0):
        self.config = config
        self.agents = list(agents)
        self.runs = list(runs)
        self.seconds = float(seconds)
        self._summary: dict[str, Any] | None = None

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.agents]

    def posterior(self, metric: str, run: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, beta) per agent of ``metric`` ('success' or 'score') after run ``run``, or
        pooled over all runs (prior + all their data) when ``run`` is None."""
        runs = self.runs if run is None else [self.runs[run]]
        pulls = np.sum([r["pulls"] for r in runs], axis=0).astype(float)
        hits = np.sum([r["successes"] if metric == "success" else r["reward_sums"] for r in runs], axis=0).astype(float)
        return self.config.prior_alpha + hits, self.config.prior_beta + pulls - hits

    def summary(self) -> dict[str, Any]:
        """Per agent: pulls, observed successes, and for 'success' and 'score' the pooled posterior
        (alpha, beta, mean, credible interval), the observed rate, the spread across runs of each
        run's posterior mean, and P(best) pooled and per run. Means are fractions in [0, 1].

        Also: ``best`` (largest P(best) by the objective among agents with pulls; None only if no
        agent was pulled), ``no_pulls`` (agents never pulled: their posterior is the prior),
        ``pairwise`` (per metric, P(A > B) for every pair of agents, A listed first) and
        ``settled`` / ``settled_statement`` (the pairs of agents with pulls whose P(A > B) or
        P(B > A) reaches ``credible_level`` on the objective, and a sentence saying so)."""
        if self._summary is not None:
            return self._summary
        cfg = self.config
        out: dict[str, Any] = {"agents": {}, "p_best_by": cfg.objective}
        pulls_per_run = np.asarray([r["pulls"] for r in self.runs], dtype=np.int64)
        per_metric: dict[str, dict[str, Any]] = {}
        for m, metric in enumerate(OBJECTIVES):
            alpha, beta = self.posterior(metric)
            lo, hi = beta_interval(alpha, beta, cfg.credible_level)
            run_means = np.asarray([a / (a + b) for a, b in (self.posterior(metric, i) for i in range(len(self.runs)))])
            pooled_best = p_best(alpha, beta, cfg.p_best_samples, np.random.default_rng([cfg.seed, 1_000_003, m]))
            run_best = [
                p_best(*self.posterior(metric, i), cfg.p_best_samples, np.random.default_rng([cfg.seed, 1_000_003, m, i]))
                for i in range(len(self.runs))
            ]
            data = np.sum([r["successes"] if metric == "success" else r["reward_sums"] for r in self.runs], axis=0)
            per_metric[metric] = dict(alpha=alpha, beta=beta, lo=lo, hi=hi, run_means=run_means, pooled_best=pooled_best, run_best=run_best, data=data)
        total_pulls = pulls_per_run.sum(axis=0)
        for j, name in enumerate(self.names):
            entry: dict[str, Any] = {
                "spec": self.agents[j].describe(),
                "pulls": int(total_pulls[j]),
                "successes": int(round(float(per_metric["success"]["data"][j]))),
                "pulls_share": float(total_pulls[j] / max(total_pulls.sum(), 1)),
                "pulls_per_run": pulls_per_run[:, j].tolist(),
            }
            for metric, d in per_metric.items():
                a, b = float(d["alpha"][j]), float(d["beta"][j])
                entry[metric] = {
                    "alpha": a, "beta": b, "mean": a / (a + b),
                    "ci": [float(d["lo"][j]), float(d["hi"][j])],
                    "observed": float(d["data"][j] / total_pulls[j]) if total_pulls[j] else None,
                    "runs": {**_spread(d["run_means"][:, j]), "values": d["run_means"][:, j].tolist()},
                    "p_best": d["pooled_best"][j],
                    "p_best_per_run": [rb[j] for rb in d["run_best"]],
                }
            out["agents"][name] = entry
        pulled = [n for n in self.names if out["agents"][n]["pulls"] > 0]
        out["no_pulls"] = [n for n in self.names if n not in pulled]
        out["best"] = max(pulled, key=lambda n: out["agents"][n][cfg.objective]["p_best"]) if pulled else None
        out["pairwise"] = {
            metric: self._pairwise(metric, np.random.default_rng([cfg.seed, 1_000_004, m])) for m, metric in enumerate(OBJECTIVES)
        }
        out["settled"] = [
            p for p in out["pairwise"][cfg.objective]
            if p["a"] in pulled and p["b"] in pulled and max(p["p_a_greater"], 1 - p["p_a_greater"]) >= cfg.credible_level
        ]
        out["settled_statement"] = self._settled_statement(out, pulled)
        self._summary = out
        return out

    def _pairwise(self, metric: str, rng: np.random.Generator) -> list[dict[str, Any]]:
        """P(A > B) for every pair (A listed first) from joint draws of the pooled posteriors."""
        alpha, beta = self.posterior(metric)
        draws = rng.beta(alpha, beta, size=(self.config.p_best_samples, len(alpha)))
        return [
            {"a": a, "b": b, "p_a_greater": float(np.mean(draws[:, i] > draws[:, j]))}
            for i, a in enumerate(self.names) for j, b in enumerate(self.names) if i < j
        ]

    def _settled_statement(self, out: dict[str, Any], pulled: Sequence[str]) -> str:
        cfg = self.config
        level = f"{100 * cfg.credible_level:g} %"
        metric = cfg.objective
        if len(pulled) < 2:
            return f"fewer than two agents have pulls: no difference between agents can be settled at {level}"
        if not out["settled"]:
            return f"no difference between agents is settled at {level} (no pair with P(A > B) >= {cfg.credible_level:g} on {metric})"
        parts = []
        for p in out["settled"]:
            win, lose, prob = (p["a"], p["b"], p["p_a_greater"]) if p["p_a_greater"] >= 0.5 else (p["b"], p["a"], 1 - p["p_a_greater"])
            parts.append(f"{win} > {lose} (P = {prob:.3f})")
        return f"settled at {level} on {metric}: " + "; ".join(parts) + "; every other pair is not settled"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "webshop-trl/thompson-report/v1",
            "config": self.config.to_dict(),
            "agents": [a.to_dict() for a in self.agents],
            "seconds": round(self.seconds, 3),
            "summary": self.summary(),
            "runs": self.runs,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON atomically (a killed run never leaves a truncated file)."""
        return write_json_atomic(path, self.to_dict(), indent=None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ThompsonReport":
        return cls(
            ThompsonConfig.from_dict(data["config"]), [AgentSpec.from_dict(a) for a in data["agents"]],
            data["runs"], seconds=data.get("seconds", 0.0),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ThompsonReport":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ThompsonError(f"cannot read the Thompson report {path}: {exc}") from None
        if not isinstance(data, dict) or "runs" not in data or "config" not in data:
            raise ThompsonError(f"{path} is not a Thompson report (no config/runs)")
        return cls.from_dict(data)

    def table_markdown(self) -> str:
        """One row per agent: pulls; observed successes / pulls and observed score beside the pooled
        posterior mean [credible interval] of each (in %); each run's posterior mean across runs
        (mean ± std [min, max]); P(best). An agent with no pulls is marked "no pulls". Below the
        table: the most likely best agent among those with pulls, and which differences are settled."""
        s = self.summary()
        cfg = self.config
        level = f"{100 * cfg.credible_level:g}%"
        head = (
            f"| agent | pulls | observed successes / pulls | success %: posterior mean [{level} CrI] | observed score | "
            f"score: posterior mean [{level} CrI] | success % across runs | score across runs | "
            f"P(best {cfg.objective}) pooled | P(best) per run |"
        )
        rows = [head, "|" + "---|" * 10]
        for name in self.names:
            e = s["agents"][name]
            no_pulls = e["pulls"] == 0

            def cell(metric: str) -> str:
                d = e[metric]
                text = f"{100 * d['mean']:.1f} [{100 * d['ci'][0]:.1f}, {100 * d['ci'][1]:.1f}]"
                return text + " (prior only)" if no_pulls else text

            def spread(metric: str) -> str:
                r = e[metric]["runs"]
                return f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f} [{100 * r['min']:.1f}, {100 * r['max']:.1f}]"

            observed_success = "no pulls" if no_pulls else f"{e['successes']} / {e['pulls']} ({100 * e['success']['observed']:.1f}%)"
            observed_score = "no pulls" if no_pulls else f"{100 * e['score']['observed']:.1f}"
            per_run = ", ".join(f"{p:.2f}" for p in e[cfg.objective]["p_best_per_run"])
            p_best_cell = f"{e[cfg.objective]['p_best']:.3f}" + (" (no pulls)" if no_pulls else "")
            rows.append(
                f"| {name} | {e['pulls']} ({100 * e['pulls_share']:.0f}%) | {observed_success} | {cell('success')} | "
                f"{observed_score} | {cell('score')} | {spread('success')} | {spread('score')} | {p_best_cell} | {per_run} |"
            )
        best = s["best"]
        best_line = (
            f"Most likely best (largest P(best {cfg.objective}) among agents with pulls): {best} "
            f"(P = {s['agents'][best][cfg.objective]['p_best']:.3f})." if best is not None else "No agent has pulls."
        )
        if s["no_pulls"]:
            best_line += f" Never pulled, so not ranked: {', '.join(s['no_pulls'])}."
        caption = (
            f"\n{cfg.num_runs} runs x {cfg.rollouts_per_run} rollouts ({cfg.rollouts_per_round} per round), "
            f"{cfg.split} split ({cfg.split_mode}), arms picked by {cfg.objective}, prior Beta({cfg.prior_alpha:g}, {cfg.prior_beta:g}), "
            f"seed {cfg.seed}. Score = 100 x mean reward. Observed = the episodes' own figures; posterior mean = "
            f"(alpha0 + successes) / (alpha0 + beta0 + pulls) (for score: the sum of rewards in place of successes), "
            f"pulled towards the prior, with its {level} credible interval (CrI).\n\n"
            f"{best_line} {s['settled_statement'][0].upper()}{s['settled_statement'][1:]}."
        )
        return "\n".join(rows) + "\n" + caption + "\n"


__all__ = [
    "AgentSpec", "ThompsonConfig", "ThompsonReport", "ThompsonError", "run_thompson", "thompson_loop",
    "execute_runs", "run_one", "EnvRollout", "build_agent", "agent_from_spec", "beta_cdf", "beta_ppf", "beta_interval", "p_best",
    "validate_agents", "AGENT_KINDS",
]
