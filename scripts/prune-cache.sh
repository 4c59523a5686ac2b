#!/usr/bin/env bash
# Keeps a cargo target directory (the test and fuzz caches) from growing without bound: removes
# incremental-compilation caches, and the test and binary executables in deps/ that no build has
# written for a day (every change to a crate leaves the old ones behind; the one in use is
# rebuilt in seconds if it was needed after all). Libraries and build-script outputs stay, so
# the next build stays warm.
#
#   scripts/prune-cache.sh <target dir>
set -euo pipefail
dir="${1:?target dir}"
[ -d "$dir" ] || exit 0
for profile in "$dir"/debug "$dir"/release "$dir"/*/release "$dir"/*/debug; do
  [ -d "$profile" ] || continue
  rm -rf "$profile/incremental"
  if [ -d "$profile/deps" ]; then
    find "$profile/deps" -maxdepth 1 -type f -perm -u+x ! -name '*.so' -mtime +0 -delete 2>/dev/null || true
  fi
done
echo "prune-cache: $(du -sh "$dir" 2>/dev/null | cut -f1) in $dir" >&2
