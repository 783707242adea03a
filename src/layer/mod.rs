//! Layers written by the build: file selection, deterministic tar, gzip, digests.
