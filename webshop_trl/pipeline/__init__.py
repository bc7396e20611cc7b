"""The paper's pipeline end to end (Feng & Feng, KDD'24): expert demos, IL, self-generated
trajectories, preference pairs, DPO on each, PPO, Thompson-sampling evaluation and a report.

    webshop-trl pipeline                       # the small budget into outputs/pipeline
    webshop-trl pipeline --budget paper --output outputs/pipeline-paper

`config` holds the settings and named budgets, `stages` the stage commands, `runner` the
reusing, resumable runner and `report` the markdown/JSON report.
"""

from webshop_trl.pipeline.config import BUDGETS, PipelineConfig, PipelineConfigError, apply_overrides
from webshop_trl.pipeline.runner import PipelineError, PipelineRunner, StageFailed, run_pipeline
from webshop_trl.pipeline.stages import STAGE_NAMES, STAGES, Layout

__all__ = [
    "BUDGETS", "Layout", "PipelineConfig", "PipelineConfigError", "PipelineError", "PipelineRunner", "STAGES",
    "STAGE_NAMES", "StageFailed", "apply_overrides", "run_pipeline",
]
