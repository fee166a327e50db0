#!/usr/bin/env bash
# Bounded fuzz smoke, run by .ci/run: build every [[bin]] target of
# fuzz/Cargo.toml, then for each target
#   1. replay its committed corpus fuzz/corpus/<target> (-runs=0: every input
#      once; a past finding that crashes again fails here), and
#   2. fuzz for SECONDS (default 30) from a scratch copy of that corpus plus
#      the vectors in tests/vectors (the repository is not written to).
# Exits non-zero if a target fails to build, a corpus input crashes or the
# short run finds a crash (the input is left in $ARTIFACTS, default fuzz/artifacts).
# Needs: a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail

SECONDS_PER_TARGET="${1:-30}"
FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$FUZZ_DIR")"
VECTORS="${MDM_VECTORS:-$REPO/tests/vectors}"
ARTIFACTS="${ARTIFACTS:-$FUZZ_DIR/artifacts}"
cd "$FUZZ_DIR"

# Every target named in Cargo.toml, in order.
mapfile -t TARGETS < <(awk '/^\[\[bin\]\]/{bin=1; next} bin && /^name *=/{gsub(/.*= *"|".*/, ""); print; bin=0}' Cargo.toml)
if [ "${#TARGETS[@]}" -eq 0 ]; then
  echo "smoke.sh: no [[bin]] targets in $FUZZ_DIR/Cargo.toml" >&2
  exit 1
fi

SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

# Scratch corpus: the committed one plus every vector file (all kinds: a
# target that does not parse one still mutates it into something it might).
seed() {
  local dir="$SCRATCH/$1"
  mkdir -p "$dir"
  if [ -d "corpus/$1" ]; then
    cp -f corpus/"$1"/* "$dir/" 2>/dev/null || true
  fi
  if [ -d "$VECTORS" ]; then
    # `-size -1024k`, not `-size -1M`: find rounds sizes up to whole units,
    # so `-1M` matches only empty files and seeded nothing.
    find "$VECTORS" -type f ! -name '*.tsv' -size -1024k -print0 |
      while IFS= read -r -d '' f; do
        cp -f "$f" "$dir/seed-$(basename "$f")"
      done
  else
    echo "smoke.sh: warning: no vectors at $VECTORS" >&2
  fi
}

cargo +nightly fuzz build -O
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "$ARTIFACTS/$t"
  if [ -d "corpus/$t" ]; then
    echo "== replay corpus/$t ($(find "corpus/$t" -type f | wc -l) inputs)"
    if ! cargo +nightly fuzz run -O "$t" "corpus/$t" -- -runs=0 \
        -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$ARTIFACTS/$t/" 2>&1 | tail -n 3; then
      echo "smoke.sh: $t: a committed corpus input FAILED (see $ARTIFACTS/$t)" >&2
      status=1
    fi
  fi
  seed "$t"
  echo "== fuzz $t for ${SECONDS_PER_TARGET}s"
  if ! cargo +nightly fuzz run -O "$t" "$SCRATCH/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$t/" 2>&1 | tail -n 25; then
    echo "smoke.sh: $t FAILED (see $ARTIFACTS/$t)" >&2
    status=1
  fi
done
exit "$status"
