"""kato-lm's names, working over katoray: what the seed notebook imports, in one package.

    nodes       HierarchicalNode, create_training_run_nodes
    learner     HierarchicalConceptLearner, TokenProcessor
    notebook    train_from_streaming_dataset, train_from_streaming_dataset_parallel
    sequential  train_hierarchical_single_pass (one process, no Ray: the exact reference)
    analyzers   MongoDBAnalyzer, StandaloneMongoDBAnalyzer, analyze_all_nodes, cleanup_all_nodes,
                sample_pattern_by_frequency
    transfer    transfer_predictions and the transfer_* modeling functions
    hardware    HardwareAnalyzer, recommend_dataset_configuration
    runs        load_latest_manifest, list_all_training_runs, delete_training_run

These are thin adapters over the core (``katoray.config``, ``katoray.jobs``, ``katoray.analysis``):
nothing in the core imports this package. Names import on first use.
"""
from katoray.util import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "katoray.compat.nodes": ["HierarchicalNode", "TrainingRunNodes", "create_training_run_nodes"],
    "katoray.compat.learner": ["HierarchicalConceptLearner", "TokenProcessor"],
    "katoray.compat.notebook": ["train_from_streaming_dataset", "train_from_streaming_dataset_parallel"],
    "katoray.compat.sequential": ["train_hierarchical_single_pass"],
    "katoray.compat.analyzers": ["MongoDBAnalyzer", "StandaloneMongoDBAnalyzer", "analyze_all_nodes",
                                 "cleanup_all_nodes", "sample_pattern_by_frequency"],
    "katoray.compat.transfer": ["transfer_all_names", "transfer_threshold", "transfer_top_n", "transfer_weighted",
                                "transfer_predictions"],
    "katoray.compat.hardware": ["HardwareAnalyzer", "recommend_dataset_configuration", "format_recommendations"],
    "katoray.compat.runs": ["load_latest_manifest", "list_all_training_runs", "delete_training_run"],
})
del lazy_exports
