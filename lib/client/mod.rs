//! The client library (owned by the client issue; empty until then).
