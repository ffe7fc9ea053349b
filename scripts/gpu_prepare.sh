#!/usr/bin/env bash
# Pack what `make gpu-check` needs on a GPU machine that cannot reach the network (docs/gpu.md):
#
#   .gpu/whl/    wheels of this project's dependencies that the machine's image lacks, at the versions
#                this checkout's .venv runs, for the image's Python (3.12)
#   .gpu/data1/  the first 32 MiB of FER2013's zip, and its sha256
#   .gpu/data2/  the rest
#
# A call to the GPU machine carries at most 64 MiB with the working tree (about 23 MiB tracked), and
# the zip is 61 MiB: the first call carries .gpu/whl and .gpu/data1, the second .gpu/data2 (ignored
# paths stay on the warm machine between calls); gpu_check.py joins the parts and checks the sha256.
#
#   scripts/gpu_prepare.sh [FER2013.zip]     (default: ../shared/data/fer2013.zip)
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${1:-../shared/data/fer2013.zip}
PY=${PY:-.venv/bin/python}
PYTHON_VERSION=${GPU_PYTHON_VERSION:-3.12}
# The API's stack and what it pulls in, absent from the GPU image (KINDS.md of the device tool lists
# its packages). typing-extensions and anyio are there, maybe older than pydantic and starlette need.
PACKAGES=(fastapi starlette python-multipart pydantic pydantic-core pydantic-settings python-dotenv
  annotated-types annotated-doc typing-inspection typing-extensions uvicorn anyio)

[[ -f "$DATA" ]] || { echo "error: no FER2013 zip at $DATA (give its path)" >&2; exit 2; }
[[ -x "$PY" ]] || { echo "error: no $PY: run make install first (its versions are the ones packed)" >&2; exit 2; }

rm -rf .gpu && mkdir -p .gpu/whl .gpu/data1 .gpu/data2
pins=()
for package in "${PACKAGES[@]}"; do
  version=$("$PY" -m pip show "$package" 2>/dev/null | sed -n 's/^Version: //p')
  [[ -n "$version" ]] || { echo "error: $package is not installed in $PY's environment" >&2; exit 2; }
  pins+=("$package==$version")
done
platforms=()
for n in 17 27 28 31 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" \
  --implementation cp "${platforms[@]}" --platform manylinux2014_x86_64 -d .gpu/whl "${pins[@]}"

split -b 32m -d "$DATA" .gpu/data1/fer2013.zip.part-
mv .gpu/data1/fer2013.zip.part-01 .gpu/data2/
(cd "$(dirname "$DATA")" && sha256sum "$(basename "$DATA")") | awk '{print $1}' > .gpu/data1/fer2013.zip.sha256

du -sh .gpu/whl .gpu/data1 .gpu/data2
cat <<'TEXT'
Packed. On the GPU machine (the device tool's run), two calls back to back:
  1. carry [".gpu/whl", ".gpu/data1"]:  make gpu-check     (tests and benchmarks; keeps the first part)
  2. carry [".gpu/data2"]:              make gpu-check     (joins the zip; trains, exports, evaluates)
and again, with no carry, until it prints "gpu-check: all stages finished". docs/gpu.md has the rest.
TEXT
