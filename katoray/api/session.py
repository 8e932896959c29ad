"""``KatoSession``: a KATO client session, served by the built-in engine.

Shaped like a session on a KATO server (``POST /sessions`` then observe / learn / predictions),
so code written against KATO's HTTP client reads the same, and a remote server can stand in.
The knowledge base is per ``node_id`` (KATO's ``kb_id = <node_id>_kato``), opened from a store
URL; several sessions on the same node share it (for ``memory://<name>``, sqlite and MongoDB).
"""
from __future__ import annotations

import uuid
from typing import Any, Iterable, Mapping

from katoray.engine.config import SessionConfig
from katoray.engine.naming import strip_prefix
from katoray.engine.observation import make_observation, observation_from_dict
from katoray.engine.processor import KatoProcessor
from katoray.errors import ConfigError
from katoray.store import KnowledgeBase, kb_id_for, open_store


class KatoSession:
    """One session on one node's knowledge base.

    >>> s = KatoSession(node_id="demo", store="memory://")
    >>> _ = s.observe(strings=["a"]); _ = s.observe(strings=["b"])
    >>> s.learn()
    'PTRN|76d7efca2e96cb5eeddf4e06ac96a0f424630135'
    """

    def __init__(self, node_id: str = "node0", store: str | KnowledgeBase = "memory://",
                 config: Mapping[str, Any] | SessionConfig | None = None, metadata_cap: int | None = None) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise ConfigError(f"node_id must be a non-empty string, got {node_id!r}")
        self.node_id = node_id
        self.kb_id = kb_id_for(node_id)
        self.kb = open_store(store, self.kb_id) if isinstance(store, str) else store
        cfg = config if isinstance(config, SessionConfig) else SessionConfig.from_dict(config)
        self._processor = KatoProcessor(self.kb, cfg, metadata_cap)

    # -- configuration ------------------------------------------------------------------------
    @property
    def config(self) -> SessionConfig:
        return self._processor.config

    def get_config(self) -> dict[str, Any]:
        return self.config.to_dict()

    def set_config(self, config: SessionConfig) -> None:
        """Replace the session settings with an already validated config."""
        if not isinstance(config, SessionConfig):
            raise ConfigError(f"set_config takes a SessionConfig, got {type(config).__name__}; "
                              "update_config takes a dict")
        self._processor.config = config

    def update_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Change session settings (validated as a whole; nothing changes on error)."""
        if isinstance(config, Mapping) and set(config) == {"config"}:  # KATO's {"config": {...}} body
            config = config["config"]
        self._processor.config = self.config.updated(config)
        return {"status": "okay", "message": "Configuration updated"}

    # -- observe ------------------------------------------------------------------------------
    @property
    def time(self) -> int:
        return self._processor.time

    def observe(self, strings: Iterable[str] | None = None, vectors=None, emotives=None,
                metadata=None, unique_id: str | None = None) -> dict[str, Any]:
        """Add one observation; returns KATO's observe response fields."""
        obs = make_observation(strings, vectors, emotives, metadata, unique_id or f"obs-{uuid.uuid4().hex}")
        learned = self._processor.observe(obs)
        return {"status": "okay", "processor_id": self.node_id, "stm_length": len(self._processor.stm),
                "time": self._processor.time, "unique_id": obs.unique_id, "auto_learned_pattern": learned}

    def observe_sequence(self, observations: Iterable[Mapping[str, Any]], learn_after_each: bool = False,
                         learn_at_end: bool = False, clear_stm_between: bool = False) -> dict[str, Any]:
        """KATO's observe-sequence: every observation is validated before any is applied."""
        items = [observation_from_dict(o, i) for i, o in enumerate(observations)]
        proc = self._processor
        initial = len(proc.stm)
        results, learned_names = [], []
        for i, obs in enumerate(items):
            if clear_stm_between and i > 0:
                proc.clear_stm_only()
            auto = proc.observe(obs)
            if learn_after_each and proc.stm:
                learned_names.append(proc.learn())
            if auto:
                learned_names.append(auto)
            results.append({"status": "okay", "sequence_position": i, "stm_length": len(proc.stm),
                            "time": proc.time, "unique_id": obs.unique_id or f"seq-obs-{uuid.uuid4().hex}",
                            "auto_learned_pattern": auto})
        final = None
        if learn_at_end and proc.stm:
            final = proc.learn()
            learned_names.append(final)
        return {"status": "completed", "processor_id": self.node_id, "observations_processed": len(items),
                "initial_stm_length": initial, "final_stm_length": len(proc.stm), "results": results,
                "auto_learned_patterns": learned_names, "final_learned_pattern": final,
                "isolated": clear_stm_between}

    # -- learn / stm --------------------------------------------------------------------------
    def learn(self) -> str:
        """Learn STM as a pattern: ``PTRN|<sha1>``, or ``""`` when STM holds fewer than 2 symbols."""
        return self._processor.learn()

    def get_stm(self) -> list[list[str]]:
        return [list(event) for event in self._processor.stm]

    def percept_emotives(self) -> list[dict[str, float]]:
        """The emotive dicts observed since the last learn or clear (learned with the next pattern)."""
        return self._processor.percept_emotives()

    def clear_stm(self) -> dict[str, str]:
        self._processor.clear_stm()
        return {"status": "cleared"}

    def clear_all(self) -> dict[str, str]:
        """Wipe this node's whole knowledge base (every session of the node sees it) and STM."""
        self.kb.clear()
        self._processor.clear_stm()
        return {"status": "cleared", "scope": "all"}

    # -- patterns and predictions -------------------------------------------------------------
    def get_pattern(self, name: str) -> dict[str, Any] | None:
        """The stored pattern (name with ``PTRN|``), given its name with or without the prefix."""
        record = self.kb.get_pattern(strip_prefix(name))
        return None if record is None else record.to_dict()

    def get_predictions(self) -> list[dict[str, Any]]:
        """KATO's ranked predictions for the current STM."""
        return self.predict()["predictions"]

    def predict(self) -> dict[str, Any]:
        """Predictions plus ``future_potentials`` (KATO's predictions payload)."""
        from katoray.engine.predict import predict

        result = predict(self.kb, self._processor.stm, self.config)
        return {"predictions": result.predictions, "future_potentials": result.future_potentials,
                "count": len(result.predictions)}

    def close(self) -> None:
        self.kb.close()

    def __repr__(self) -> str:
        return f"KatoSession(node_id={self.node_id!r}, kb_id={self.kb_id!r}, stm_length={len(self._processor.stm)})"
