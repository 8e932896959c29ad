"""katoray: hierarchies of KATO pattern learners, trained on text in a single pass, on Ray.

The engine names (``KatoSession``, ``pattern_name``) import eagerly; the notebook's names
(``HierarchicalConceptLearner``, ``train_from_streaming_dataset_parallel``, ...) import on first
use, so ``import katoray`` stays light (no Ray, no transformers).
"""
from __future__ import annotations

from katoray.engine.config import SessionConfig
from katoray.engine.naming import pattern_hash, pattern_name, strip_prefix
from katoray.api.session import KatoSession
from katoray.util import lazy_exports

__version__ = "0.1.0"

# defining module -> public names (imported on first use)
__getattr__, __dir__, _LAZY_NAMES = lazy_exports(__name__, {
    "katoray.hierarchy.config": ["HierarchicalNode", "HierarchyConfig"],
    "katoray.hierarchy.learner": ["HierarchicalConceptLearner", "TokenProcessor"],
    "katoray.hierarchy.train": ["train_hierarchical_single_pass"],
    "katoray.hierarchy.prepare": ["DocumentPreparer"],
    "katoray.text.segment": ["CorpusSegmenter", "Document"],
    "katoray.text.corpora": ["StreamingDatasetLoader"],
    "katoray.text.hardware": ["HardwareAnalyzer", "recommend_dataset_configuration"],
    "katoray.text.tokenizers": ["load_tokenizer"],
    "katoray.store": ["open_store"],
    "katoray.analysis.analyzer": ["MongoDBAnalyzer", "StandaloneMongoDBAnalyzer", "KnowledgeBaseAnalyzer",
                                  "analyze_all_nodes", "cleanup_all_nodes", "sample_pattern_by_frequency"],
    "katoray.analysis.transfer": ["transfer_all_names", "transfer_threshold", "transfer_top_n", "transfer_weighted",
                                  "transfer_predictions"],
    "katoray.generation": ["unravel", "decode_pattern"],
    "katoray.model.run": ["open_run"],
    "katoray.api.remote": ["RemoteKatoSession"],
    "katoray.jobs.notebook": ["train_from_streaming_dataset", "train_from_streaming_dataset_parallel"],
    "katoray.jobs": ["TrainingManifest", "load_latest_manifest", "list_all_training_runs", "create_training_run_nodes",
                     "delete_training_run", "fingerprint", "TrainConfig", "start_run", "resume_run"],
})
del lazy_exports

__all__ = ["KatoSession", "SessionConfig", "pattern_name", "pattern_hash", "strip_prefix", "__version__", *_LAZY_NAMES]
