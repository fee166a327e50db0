#!/usr/bin/env bash
# Heap allocations the server makes per activation, counted by valgrind's
# DHAT: the same on every run, like benches/instructions.sh, and the map for
# work on the non-RSA share (every allocation is a malloc and a free, and
# the bytes are what the rest of a request churns through).
#
#   bash benches/allocations.sh [N] [FEATURES]
#
# N activations (default 10) of examples/server_activations.rs, built with
# FEATURES (default "test-support,aws-lc"). Only allocations with
# EnrollmentService::handle on their stack count, so the simulated devices'
# own work is left out; allocations inside the RSA backend (aws-lc's own
# OPENSSL_malloc) count with the rest and are named as such. Prints
# allocations and bytes per activation, grouped by the part of the crate
# that asked, then the top allocation sites. Needs valgrind and python3
# (Debian: apt-get install valgrind python3).
set -euo pipefail
N=${1:-10}
FEATURES=${2:-test-support,aws-lc}
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 2; }
cargo build --quiet --release --features "$FEATURES" --example server_activations
# The binary cargo just built (it honours CARGO_TARGET_DIR, so must we).
BIN="${CARGO_TARGET_DIR:-target}/release/examples/server_activations"
[ -x "$BIN" ] || { echo "no $BIN after the build" >&2; exit 2; }
OUT=$(mktemp)
LOG=$(mktemp)
trap 'rm -f "$OUT" "$LOG"' EXIT
valgrind --tool=dhat --dhat-out-file="$OUT" \
  "$BIN" "$N" >/dev/null 2>"$LOG" || { cat "$LOG" >&2; exit 1; }
python3 - "$OUT" "$N" "$FEATURES" <<'EOF'
import collections, json, re, sys

path, n, features = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path) as f:
    data = json.load(f)
frames = data["ftbl"]


def name(i):
    text = re.sub(r"^0x[0-9A-Fa-f]+: ", "", frames[i])
    text = re.sub(r" \(.*\)$", "", text)
    return re.sub(r"::h[0-9a-f]{16}$|17h[0-9a-f]{16}E", "", text)


# First group whose test matches a frame of the stack (innermost first) wins.
GROUPS = [
    ("RSA backend (aws-lc's own allocations)", lambda f: "aws_lc" in f or "OPENSSL_" in f),
    ("activation state: clones and apply", lambda f: "Activation as core::clone::Clone" in f
        or "machine::Activation::apply" in f),
    ("in-memory store", lambda f: "store::memory" in f or "MemoryStore" in f),
    ("BER/DER (wire::ber, der)", lambda f: "wire::ber" in f or f.startswith("der::")),
    ("plist read/write (wire::plist, profiles, commands)", lambda f: "wire::plist" in f
        or "mdm_enroll::profile::" in f or "mdm::command::Command" in f),
    ("CMS, certificates, keys (cms, pki, crypto)", lambda f: "mdm_enroll::cms::" in f
        or "mdm_enroll::pki::" in f or "mdm_enroll::crypto::" in f or "x509_cert" in f),
    ("engine and services", lambda f: "mdm_enroll::service" in f),
]

count = collections.Counter()
size = collections.Counter()
site_count = collections.Counter()
site_size = collections.Counter()
total_count = total_size = 0
for pp in data["pps"]:
    stack = [name(i) for i in pp["fs"]]
    if not any("EnrollmentService<S,D,P>::handle" in f for f in stack):
        continue
    total_count += pp["tbk"]
    total_size += pp["tb"]
    group = "other"
    for label, test in GROUPS:
        if any(test(f) for f in stack):
            group = label
            break
    count[group] += pp["tbk"]
    size[group] += pp["tb"]
    ours = [f for f in stack if "mdm_enroll" in f or f.startswith("der::") or "aws_lc" in f]
    site = " < ".join(f[:70] for f in ours[:2]) or stack[0][:140]
    site_count[site] += pp["tbk"]
    site_size[site] += pp["tb"]

if total_count == 0:
    sys.exit("no allocation under EnrollmentService::handle in the DHAT output")
print(f"server side, {n} activations, features {features} (heap allocations per activation)")
print(f"  inside EnrollmentService::handle  {total_count / n:9.1f} allocations  {total_size / n / 1024:8.1f} KiB")
for group, c in count.most_common():
    print(f"  {group:<52} {c / n:8.1f} ({c / total_count:5.1%})  {size[group] / n / 1024:7.1f} KiB")
print("top sites (allocations per activation, KiB):")
for site, c in site_count.most_common(15):
    print(f"  {c / n:7.1f} {site_size[site] / n / 1024:6.1f}  {site}")
print(f"ALLOC per activation = {total_count / n:.1f} ; bytes per activation = {total_size / n:.0f}")
EOF
