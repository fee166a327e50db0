//! mdm (in progress)
