//! Environments shared by callers (filled in below).
