//! Bounded plist decoding (filled in by the wire-layer work).
