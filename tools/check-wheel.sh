#!/usr/bin/env bash
# The package as a user installs it: build the wheel from this checkout, install it into a
# fresh virtual environment in a temporary folder outside the checkout, and run a small
# simulated night there with the installed `fieldphot` (demo, init, run and status), so
# that everything the workflow needs (Snakefile, rules, schemas, instrument profiles,
# report captions, default config) is known to travel inside the wheel.
#   tools/check-wheel.sh        (CI runs it; about 3 minutes)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel --no-deps -q "$repo" -w "$work" 2>/dev/null \
  || { python3 -m venv "$work/build" && "$work/build/bin/pip" wheel --no-deps -q "$repo" -w "$work"; }
python3 -m venv "$work/v"
"$work/v/bin/pip" install -q "$work"/fieldphot-*.whl
cd "$work"  # nothing of the checkout is reachable from here
"$work/v/bin/fieldphot" demo d --size 256 --frames 4 --cores 2 > demo.log 2>&1 \
  || { tail -40 demo.log; echo "check-wheel: fieldphot demo failed"; exit 1; }
grep -q "frames calibrated; zeropoint" demo.log || { tail -40 demo.log; echo "check-wheel: no demo summary"; exit 1; }
"$work/v/bin/fieldphot" init d/night/raw --out i --catalog d/night/refcat.parquet > init.log 2>&1 \
  || { cat init.log; echo "check-wheel: fieldphot init failed"; exit 1; }
"$work/v/bin/fieldphot" run i/config.yaml --workdir i --cores 2 > run.log 2>&1 \
  || { tail -40 run.log; echo "check-wheel: fieldphot run failed"; exit 1; }
"$work/v/bin/fieldphot" status i/config.yaml --workdir i \
  || { echo "check-wheel: fieldphot status found failed frames"; exit 1; }
echo "check-wheel: the installed wheel ran demo, init, run and status outside the checkout"
