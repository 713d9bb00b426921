#!/usr/bin/env bash
# A virtualenv of its own under $CICLO_CACHE/bench (default ~/.cache/ciclo/bench) for a
# tool whose pins conflict with the project's .venv (MLServer, KServe, NannyML). Made
# once and reused while its pins match; remade when they change. Prints the venv's
# python on stdout (progress goes to stderr).
#
#   bash benchmarks/venv.sh NAME PIN...
#
# A lock per venv: two test sessions (or benchmarks) that need it at once build it once.
set -euo pipefail

name=$1; shift
cache=${CICLO_CACHE:-$HOME/.cache/ciclo}/bench
python=${PYTHON:-python3.11}
dir=$cache/$name
want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')

mkdir -p "$cache"
exec 9>"$dir.lock"
flock 9
if [ "$(cat "$dir/.pins" 2>/dev/null)" = "$want" ]; then
  echo "[bench] $name is up to date ($dir)" >&2
else
  echo "[bench] installing $name into $dir: $want" >&2
  rm -rf "$dir"
  "$python" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade pip >&2
  "$dir/bin/python" -m pip install -q "$@" >&2
  echo "$want" > "$dir/.pins"
fi
echo "$dir/bin/python"
