"""``--shards`` on ``katoray train`` (and ``scripts/train.py``): one count or one per level, as
``TrainConfig.shards`` takes it; bad values are named before anything runs."""
from __future__ import annotations

import pytest

from katoray.cli import build_parser
from katoray.cli.train import job_parser
from katoray.config import TrainConfig
from katoray.errors import ConfigError


@pytest.mark.parametrize("given,shards", [("4", 4), ("4,2,1,1", (4, 2, 1, 1)), ("1", 1)])
def test_shards_option_reaches_the_config(given, shards):
    args = build_parser().parse_args(["train", "--shards", given])
    assert args.shards == shards
    assert TrainConfig(shards=args.shards).shards == ((shards,) * 4 if isinstance(shards, int) else shards)
    assert job_parser().parse_args(["--runs-dir", "/r", "--shards", given]).shards == shards
    assert build_parser().parse_args(["train"]).shards == 1           # the default: one knowledge base per level


@pytest.mark.parametrize("given,message", [("0", "every shard count must be >= 1"), ("4,x", "comma-separated integers"),
                                           ("", "comma-separated integers")])
def test_bad_shard_options_are_refused(given, message, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--shards", given])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("values,message", [
    ({"shards": (4, 2)}, "shards has 2 values \\[4, 2\\] but levels is 4"),
    ({"shards": 0}, "node0: shards must be an integer >= 1"),
    ({"shards": 1001}, "node0: shards must be at most 1000"),
    ({"shards": "4"}, "shards must be an integer or one integer per level"),
    ({"shards": (2, True, 1, 1)}, "node1: shards must be an integer >= 1"),
])
def test_bad_shard_configs_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**values)


def test_a_resume_keeps_the_shards():
    run = TrainConfig(shards=(3, 2, 1, 1)).for_run("r")
    assert run.to_dict()["shards"] == [3, 2, 1, 1] and TrainConfig(shards=2).to_dict()["shards"] == 2
    assert TrainConfig.from_dict(run.to_dict()) == run
    assert run.structural_differences(TrainConfig(shards=1).for_run("r")) == ["shards: run had [3, 2, 1, 1], now 1"]
