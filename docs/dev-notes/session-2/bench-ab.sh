#!/bin/bash
# before (f1f2328, /work/before via PYTHONPATH=/tmp/beforepath) vs after (/work/main HEAD), interleaved
out=/tmp/bench-ab; mkdir -p $out
PY=/work/main/.venv/bin/python
for i in 1 2 3; do
  for b in startup overhead concurrency; do
    (cd /work/before && PYTHONPATH=/tmp/beforepath $PY -m benchmarks.$b > $out/before.$b.$i.txt 2>&1)
    (cd /work/main && $PY -m benchmarks.$b > $out/after.$b.$i.txt 2>&1)
  done
done
(cd /work/before && PYTHONPATH=/tmp/beforepath $PY -m benchmarks.scale > $out/before.scale.1.txt 2>&1)
(cd /work/main && $PY -m benchmarks.scale > $out/after.scale.1.txt 2>&1)
echo done > $out/DONE
