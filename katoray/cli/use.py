"""``katoray predict | generate | eval``: use a trained run (``katoray.open_run``)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from katoray.cli.common import add_command, count, positive, run_arguments, say


def add_parsers(commands) -> None:
    predict = add_command(commands, "predict", "KATO's predictions for a text, at any level",
                          "KATO's predictions for TEXT observed at one level of a trained run (node0: its tokens; "
                          "level k: the names of its level k-1 patterns, cut as training cuts a document), with "
                          "present and future decoded to text and every metric.", predict_command)
    run_arguments(predict)
    predict.add_argument("text", metavar="TEXT", help="the context")
    predict.add_argument("--level", type=count, default=0, metavar="K", help="the level to predict at")
    predict.add_argument("--top", type=positive, default=10, metavar="N", help="predictions shown")
    predict.add_argument("--json", action="store_true", help="the predictions as one JSON list on the last line")

    generate = add_command(commands, "generate", "generate text from a trained run",
                           "Generate text from a trained run, printed as it is made. predict mode: token after token "
                           "from the hierarchy's predictions (the next-token decoder); sample mode: patterns of one "
                           "level drawn by frequency and unravelled to text. Same seed, same text.", generate_command)
    run_arguments(generate)
    generate.add_argument("--prompt", metavar="TEXT", help="text to continue (predict mode; none: from the start)")
    generate.add_argument("--max-tokens", type=count, default=100, metavar="N", help="tokens to generate at most")
    generate.add_argument("--temperature", type=float, default=1.0, metavar="T",
                          help="> 0; below 1 sharpens the distribution, above 1 flattens it")
    generate.add_argument("--top-k", type=positive, metavar="K", help="draw among the K most likely tokens only")
    generate.add_argument("--seed", type=int, metavar="S", help="random seed (default: a fresh one each time)")
    generate.add_argument("--mode", choices=("predict", "sample"), default="predict", help="how text is made")
    generate.add_argument("--level", type=count, metavar="K", help="sample mode: the level whose patterns are drawn "
                          "(default: the top level)")
    generate.add_argument("--show-sources", action="store_true", help="after the text, each span with the training "
                          "documents it came from (pattern metadata recorded at training)")

    evaluate = add_command(commands, "eval", "evaluate a trained run on held-out text",
                           "Coverage per level and next-token accuracy (top-1, top-5, time per position) of the run's "
                           "decoder, the most frequent token and an infinity-gram over the run's own training text, "
                           "at the same positions of held-out documents.", eval_command)
    run_arguments(evaluate)
    evaluate.add_argument("--data", required=True, metavar="PATH", help="held-out documents (file or folder: .txt, "
                          ".jsonl, .parquet, optionally .gz)")
    evaluate.add_argument("--text-field", default="text", metavar="F", help="text column of jsonl/parquet rows")
    evaluate.add_argument("--positions", type=positive, default=400, metavar="N", help="positions to predict")
    evaluate.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the positions drawn")
    evaluate.add_argument("--levels", type=positive, metavar="N", help="levels the decoder uses (1: node0 alone; "
                          "default: all)")
    evaluate.add_argument("--json", action="store_true", help="one JSON object on the last line")


def _open(args: argparse.Namespace):
    from katoray.model.run import open_run

    return open_run(args.run_id, args.runs_dir, mongo_uri=args.mongo_uri)


# -- predict ---------------------------------------------------------------------------------------------
METRICS = ("frequency", "potential", "evidence", "confidence", "similarity", "snr", "fragmentation")


def predict_command(args: argparse.Namespace) -> int:
    with _open(args) as hierarchy:
        predictions = hierarchy.predict(args.text, level=args.level, top=args.top)
        state = hierarchy.observed(args.text, args.level)
    say(f"run {args.run_id} · node{args.level} · state of {len(state)} symbols · {len(predictions)} predictions")
    for rank, p in enumerate(predictions, 1):
        metrics = "  ".join(f"{key} {_number(p[key])}" for key in METRICS)
        say(f"{rank:>3}. {p['name'][:17]}…  {metrics}")
        say(f"     present {json.dumps(p['present_text'], ensure_ascii=False)} · "
            f"future {json.dumps(p['future_text'], ensure_ascii=False)}")
    if args.json:
        print(json.dumps(predictions, ensure_ascii=False))
    return 0


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# -- generate ----------------------------------------------------------------------------------------------
def generate_command(args: argparse.Namespace) -> int:
    spans = []
    prompt = args.prompt or ""
    with _open(args) as hierarchy:
        sys.stdout.write(prompt)
        for span in hierarchy.stream(prompt, args.max_tokens, args.temperature, args.top_k, args.seed,
                                     args.mode, args.level, sources=args.show_sources):
            sys.stdout.write(span.text)
            sys.stdout.flush()
            spans.append(span)
    sys.stdout.write("\n")
    if args.show_sources:
        say("sources:")
        for span in spans:
            say(f"  {json.dumps(span.text, ensure_ascii=False)} <- {', '.join(span.sources) or '(no recorded source)'}")
    return 0


# -- eval ------------------------------------------------------------------------------------------------------
def eval_command(args: argparse.Namespace) -> int:
    from katoray.evaluation.evaluate import CONTEXT_TOKENS, evaluate

    with _open(args) as hierarchy:
        result = evaluate(hierarchy, args.data, args.text_field, args.positions, args.seed, levels=args.levels)
    say(f"run {args.run_id} on {args.data}: {result['positions']} positions, {CONTEXT_TOKENS} tokens of context "
        f"each (seed {args.seed})")
    say(f"  {'model':<11} {'top-1':>7} {'top-5':>7}  ms/position (p50)")
    for model in ("katoray", "infinigram", "unigram"):
        row = result[model]
        top5 = f"{row['top5']:7.1%}" if "top5" in row else f"{'-':>7}"
        say(f"  {model:<11} {row['top1']:7.1%} {top5}  {row['ms'] if 'ms' in row else '-'}")
    say("  coverage: " + " · ".join(f"node{c['level']} {c['coverage']:.1%}" for c in result["levels"]))
    if args.json:
        print(json.dumps(result))
    return 0
