#!/usr/bin/env bash
# A long fuzz campaign, one target after another on one core (nice'd):
#   bash fuzz/campaign.sh SECONDS_PER_TARGET WORK_DIR [TARGET...]
# Working corpora live in WORK_DIR/<target> (seeded from fuzz/corpus and
# tests/vectors); a summary line per target (executions, crashes) goes to
# WORK_DIR/summary.tsv. Minimise into the repository afterwards with
#   cargo +nightly fuzz cmin -O <target> fuzz/corpus/<target>   (see fuzz/README.md)
# CAMPAIGN_ARGS adds cargo-fuzz options to the build and every run, e.g.
#   CAMPAIGN_ARGS="-s none --features aws-lc --target-dir target-campaign"
# (no AddressSanitizer, aws-lc backend: 3-6x the executions per second).
set -uo pipefail
read -r -a EXTRA <<<"${CAMPAIGN_ARGS:-}"

SECS="${1:?seconds per target}"
WORK="${2:?work directory}"
shift 2
FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VECTORS="$(dirname "$FUZZ_DIR")/tests/vectors"
cd "$FUZZ_DIR"
if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(awk '/^\[\[bin\]\]/{bin=1; next} bin && /^name *=/{gsub(/.*= *"|".*/, ""); print; bin=0}' Cargo.toml)
fi
mkdir -p "$WORK"
nice cargo +nightly fuzz build -O "${EXTRA[@]}"
for t in "${TARGETS[@]}"; do
  mkdir -p "$WORK/$t"
  [ -d "corpus/$t" ] && cp -n corpus/"$t"/* "$WORK/$t/" 2>/dev/null
  find "$VECTORS" -type f ! -name '*.tsv' -size -64k -exec cp -n {} "$WORK/$t/" \;
  log="$WORK/$t.log"
  nice -n 19 cargo +nightly fuzz run -O "${EXTRA[@]}" "$t" "$WORK/$t" -- \
    -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$WORK/$t-" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(ls "$WORK/$t"-crash-* "$WORK/$t"-leak-* "$WORK/$t"-timeout-* "$WORK/$t"-oom-* 2>/dev/null | wc -l)
  printf '%s\t%s\t%s\t%s\n' "$t" "${execs:-?}" "$crashes" "$rc" >>"$WORK/summary.tsv"
done
