#!/usr/bin/env bash
# Records the test photos in tests/corpus/photos/: a JPEG made by examples/make_jpeg with
# phone-style EXIF written by exiftool (Debian: libimage-exiftool-perl) — make, model, time and
# a GPS position (latitude, longitude, altitude) — for the --strip-gps tests.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/corpus/photos
mkdir -p "$out"
cargo build --quiet --example make_jpeg
target/debug/examples/make_jpeg 320 240 "$out/phone-gps.jpg"
exiftool -q -overwrite_original -Make=Google "-Model=Pixel 8" "-DateTimeOriginal=2026:07:01 12:34:56" \
  -GPSLatitude=52.5163 -GPSLatitudeRef=N -GPSLongitude=13.3777 -GPSLongitudeRef=E \
  -GPSAltitude=35 -GPSAltitudeRef=0 "$out/phone-gps.jpg"
exiftool -s -GPS:all "$out/phone-gps.jpg"
