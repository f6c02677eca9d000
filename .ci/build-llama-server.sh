#!/usr/bin/env bash
# Build llama.cpp's own HTTP server (llama-server) from the llama.cpp source that ships in
# the llama-cpp-python sdist, once, and cache the binary by version:
#   ${XDG_CACHE_HOME:-~/.cache}/hbench/llama-server/<version>/llama-server
# A no-op when that file exists. Prints the binary's path on stdout (everything else goes
# to stderr) and how long the build took.
#
#   bash .ci/build-llama-server.sh [PYTHON] [VERSION]
#
# PYTHON (default .venv/bin/python) must have pip. VERSION defaults to the llama-cpp-python
# installed in PYTHON's environment, else the newest sdist pip resolves for the [embedded]
# extra's requirement (what `pip install '.[embedded]'` run at the same time picks), so CI
# can build it in parallel with the venv install. Only the llama-server target is built:
# Release, no CURL, static (no .so files to keep beside it), -j${HBENCH_BUILD_JOBS:-2}.
set -euo pipefail
py=${1:-.venv/bin/python}
ver=${2:-}
requirement='llama-cpp-python>=0.3.16'  # keep in step with pyproject.toml's [embedded] extra
start=$(date +%s)

if [ -z "$ver" ]; then
    ver=$("$py" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || true)
fi
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/hbench/llama-server
if [ -n "$ver" ] && [ -x "$cache_root/$ver/llama-server" ]; then
    echo "llama-server $ver: cached" >&2
    echo "$cache_root/$ver/llama-server"
    exit 0
fi

work=$(mktemp -d /tmp/hbench-llama-server.XXXXXX)
trap 'rm -rf "$work"' EXIT
spec=$requirement
[ -n "$ver" ] && spec="llama-cpp-python==$ver"
echo "llama-server: downloading the $spec sdist" >&2
"$py" -m pip download -q --no-binary :all: --no-deps "$spec" -d "$work" >&2
sdist=$(ls "$work"/llama_cpp_python-*.tar.gz | head -1)
got=$(basename "$sdist" .tar.gz); got=${got#llama_cpp_python-}
if [ -z "$ver" ]; then
    ver=$got
    if [ -x "$cache_root/$ver/llama-server" ]; then
        echo "llama-server $ver: cached" >&2
        echo "$cache_root/$ver/llama-server"
        exit 0
    fi
fi
cache=$cache_root/$ver
mkdir -p "$cache"

# one build per version at a time (two CI runs, or a test run beside CI)
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
    echo "llama-server $ver: another build holds $cache/.build.lock; waiting for it" >&2
    flock 9
fi
if [ -x "$cache/llama-server" ]; then echo "$cache/llama-server"; exit 0; fi

tar -xzf "$sdist" -C "$work"
src=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)
[ -f "$src/CMakeLists.txt" ] || { echo "no vendor/llama.cpp in $sdist" >&2; exit 1; }

cmake_bin=$(command -v cmake || true)
if [ -z "$cmake_bin" ]; then  # no system cmake: PyPI's, in a throwaway folder
    "$py" -m pip install -q --target "$work/tools" cmake ninja >&2
    export PYTHONPATH="$work/tools"
    cmake_bin="$work/tools/bin/cmake"
    export PATH="$work/tools/bin:$PATH"
fi
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
echo "llama-server $ver: building with ${HBENCH_BUILD_JOBS:-2} jobs (about 5 min on 2 cores)" >&2
"$cmake_bin" -S "$src" -B "$work/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DGGML_NATIVE=ON \
    -DBUILD_SHARED_LIBS=OFF >&2
"$cmake_bin" --build "$work/build" --target llama-server -j "${HBENCH_BUILD_JOBS:-2}" >&2
"$work/build/bin/llama-server" --version >&2 2>&1 || true
cp "$work/build/bin/llama-server" "$cache/llama-server.tmp"
mv "$cache/llama-server.tmp" "$cache/llama-server"
echo "llama-server $ver: built in $(( $(date +%s) - start )) s" >&2
echo "$cache/llama-server"
