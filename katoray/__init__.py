"""katoray: hierarchies of KATO pattern learners, trained on text in a single pass, on Ray.

The engine names (``KatoSession``, ``pattern_name``) import eagerly; the notebook's names
(``HierarchicalConceptLearner``, ``train_from_streaming_dataset_parallel``, ...) import on first
use, so ``import katoray`` stays light (no Ray, no transformers).
"""
from __future__ import annotations

from katoray.engine.config import SessionConfig
from katoray.engine.naming import pattern_hash, pattern_name, strip_prefix
from katoray.session import KatoSession
from katoray.util import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily)
_LAZY = {
    "HierarchicalNode": "katoray.hierarchy.config",
    "HierarchyConfig": "katoray.hierarchy.config",
    "HierarchicalConceptLearner": "katoray.hierarchy.learner",
    "TokenProcessor": "katoray.hierarchy.learner",
    "train_hierarchical_single_pass": "katoray.hierarchy.train",
    "DocumentPreparer": "katoray.hierarchy.prepare",
    "CorpusSegmenter": "katoray.text.segment",
    "Document": "katoray.text.segment",
    "StreamingDatasetLoader": "katoray.text.corpora",
    "HardwareAnalyzer": "katoray.text.hardware",
    "recommend_dataset_configuration": "katoray.text.hardware",
    "load_tokenizer": "katoray.text.tokenizers",
    "open_store": "katoray.store",
    "MongoDBAnalyzer": "katoray.analysis.analyzer",
    "StandaloneMongoDBAnalyzer": "katoray.analysis.analyzer",
    "KnowledgeBaseAnalyzer": "katoray.analysis.analyzer",
    "analyze_all_nodes": "katoray.analysis.analyzer",
    "cleanup_all_nodes": "katoray.analysis.analyzer",
    "sample_pattern_by_frequency": "katoray.analysis.analyzer",
    "transfer_all_names": "katoray.analysis.transfer",
    "transfer_threshold": "katoray.analysis.transfer",
    "transfer_top_n": "katoray.analysis.transfer",
    "transfer_weighted": "katoray.analysis.transfer",
    "transfer_predictions": "katoray.analysis.transfer",
    "unravel": "katoray.generation",
    "decode_pattern": "katoray.generation",
    "RemoteKatoSession": "katoray.remote",
    "train_from_streaming_dataset": "katoray.jobs.notebook",
    "train_from_streaming_dataset_parallel": "katoray.jobs.notebook",
    "TrainingManifest": "katoray.jobs",
    "load_latest_manifest": "katoray.jobs",
    "list_all_training_runs": "katoray.jobs",
    "create_training_run_nodes": "katoray.jobs",
    "delete_training_run": "katoray.jobs",
    "fingerprint": "katoray.jobs",
    "TrainConfig": "katoray.jobs",
    "start_run": "katoray.jobs",
    "resume_run": "katoray.jobs",
}

__all__ = ["KatoSession", "SessionConfig", "pattern_name", "pattern_hash", "strip_prefix", "__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
del lazy_exports
