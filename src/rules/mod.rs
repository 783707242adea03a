//! Lambda's rules as data, and pure checks that return findings.
