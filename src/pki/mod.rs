//! pki (in progress)
