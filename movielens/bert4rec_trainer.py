"""The original BERT4Rec entry points; everything now lives in `movielens.sequential` (shared with SASRec).

Kept so `from movielens.bert4rec_trainer import train_bert4rec, ...` keeps working.
"""

from movielens.sequential import (  # noqa: F401
    ARCHITECTURE_VERSION,
    KS,
    MODEL_NAME,
    MONITOR,
    SAMPLED_NEGATIVES,
    SAMPLED_PREFIX,
    Bert4RecRecommender,
    Bert4RecTrainingConfig,
    SequentialRecommender,
    SequentialTrainingConfig,
    TimeBudget,
    TrainedBert4Rec,
    TrainedSequential,
    WarmupConstant,
    build_model,
    cache_key,
    load_trained,
    next_item_metrics,
    next_item_ranks,
    sampled_metrics,
    train_bert4rec,
    train_sequential,
)
