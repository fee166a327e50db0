//! The bounded wire layer: every byte from the network passes through here
//! before any typed decoding.
//!
//! - [`Limits`]: one value holding every size, depth and count bound.
//! - [`plist`]: a guard in front of the `plist` crate (depth, nodes, decoded bytes).
//! - [`ber`]: a bounded BER reader and BER → DER normaliser for CMS.
//! - [`json`]: JSON string escaping, a bounded flat-object reader (APNs
//!   answers) and a bounded tree reader (declarative management bodies).
//! - [`hex`], [`percent`]: hex encoding and percent-decoding, written once for the crate.
//! - `base64` (crate-internal): the strict base64 decoder of plist `<data>` and CMS.

pub(crate) mod base64;
pub mod ber;
pub mod hex;
pub mod json;
pub mod percent;
pub mod plist;
pub(crate) mod plist_data;

pub use ber::BerLimits;

/// Bounds applied to untrusted input. Every parser in the crate takes its
/// numbers from here; [`Limits::default`] documents the defaults. Start from
/// the defaults and change what you need with the `with_*` methods (or by
/// assigning the fields): more bounds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest plist body accepted (default 8 MiB: InstalledApplicationList and
    /// ProfileList reports reach hundreds of KB, DeviceInformation ~22 KB).
    pub max_body_bytes: usize,
    /// Deepest plist nesting of arrays and dictionaries (default 128).
    pub max_depth: usize,
    /// Most plist nodes (values, keys included) in one document (default 2 100 000).
    pub max_nodes: usize,
    /// Budget of decoded bytes (strings, keys and `<data>`) in one document,
    /// which also bounds binary-plist reference expansion: every reference to
    /// a shared object is charged again (default 64 MiB). Strings are charged
    /// their UTF-8 length, except that a binary plist's UTF-16 strings (the
    /// form it uses for any string that is not pure ASCII) are charged three
    /// bytes per UTF-16 unit, the most UTF-8 one unit can become, because the
    /// budget is checked before anything is transcoded.
    pub max_decoded_bytes: usize,
    /// Accept binary plists from devices (default `false`: devices send XML).
    pub allow_binary_plist: bool,
    /// Bounds for BER/DER (CMS, SCEP, certificates).
    pub ber: BerLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 * 1024 * 1024,
            max_depth: 128,
            max_nodes: 2_100_000,
            max_decoded_bytes: 64 * 1024 * 1024,
            allow_binary_plist: false,
            ber: BerLimits::default(),
        }
    }
}

impl Limits {
    /// These limits with [`max_body_bytes`](Self::max_body_bytes) set to `n`.
    pub const fn with_max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// These limits with [`max_depth`](Self::max_depth) set to `n`.
    pub const fn with_max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }

    /// These limits with [`max_nodes`](Self::max_nodes) set to `n`.
    pub const fn with_max_nodes(mut self, n: usize) -> Self {
        self.max_nodes = n;
        self
    }

    /// These limits with [`max_decoded_bytes`](Self::max_decoded_bytes) set to `n`.
    pub const fn with_max_decoded_bytes(mut self, n: usize) -> Self {
        self.max_decoded_bytes = n;
        self
    }

    /// These limits with [`allow_binary_plist`](Self::allow_binary_plist) set to `allow`.
    pub const fn with_binary_plist(mut self, allow: bool) -> Self {
        self.allow_binary_plist = allow;
        self
    }

    /// These limits with [`ber`](Self::ber) replaced.
    pub const fn with_ber(mut self, ber: BerLimits) -> Self {
        self.ber = ber;
        self
    }
}
