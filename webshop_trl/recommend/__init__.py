"""The shopping agent as a recommender (the paper's §6): sampled runs of the agent on a request,
the products it buys ranked by how often. See `webshop_trl.recommend.recommender`.

    from webshop_trl.recommend import Recommender, RecommendConfig
    result = Recommender.from_checkpoint("outputs/il/minilm", RecommendConfig(num_runs=10)).recommend("i need a red dress")
    print(result.table())

Command line: ``webshop-trl recommend "i need a red dress under 40 dollars" --runs 10``.
"""

from webshop_trl.recommend.recommender import (
    DEFAULT_CHECKPOINT,
    RecommendConfig,
    RecommendEpisode,
    Recommendation,
    RecommendationList,
    Recommender,
    RecommendError,
    default_checkpoint,
    rank_products,
    recommend,
)

__all__ = [
    "DEFAULT_CHECKPOINT", "RecommendConfig", "RecommendEpisode", "Recommendation", "RecommendationList",
    "Recommender", "RecommendError", "default_checkpoint", "rank_products", "recommend",
]
