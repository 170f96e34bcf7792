//! Text for people: how numbers are written.

pub mod units;
