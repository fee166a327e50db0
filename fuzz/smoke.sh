#!/usr/bin/env bash
# Bounded fuzz smoke: build and run every [[bin]] target of fuzz/Cargo.toml
# for SECONDS each (default 30), seeded from tests/vectors.
# Exits non-zero if a target fails to build or finds a crash.
# Needs: a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail

SECONDS_PER_TARGET="${1:-30}"
FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$FUZZ_DIR")"
VECTORS="${MDM_VECTORS:-$REPO/tests/vectors}"
cd "$FUZZ_DIR"

# Every target named in Cargo.toml, in order.
mapfile -t TARGETS < <(awk '/^\[\[bin\]\]/{bin=1; next} bin && /^name *=/{gsub(/.*= *"|".*/, ""); print; bin=0}' Cargo.toml)
if [ "${#TARGETS[@]}" -eq 0 ]; then
  echo "smoke.sh: no [[bin]] targets in $FUZZ_DIR/Cargo.toml" >&2
  exit 1
fi

# Seeds: every vector file (all kinds: a target that does not parse one
# still mutates it into something it might).
seed() {
  local dir="$FUZZ_DIR/corpus/$1"
  mkdir -p "$dir"
  if [ -d "$VECTORS" ]; then
    # `-size -1024k`, not `-size -1M`: find rounds sizes up to whole units,
    # so `-1M` matches only empty files and seeded nothing.
    find "$VECTORS" -type f ! -name '*.tsv' -size -1024k -print0 |
      while IFS= read -r -d '' f; do
        cp -f "$f" "$dir/seed-$(basename "$f")"
      done
  else
    echo "smoke.sh: warning: no vectors at $VECTORS; starting from an empty corpus" >&2
  fi
}

cargo +nightly fuzz build -O
status=0
for t in "${TARGETS[@]}"; do
  seed "$t"
  echo "== fuzz $t for ${SECONDS_PER_TARGET}s"
  if ! cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 2>&1 | tail -n 25; then
    echo "smoke.sh: $t FAILED (see fuzz/artifacts/$t)" >&2
    status=1
  fi
done
exit "$status"
