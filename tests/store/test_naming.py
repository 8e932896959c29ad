"""A run's knowledge-base names: injective, legal for MongoDB and file systems, never truncated."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from katoray.config import check_run_id
from katoray.errors import ConfigError
from katoray.store.mongo_connect import check_db_name
from katoray.store.naming import MAX_DB_NAME_BYTES, decode_run_id, kb_id_for, run_kb_id, run_of_kb_id

# Run ids KATO's rule (kb_id_for) folds together: '-', '.' and '_' all become '_'.
FOLDED = ["exp-1", "exp_1", "exp.1", "Exp-1", "EXP_1", "exp~1", "exp1", "exp__1", "exp-_1"]


def test_distinct_run_ids_get_distinct_knowledge_bases():
    assert len({kb_id_for(f"node0_{run}") for run in FOLDED[:3]}) == 1     # KATO's own rule: one name for three
    names = [run_kb_id(0, run) for run in FOLDED]
    assert len(set(names)) == len(FOLDED)
    assert len({name.lower() for name in names}) == len(FOLDED)   # case-insensitive file systems too
    assert run_kb_id(0, "exp-1") == "node0_exp-1_kato" and run_kb_id(2, "baseline_8chunks") == "node2_baseline_8chunks_kato"
    assert run_kb_id(0, "exp.1") == "node0_exp~2e~1_kato"


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs")), min_size=1, max_size=12),
       st.integers(0, 999))
def test_names_read_back_and_are_legal_database_names(run_id, level):
    if run_id.startswith(".") or "/" in run_id or "\\" in run_id:
        return
    name = run_kb_id(level, run_id)
    assert run_of_kb_id(name) == (level, run_id) and decode_run_id(name.split("_", 1)[1][:-5]) == run_id
    if len(name.encode()) <= MAX_DB_NAME_BYTES:
        check_db_name(name)         # MongoDB's rules: no / \\ . " $ * < > : | ? NUL, under 64 bytes
        assert name == name.lower() and "/" not in name


def test_a_run_id_too_long_for_its_names_is_refused_with_the_limit():
    check_run_id("r" * 50)
    check_db_name(run_kb_id(999, "r" * 50))
    with pytest.raises(ConfigError, match="at most 50 characters.*MongoDB database names hold at most 63 bytes|"
                                          "MongoDB database names hold at most 63 bytes.*at most 50 characters"):
        check_run_id("r" * 300)
    with pytest.raises(ConfigError, match="counts 52"):
        check_run_id("R" * 13)              # capitals are written ~52~ .. : 4 characters each


@pytest.mark.parametrize("run_id", [".hidden", "a\x00b", "a/b", "a b", "tab\there", ""])
def test_the_one_run_id_rule(run_id):
    with pytest.raises(ConfigError, match="run id"):
        check_run_id(run_id)


def test_knowledge_bases_that_are_no_run_s():
    assert run_of_kb_id("node0_kato") is None and run_of_kb_id("symbols") is None
