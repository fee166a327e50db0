//! activation (in progress)
