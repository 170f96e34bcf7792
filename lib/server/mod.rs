//! The room server (owned by the `serve` issue; empty until then).
