#!/usr/bin/env bash
# Where the server's wall time goes inside an activation, by sampling: the
# time counterpart of benches/instructions.sh (instructions) and
# benches/allocations.sh (heap allocations).
#
#   bash benches/profile.sh [N] [FEATURES] [DEPTH]
#
# Builds examples/server_activations.rs with frame pointers (into
# target/profile-fp, so the normal build is untouched), samples N
# activations (default 1500) with `perf record -e cpu-clock --call-graph
# dwarf` (a software clock: works in VMs without hardware counters; DWARF
# unwinding, because aws-lc's assembly keeps no frame pointer and, on CPUs
# without AVX-512 IFMA, a frame-pointer walk loses most RSA samples'
# stacks), and prints, for the samples under EnrollmentService::handle
# only (the simulated devices' own work left out):
#   - the share of RSA private operations (signatures, key unwrap), public
#     operations (verifications, key transport) and everything else;
#   - the largest subtrees of "everything else", DEPTH frames deep
#     (default 2) below `handle`;
#   - the coverage: samples found under `handle` against the time the
#     example itself measured inside it; well below 100 % means stacks
#     were lost and the shares are not to be trusted.
# Shares move a little from run to run; read them beside the paired ratio
# of the `activation` bench. Needs perf and python3 (Debian: apt-get
# install linux-perf python3); perf may need
# `sysctl kernel.perf_event_paranoid=1`.
set -euo pipefail
N=${1:-1500}
FEATURES=${2:-test-support,aws-lc}
DEPTH=${3:-2}
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 2; }
RUSTFLAGS="${RUSTFLAGS:-} -Cforce-frame-pointers=yes" CARGO_TARGET_DIR=target/profile-fp \
  cargo build --quiet --release --features "$FEATURES" --example server_activations
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
FREQ=3000
perf record -q -o "$DIR/perf.data" -e cpu-clock -F "$FREQ" --call-graph dwarf,16384 \
  target/profile-fp/release/examples/server_activations "$N" > "$DIR/measured.txt"
perf script -i "$DIR/perf.data" -F ip,sym 2>/dev/null > "$DIR/stacks.txt"
rm -f "$DIR/perf.data"
# "N activations, X µs per activation inside EnrollmentService::handle"
MEASURED_US=$(awk '{print $3}' "$DIR/measured.txt")
python3 - "$DIR/stacks.txt" "$N" "$FEATURES" "$DEPTH" "$FREQ" "$MEASURED_US" <<'EOF'
import collections, re, sys

path, n, features, depth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
freq, measured_us = float(sys.argv[5]), float(sys.argv[6])


def samples():
    stack = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                if stack:
                    yield stack
                stack = []
                continue
            parts = line.split(" ", 1)
            stack.append(parts[1] if len(parts) > 1 else "?")
    if stack:
        yield stack


def kind(stack):
    """The provider call on the stack, innermost first."""
    for f in stack:
        if "RsaKey as mdm_enroll::crypto::KeyUnwrapper>::unwrap_key" in f:
            return "RSA private: key unwrap"
        if "RsaKey as mdm_enroll::crypto::Signer>::sign" in f:
            return "RSA private: signatures"
        if "PublicKey::verify" in f or "awslc::verify" in f or "rustcrypto::Public::verify" in f:
            return "RSA public: verifications"
        if "encrypt_pkcs1v15" in f or "rustcrypto::Public::encrypt" in f:
            return "RSA public: key transport"
    return "everything else"


def short(frame):
    frame = re.sub(r"::h[0-9a-f]{16}$|17h[0-9a-f]{16}E|\.llvm\.\d+", "", frame)
    return frame[:90]


total = 0
kinds = collections.Counter()
subtrees = collections.Counter()
for stack in samples():
    at = [i for i, f in enumerate(stack) if "EnrollmentService" in f and "::handle" in f]
    if not at:
        continue
    total += 1
    k = kind(stack)
    kinds[k] += 1
    if k == "everything else":
        below = [short(f) for f in reversed(stack[: at[-1]])]
        subtrees[" > ".join(below[:depth]) or "(handle itself)"] += 1

if total == 0:
    sys.exit("no sample under EnrollmentService::handle (is perf allowed to sample?)")
expected = measured_us * 1e-6 * int(n) * freq
print(f"server side, {n} activations, features {features}: {total} samples under handle")
print(f"  coverage: {total / expected:.0%} of the {expected:.0f} samples the example's own"
      f" timing ({measured_us:.1f} µs per activation) predicts")
for k, v in sorted(kinds.items()):
    print(f"  {k:<28} {v / total:6.1%}")
private = sum(v for k, v in kinds.items() if k.startswith("RSA private"))
print(f"PROFILE handle / private ops, as sampled = {total / max(private, 1):.3f}")
print(f"largest parts of everything else ({depth} frames below handle), share of handle:")
for path_, v in subtrees.most_common(25):
    print(f"  {v / total:6.2%}  {path_}")
EOF
