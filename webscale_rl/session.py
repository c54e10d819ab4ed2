"""The one place a SparkSession comes from.

On a cluster (Databricks, EMR, spark-submit) the session already exists or is configured by the
launcher: reuse it and never override cluster settings. Locally build `local[*]` with Delta
configured and its jars resolved from Maven Central on first use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from webscale_rl.config import Config
from webscale_rl.errors import WebscaleError

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def on_cluster() -> bool:
    """True when a launcher (spark-submit, Databricks, a notebook) owns the JVM and its settings."""
    return bool(
        os.environ.get("DATABRICKS_RUNTIME_VERSION") or os.environ.get("PYSPARK_GATEWAY_PORT")
    )


def check_java() -> None:
    java = shutil.which(
        "java", path=os.path.join(os.environ.get("JAVA_HOME", ""), "bin")
    ) or shutil.which("java")
    if not java:
        raise WebscaleError(
            "Java was not found. Spark needs a JDK 17 or 21: install one "
            "(Debian: `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME."
        )
    try:
        subprocess.run([java, "-version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        raise WebscaleError(
            f"Java at {java} does not run ({err}); set JAVA_HOME to a JDK 17 or 21."
        ) from None


def get_spark(cfg: Config | None = None):
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if on_cluster():
        return SparkSession.builder.getOrCreate()
    return _local_session(cfg or Config())


def _local_session(cfg: Config):
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    check_java()
    # Python workers must run the interpreter that has this package and its dependencies.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(cfg.spark.master)
        .appName(cfg.spark.app_name)
        .config("spark.sql.extensions", DELTA_EXTENSION)
        .config("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
        .config("spark.sql.shuffle.partitions", str(cfg.spark.shuffle_partitions))
        .config("spark.driver.memory", cfg.spark.driver_memory)
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.databricks.delta.schema.autoMerge.enabled", "false")
        # The progress bar helps a person at a terminal and clutters logs and CI output.
        .config("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
        # Small local tables: Delta's default of 50 partitions per log replay is pure overhead.
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # VACUUM lists a table's files in this many tasks (default 10,000): 10+ s per table here.
        .config(
            "spark.sql.sources.parallelPartitionDiscovery.parallelism",
            str(cfg.spark.shuffle_partitions),
        )
        .config("spark.ui.enabled", "false")
    )
    for key, value in cfg.spark.conf.items():
        builder = builder.config(key, value)
    builder = configure_spark_with_delta_pip(builder)
    try:
        spark = builder.getOrCreate()
    except Exception as err:  # py4j/JVM start-up errors are long; say what to do instead
        raise WebscaleError(
            "Could not start local Spark with Delta Lake. The Delta jars are fetched from Maven "
            "Central on first use (into ~/.ivy2): check that it is reachable, or pass them with "
            f"`--set spark.conf.spark.jars=/path/delta-spark.jar,...`. Cause: {str(err)[:500]}"
        ) from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark
