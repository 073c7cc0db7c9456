#!/usr/bin/env bash
# Install a local astrometry.net and its Tycho-2 index files (Debian/Ubuntu packages), for
# the blind step of fieldphot's plate-solving ladder and its tests.
#
# The Tycho-2 series (4107-4119, about 285 MB) solves fields from about 0.7 deg to 30 deg
# wide. Narrower fields need denser indexes, not packaged by Debian: the 4200 series
# (2MASS) or 5200 series (Gaia DR2, "LITE") from http://data.astrometry.net/, index scales
# 0-7 for fields of 2'-30' (see https://astrometry.net/doc/readme.html, "Getting index
# files"). Put them in a folder and set `solve.astrometry_net.index_dir` to it.
set -euo pipefail
if command -v solve-field >/dev/null 2>&1 \
  && ls /usr/share/astrometry/index-tycho2-07.littleendian.fits >/dev/null 2>&1; then
  echo "astrometry.net and the Tycho-2 index files are installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  astrometry.net \
  astrometry-data-tycho2-07-littleendian astrometry-data-tycho2-08-littleendian \
  astrometry-data-tycho2-09-littleendian astrometry-data-tycho2-10-19-littleendian
solve-field --help >/dev/null
echo "astrometry.net installed; index files in /usr/share/astrometry"
