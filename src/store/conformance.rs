//! Store conformance kit (being written).
