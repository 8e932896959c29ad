"""katoray: hierarchies of KATO pattern learners, trained on text in a single pass, on Ray.

The engine names (``KatoSession``, ``pattern_name``) import eagerly; everything else imports on
first use, so ``import katoray`` stays light (no Ray, no transformers). The core's names come
first; kato-lm's names (what the seed notebook imports) are :mod:`katoray.compat`'s.
"""
from __future__ import annotations

from katoray.api.session import KatoSession
from katoray.engine.config import SessionConfig
from katoray.engine.naming import pattern_hash, pattern_name, strip_prefix
from katoray.util import lazy_exports
from katoray.version import __version__


# defining module -> public names (imported on first use)
__getattr__, __dir__, _LAZY_NAMES = lazy_exports(__name__, {
    # the core
    "katoray.config": ["TrainConfig", "HierarchyConfig"],
    "katoray.jobs": ["start_run", "resume_run", "fingerprint", "TrainingManifest"],
    "katoray.store": ["open_store"],
    "katoray.text.segment": ["CorpusSegmenter", "Document"],
    "katoray.text.corpora": ["StreamingDatasetLoader"],
    "katoray.text.tokenizers": ["load_tokenizer"],
    "katoray.hierarchy.prepare": ["DocumentPreparer"],
    "katoray.analysis.analyzer": ["KnowledgeBaseAnalyzer"],
    "katoray.generation": ["unravel", "decode_pattern"],
    "katoray.model.run": ["open_run"],
    "katoray.api.remote": ["RemoteKatoSession"],
    # kato-lm's names
    "katoray.compat.nodes": ["HierarchicalNode", "create_training_run_nodes"],
    "katoray.compat.learner": ["HierarchicalConceptLearner", "TokenProcessor"],
    "katoray.compat.sequential": ["train_hierarchical_single_pass"],
    "katoray.compat.notebook": ["train_from_streaming_dataset", "train_from_streaming_dataset_parallel"],
    "katoray.compat.analyzers": ["MongoDBAnalyzer", "StandaloneMongoDBAnalyzer", "analyze_all_nodes",
                                 "cleanup_all_nodes", "sample_pattern_by_frequency"],
    "katoray.compat.transfer": ["transfer_all_names", "transfer_threshold", "transfer_top_n", "transfer_weighted",
                                "transfer_predictions"],
    "katoray.compat.hardware": ["HardwareAnalyzer", "recommend_dataset_configuration"],
    "katoray.compat.runs": ["load_latest_manifest", "list_all_training_runs", "delete_training_run"],
})
del lazy_exports

__all__ = ["KatoSession", "SessionConfig", "pattern_name", "pattern_hash", "strip_prefix", "__version__", *_LAZY_NAMES]
