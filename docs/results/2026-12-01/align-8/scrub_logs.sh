#!/usr/bin/env bash
# Keep the committed logs readable and free of this machine's paths: tqdm's carriage-return progress lines are
# dropped (their last state is in the summary lines), absolute paths become repository-relative.
# Usage: scrub_logs.sh FILE...   (rewrites each file in place)
set -euo pipefail
for f in "$@"; do
  tr '\r' '\n' < "$f" | grep -Ev '[0-9]+%\|.*\|' | sed -e "s|$(cd "$(dirname "$0")/../../../.." && pwd)/||g" > "$f.tmp"
  mv "$f.tmp" "$f"
done
