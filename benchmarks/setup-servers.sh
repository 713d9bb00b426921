#!/usr/bin/env bash
# Creates the serving benchmark's competitor servers, each in its own virtualenv
# under $CICLO_CACHE/bench (default ~/.cache/ciclo/bench): MLServer and KServe
# pin dependencies that conflict with each other and with ciclo, so neither ever
# goes into the repo's .venv. benchmarks/venv.sh makes each; re-running is a no-op once
# a venv matches its pins.
#
#   bash benchmarks/setup-servers.sh
#
# scikit-learn, joblib and onnxruntime are pinned to the repo's .venv versions
# (passed in by benchmarks/serving.py, or read here) so every server unpickles and
# runs the very same model file with the same library.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
venv_py=${VENV_PY:-$here/../.venv/bin/python}

MLSERVER=1.7.1
KSERVE=0.21.0

version_of() { "$venv_py" -c "import importlib.metadata as m; print(m.version('$1'))"; }
SKLEARN=${SKLEARN:-$(version_of scikit-learn)}
JOBLIB=${JOBLIB:-$(version_of joblib)}
ONNXRUNTIME=${ONNXRUNTIME:-$(version_of onnxruntime)}

make_venv() { bash "$here/venv.sh" "$@" >/dev/null; }

# uvloop 0.22 made asyncio.get_event_loop() raise without a running loop, which
# kills MLServer 1.7.1's inference workers at start ("no current event loop").
make_venv mlserver "mlserver==$MLSERVER" "mlserver-sklearn==$MLSERVER" "uvloop==0.21.0" \
  "scikit-learn==$SKLEARN" "joblib==$JOBLIB" "onnxruntime==$ONNXRUNTIME" &
ml=$!
make_venv kserve "kserve==$KSERVE" \
  "scikit-learn==$SKLEARN" "joblib==$JOBLIB" "onnxruntime==$ONNXRUNTIME" &
ks=$!
status=0
wait $ml || status=1
wait $ks || status=1
exit $status
