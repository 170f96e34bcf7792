//! Capture decoding (owned by the `capture-decode` issue; empty until then).
