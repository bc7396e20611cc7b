"""Preference pairs for DPO from trajectories: (observation, chosen action, rejected action).

Chosen is the demonstration's action; rejected is what a reference policy would do on that page
(Feng & Feng, KDD'24 RelKD, section 3.1) or a uniformly drawn other candidate. See
`build_preferences` (the build), `save_preferences` (atomic save_to_disk with card and
build_info.json), `push_preferences_to_hub`, and the command ``webshop-trl build-preferences``.

Example::

    from webshop_trl.preferences import PreferenceBuildConfig, build_preferences, save_preferences

    built = build_preferences(PreferenceBuildConfig(["demos.jsonl"], reference_model="outputs/il-policy"))
    save_preferences(built, "outputs/preferences/expert-dpo")
    built.dataset["train"][0]   # {"prompt": ..., "chosen": ..., "rejected": ..., "available_actions": [...], ...,
                                #  "ref_chosen_logps": ..., "ref_rejected_logps": ...}  (the reference's log-probs)
"""

from webshop_trl.preferences.build import (
    BUILD_INFO_NAME,
    COLUMNS,
    FORMAT_ID,
    SPLITS,
    BuiltPreferences,
    PreferenceBuildConfig,
    PreferenceBuildError,
    build_preferences,
    features,
    load_reference_policy,
    split_goals,
)
from webshop_trl.preferences.card import render_card
from webshop_trl.preferences.reference import (
    REFERENCE_LOG_PROB_COLUMNS,
    reference_mismatches,
    reference_record,
    weights_fingerprint,
)
from webshop_trl.preferences.hub import push_preferences_to_hub, push_saved_preferences
from webshop_trl.preferences.rejection import REJECTION_METHODS, ReferencePolicyRejector, Rejection, UniformRejector
from webshop_trl.preferences.storage import check_output, is_preference_folder, load_preferences, save_preferences, stale_temp_folders

__all__ = [
    "BUILD_INFO_NAME",
    "COLUMNS",
    "FORMAT_ID",
    "REFERENCE_LOG_PROB_COLUMNS",
    "REJECTION_METHODS",
    "SPLITS",
    "BuiltPreferences",
    "PreferenceBuildConfig",
    "PreferenceBuildError",
    "ReferencePolicyRejector",
    "Rejection",
    "UniformRejector",
    "build_preferences",
    "check_output",
    "features",
    "is_preference_folder",
    "load_preferences",
    "load_reference_policy",
    "push_preferences_to_hub",
    "push_saved_preferences",
    "reference_mismatches",
    "reference_record",
    "render_card",
    "save_preferences",
    "split_goals",
    "stale_temp_folders",
    "weights_fingerprint",
]
