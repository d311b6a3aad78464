"""One way to open a Delta-enabled Spark session, local or on a cluster.

The Delta jars are resolved once, in the setup step (``python -m jobs.platform.spark``):
Spark's package resolver (Ivy) fetches them from Maven Central, then they are copied
into the jars folder (``spark.jars_dir``) with a manifest naming the delta-spark version.
Every later session passes that folder's jars as ``spark.jars`` and resolves nothing:
no resolution output, no network. A folder that is missing, incomplete or for another
delta-spark version is ignored, and the session resolves the packages as at setup.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from schemas.settings import Settings, get_settings

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
# The driver's log4j2 configuration: Spark's defaults at WARN without the warnings that say
# nothing to a user (loopback host name, native-hadoop, truncated plan strings, task sizes).
LOG4J2_PROPERTIES = Path(__file__).with_name("log4j2.properties")

_DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    # Idempotent history rewrites use replaceWhere; keep its safety check on.
    "spark.databricks.delta.replaceWhere.constraintCheck.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    # Reconstructing a snapshot (every overwrite, replaceWhere and read of a new version)
    # shuffles the log's actions into this many partitions: Delta's 50 cost seconds, 4 still
    # cost about 0.35 s more than 1 per overwrite on this project's tables (thousands of
    # files at most). A table with millions of files wants more: ``spark.extra_conf``.
    "spark.databricks.delta.snapshotPartitions": "1",
}


def get_spark(settings: Settings | None = None) -> SparkSession:
    """Return the active session, or build one from ``settings`` (Delta configured)."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    from delta import configure_spark_with_delta_pip

    settings = settings or get_settings()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(settings.spark.master)
        .appName(settings.spark.app_name)
        .config("spark.sql.shuffle.partitions", str(settings.spark.shuffle_partitions))
        .config("spark.driver.memory", settings.spark.driver_memory)
        .config("spark.ui.enabled", str(settings.spark.ui_enabled).lower())
        .config("spark.sql.warehouse.dir", f"{settings.data_dir}/spark-warehouse")
    )
    for key, value in {**_DELTA_CONF, **_log_conf(settings), **settings.spark.extra_conf}.items():
        builder = builder.config(key, value)
    jars = installed_jars(settings)
    if jars:
        builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    else:
        builder = configure_spark_with_delta_pip(builder)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


class SparkDriverLost(RuntimeError):
    """This process's Spark driver (its JVM) is gone: no session can start in it again."""


def live_spark(settings: Settings | None = None) -> SparkSession:
    """``get_spark``, or ``SparkDriverLost`` when this process's driver died (a JVM that
    ran out of memory or was killed leaves PySpark's gateway behind, and every later call,
    a new session included, fails on it: a retry in the same process cannot help)."""
    settings = settings or get_settings()
    try:
        spark = get_spark(settings)
        if not spark.sparkContext._jsc.sc().isStopped():  # one round trip to the JVM
            return spark
        why = "its SparkContext was stopped"
    except Exception as exc:  # Py4J: the gateway no longer answers
        why = f"its JVM does not answer ({type(exc).__name__}: {str(exc)[:160]})"
    raise SparkDriverLost(
        f"the Spark driver of this process is gone ({why}); most often it ran out of memory "
        f"(spark.driver_memory is {settings.spark.driver_memory}: raise "
        "LAKESCORE_SPARK__DRIVER_MEMORY, or spark.driver_memory in the config). A retry in "
        "this process cannot start another driver: the step's first error is in the run log; "
        "run the night again in a new process"
    )


def _log_conf(settings: Settings) -> dict[str, str]:
    """The driver JVM's log4j2 configuration file (``LOG4J2_PROPERTIES``), as the default Java
    options an operator's ``spark.driver.extraJavaOptions`` add to; none when the operator's
    own options name a log4j2 configuration, or the file is not installed."""
    own = " ".join(
        settings.spark.extra_conf.get(k, "")
        for k in ("spark.driver.defaultJavaOptions", "spark.driver.extraJavaOptions")
    )
    if "log4j2.configurationFile" in own or not LOG4J2_PROPERTIES.is_file():
        return {}
    return {
        "spark.driver.defaultJavaOptions": f"-Dlog4j2.configurationFile={LOG4J2_PROPERTIES.as_uri()}"
    }


def jars_dir(settings: Settings) -> Path:
    return Path(settings.spark.jars_dir or Path(sys.prefix) / "share" / "lakescore" / "jars")


def _delta_version() -> str:
    return importlib.metadata.version("delta-spark")


def installed_jars(settings: Settings) -> list[Path]:
    """The jars folder's jars when its manifest matches this delta-spark, else ``[]``."""
    folder = jars_dir(settings)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return []
    jars = [folder / name for name in manifest.get("jars", [])]
    if manifest.get("delta_spark") != _delta_version() or not jars:
        log.info(
            "jars in %s are for delta-spark %s: resolving", folder, manifest.get("delta_spark")
        )
        return []
    if not all(j.is_file() for j in jars):
        log.info("jars in %s are incomplete: resolving", folder)
        return []
    return jars


def install_jars(spark: SparkSession, settings: Settings) -> list[Path]:
    """Copy the session's resolved jars into the jars folder and write its manifest last
    (a copy cut short leaves no manifest, so no session uses a partial folder)."""
    folder = jars_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    sources = [
        Path(urlparse(uri).path)
        for uri in spark.sparkContext.getConf().get("spark.jars", "").split(",")
        if uri
    ]
    if not sources:
        raise RuntimeError("the Spark session resolved no jars: is delta-spark installed?")
    for source in sources:
        shutil.copy2(source, folder / source.name)
    manifest = {"delta_spark": _delta_version(), "jars": [s.name for s in sources]}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return [folder / s.name for s in sources]


@contextmanager
def session_conf(spark: SparkSession, values: dict[str, str]) -> Iterator[None]:
    """Set SQL confs for the block, then restore them (Hadoop keys such as
    ``parquet.block.size`` reach file writers this way; Delta ignores them as write options)."""
    previous: dict[str, str | None] = {key: spark.conf.get(key, None) for key in values}
    for key, value in values.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def main() -> None:
    """The setup step: resolve the Delta jars once, copy them into the jars folder, and
    check them by writing and reading a Delta table."""
    import tempfile

    settings = get_settings()
    jars = installed_jars(settings)
    spark = get_spark(settings)
    if not jars:
        jars = install_jars(spark, settings)
    with tempfile.TemporaryDirectory() as tmp:
        spark.range(3).write.format("delta").save(f"{tmp}/warmup")
        n = spark.read.format("delta").load(f"{tmp}/warmup").count()
    print(
        f"Delta Lake ready (Spark {spark.version}, {len(jars)} jars in {jars_dir(settings)}, "
        f"wrote and read {n} rows)"
    )
    spark.stop()


if __name__ == "__main__":
    main()
