//! service driver (in progress)
