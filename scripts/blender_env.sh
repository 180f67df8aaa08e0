#!/usr/bin/env bash
# Create (or reuse) .venv-blender: a separate environment holding Blender as a Python module
# (bpy from PyPI) for the add-on tests. bpy pins numpy < 2, so it cannot share the main .venv.
# Idempotent: returns at once when the environment already imports the pinned bpy.
#   BPY_VERSION      bpy release to install (default 5.0.1, the newest for Python 3.11)
#   BLENDER_VENV     where to create it (default <repo>/.venv-blender)
#   BLENDER_PYTHON   interpreter to create it with (default python3; bpy 5.0.x needs 3.11)
set -euo pipefail
cd "$(dirname "$0")/.."
BPY_VERSION="${BPY_VERSION:-5.0.1}"
VENV="${BLENDER_VENV:-.venv-blender}"
PY="${BLENDER_PYTHON:-python3}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$BPY_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("bpy") == sys.argv[1] and int(version("numpy").split(".")[0]) < 2 else 1)
EOF
then
    echo "blender_env: $VENV already has bpy $BPY_VERSION"
    exit 0
fi

"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# PIP_FIND_LINKS (e.g. a folder holding an already downloaded wheel) is honoured by pip itself.
if ! "$VENV/bin/pip" install -q "bpy==$BPY_VERSION" "numpy<2"; then
    echo "blender_env: could not install bpy==$BPY_VERSION for $("$VENV/bin/python" -V 2>&1);" \
         "bpy 4.2-5.0 wheels exist for CPython 3.11 only (set BLENDER_PYTHON=python3.11)" >&2
    exit 1
fi
"$VENV/bin/python" -c "import bpy; print('blender_env: bpy', bpy.app.version_string)"
