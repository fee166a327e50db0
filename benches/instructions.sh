#!/usr/bin/env bash
# Instructions the server spends per activation, counted by callgrind: the
# same on every run and every machine of one architecture, unlike wall time
# (which moves by ±5 % between runs on a shared VM, and whose non-RSA share
# also depends on cache effects the RSA work between requests causes).
#
#   bash benches/instructions.sh [N] [FEATURES]
#
# N activations (default 20) of examples/server_activations.rs, built with
# FEATURES (default "test-support,aws-lc"; "test-support" for the rsa crate).
# Counts only inside EnrollmentService::handle (--toggle-collect), so the
# simulated devices' own crypto is excluded, then splits the total into the
# server's RSA private operations (every RsaKey sign and key unwrap), its
# public ones (verifications, the CertRep key transport) and the rest.
# Needs valgrind (Debian: apt-get install valgrind).
#
# Read "everything else" as the figure to compare between commits. The
# ratios are a lower bound of the wall-time ones: valgrind's CPU has no
# AVX-512, so aws-lc runs its AVX2 RSA code here, more instructions than the
# AVX-512 code a recent Xeon runs, and RSA arithmetic retires more
# instructions per cycle than the branchy, allocating rest.
set -euo pipefail
N=${1:-20}
FEATURES=${2:-test-support,aws-lc}
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
cargo build --quiet --release --features "$FEATURES" --example server_activations
# The binary cargo just built (it honours CARGO_TARGET_DIR, so must we).
BIN="${CARGO_TARGET_DIR:-target}/release/examples/server_activations"
[ -x "$BIN" ] || { echo "no $BIN after the build" >&2; exit 2; }
OUT=$(mktemp)
LOG=$(mktemp)
trap 'rm -f "$OUT" "$LOG"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$OUT" \
  --toggle-collect='*EnrollmentService*handle*' \
  "$BIN" "$N" >/dev/null 2>"$LOG" || { cat "$LOG" >&2; exit 1; }
callgrind_annotate --inclusive=yes --threshold=100 "$OUT" 2>/dev/null | awk -v n="$N" -v features="$FEATURES" '
  function count(line) { split(line, f, " "); gsub(",", "", f[1]); return f[1] + 0 }
  /PROGRAM TOTALS/ { total = count($0) }
  /RsaKey as mdm_enroll::crypto::Signer>::sign / { sign = count($0) }
  /RsaKey as mdm_enroll::crypto::KeyUnwrapper>::unwrap_key / { unwrap = count($0) }
  # Public-key work: the outermost of the functions each backend keeps out of line.
  /crypto::PublicKey::verify |crypto::rustcrypto::Public::verify |crypto::awslc::verify / {
    if (count($0) > verify) verify = count($0)
  }
  /crypto::PublicKey::encrypt_pkcs1v15|crypto::awslc::encrypt_pkcs1v15|crypto::rustcrypto::Public::encrypt / {
    if (count($0) > encrypt) encrypt = count($0)
  }
  END {
    if (total == 0 || sign == 0 || unwrap == 0 || verify == 0) {
      print "could not find the RSA functions in the callgrind output" > "/dev/stderr"; exit 1
    }
    private = sign + unwrap; public = verify + encrypt; rest = total - private - public
    printf "server side, %d activations, features %s (instructions per activation)\n", n, features
    printf "  inside EnrollmentService::handle   %8.3f M\n", total / n / 1e6
    printf "  RSA private operations            %8.3f M  (signatures and the SCEP key unwrap)\n", private / n / 1e6
    printf "  RSA public operations             %8.3f M  (verifications, CertRep key transport)\n", public / n / 1e6
    printf "  everything else                   %8.3f M\n", rest / n / 1e6
    printf "INSTR RATIO handle / private ops = %.3f ; handle / all RSA ops = %.3f\n", total / private, total / (private + public)
  }'
