//! scep (in progress)
