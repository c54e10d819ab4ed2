"""QA dedup: the dedup job on questions (`qa_verified` -> `qa_deduped`), before decontamination.

Near-identical questions from different pages or personas would over-weight one fact in RL
training; the same MinHash-LSH job that dedups documents removes them (config `qa_dedup`).
"""

from __future__ import annotations

from webscale_rl.config import Config
from webscale_rl.jobs import dedup
from webscale_rl.jobs.base import StageResult, stage_main_for
from webscale_rl.stages import declared

DECL = declared("qa_dedup")  # name, tables, key: webscale_rl/stages.py
NAME, INPUT, OUTPUT, KEY = DECL.name, DECL.input, DECL.output, DECL.key


def run(spark, cfg: Config) -> StageResult:
    return dedup.run(spark, cfg, target=dedup.QUESTIONS)


main = stage_main_for(NAME)

if __name__ == "__main__":
    raise SystemExit(main())
