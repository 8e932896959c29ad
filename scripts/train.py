"""``katoray train`` as a Ray job: joins the cluster the job runs in and writes only absolute paths.

    ray job submit --address http://<head>:8265 --working-dir . -- \
        python scripts/train.py --runs-dir /shared/runs --data /shared/books --tokenizer gpt2 --workers 8

A job's entry point runs in a temporary copy of the working dir (deleted with the job), so
``--runs-dir`` is required and must be absolute (on a multi-node cluster: storage every node
sees, since node actors open the default SQLite store there; or use ``--store mongodb://...``).
``--data`` and ``--tokenizer`` may be relative: they are read from that copy, which holds what the
working dir held. The job joins its cluster (``--address auto``, the default here: ``RAY_ADDRESS``
is set inside a job). Every option of ``katoray train`` applies; ``--help`` lists them.
Resume a run it left unfinished with ``katoray resume RUN_ID --runs-dir /shared/runs --address auto``,
or submit ``python -m katoray resume ...`` as another job.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # katoray from the working dir if not installed

from katoray.cli import console_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(console_main(job=True))
