//! cms (in progress)
pub mod enveloped;
