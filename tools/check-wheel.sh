#!/usr/bin/env bash
# The package as a user installs it: build the wheel from this checkout, install it into a
# fresh virtual environment in a temporary folder outside the checkout, and run a small
# simulated night there with the installed `fieldphot` (demo, its report, init, run and status), so
# that everything the workflow needs (Snakefile, rules, schemas, instrument profiles,
# report captions, default config) is known to travel inside the wheel.
#   tools/check-wheel.sh        (CI runs it; about 3 minutes)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel --no-deps -q "$repo" -w "$work" > "$work/pip.log" 2>&1 \
  || { python3 -m venv "$work/build" && "$work/build/bin/pip" wheel --no-deps -q "$repo" -w "$work" \
    > "$work/pip.log" 2>&1; } || { tail -20 "$work/pip.log"; echo "check-wheel: no wheel"; exit 1; }
python3 -m venv "$work/v"
"$work/v/bin/pip" install -q "$work"/fieldphot-*.whl > "$work/pip.log" 2>&1 \
  || { tail -20 "$work/pip.log"; echo "check-wheel: the wheel did not install"; exit 1; }
cd "$work"  # nothing of the checkout is reachable from here
"$work/v/bin/fieldphot" demo d --size 384 --frames 4 --cores 2 > demo.log 2>&1 \
  || { tail -40 demo.log; echo "check-wheel: fieldphot demo failed"; exit 1; }
grep -q "frames calibrated; zeropoint" demo.log || { tail -40 demo.log; echo "check-wheel: no demo summary"; exit 1; }
# quiet by default: a progress line per tenth and the summary, not Snakemake's job chatter
[ "$(wc -l < demo.log)" -lt 60 ] || { head -60 demo.log; echo "check-wheel: the demo is not quiet"; exit 1; }
# the report from the plain install (snakemake --report needs pygments: issue 26)
"$work/v/bin/fieldphot" run d/night/config.yaml --workdir d --report report.html > report.log 2>&1 \
  && [ -s d/report.html ] || { tail -20 report.log; echo "check-wheel: no report"; exit 1; }
"$work/v/bin/fieldphot" init d/night/raw --out i --catalog d/night/refcat.parquet > init.log 2>&1 \
  || { cat init.log; echo "check-wheel: fieldphot init failed"; exit 1; }
# The README's "your own night" steps as written: from the night's folder init wrote.
(cd i && "$work/v/bin/fieldphot" run config.yaml --cores 2) > run.log 2>&1 \
  || { tail -40 run.log; echo "check-wheel: fieldphot run failed"; exit 1; }
# status exits 1 when it lists flagged frames (a small simulated field may have some); 2 and
# above, or a traceback, is a fault.
rc=0
(cd i && "$work/v/bin/fieldphot" status config.yaml) > status.log 2>&1 || rc=$?
if [ "$rc" -gt 1 ] || grep -q Traceback status.log; then
  cat status.log; echo "check-wheel: fieldphot status failed"; exit 1
fi
(cd i && "$work/v/bin/fieldphot" report config.yaml) > freport.log 2>&1 && [ -s i/report.html ] \
  || { tail -20 freport.log; echo "check-wheel: fieldphot report failed"; exit 1; }
echo "check-wheel: the installed wheel ran demo, its report, init, run, status and report outside the checkout"
