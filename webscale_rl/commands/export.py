"""`webscale-rl export`: write the RL-trainer exports and dataset card of any `qa` version."""

from __future__ import annotations

NAME = "export"
HELP = "export a qa table version for RL trainers (HF datasets, verl, TRL) with its card"
DESCRIPTION = (
    "Write one version of the published `qa` table (default: the latest) as HF-datasets Parquet "
    "and JSON lines, verl Parquet and TRL GRPO Parquet (train/validation), with a README.md "
    "dataset card. Default folder: <lakehouse>/exports/qa/v<version>."
)
EXAMPLE = "webscale-rl export --version 3 --formats verl,trl --out /tmp/qa-v3"


def add_arguments(parser) -> None:
    parser.add_argument("--version", type=int, help="qa table version (default: latest)")
    parser.add_argument(
        "--formats", help="comma-separated subset of hf,verl,trl (default: config export.formats)"
    )
    parser.add_argument("--out", metavar="DIR", help="output folder or URI")


def run(args, cfg) -> int:
    from webscale_rl.jobs.publish import export_version
    from webscale_rl.session import get_spark

    formats = [f.strip() for f in args.formats.split(",") if f.strip()] if args.formats else None
    spark = get_spark(cfg)
    out_dir, facts = export_version(spark, cfg, args.version, formats, args.out)
    print(f"exported qa version {facts.version} ({facts.rows} rows) to {out_dir}")
    for folder, paths in facts.export_files.items():
        print(f"  {folder:<9}{len(paths):>3} files")
    print(f"  card     {out_dir}/README.md")
    return 0
