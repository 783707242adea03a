//! The invoke endpoint of `run --serve` (filled in below).
