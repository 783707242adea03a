//! Lambda rules, `check` and `inspect` as library operations: one test per
//! rule on an image made to break it, the clean images pass, and images
//! written by real tools (umoci, skopeo) are read and checked as a user would.

mod checks;
mod fixture;
mod inspect;
mod layout;
mod memory;
mod scan;
mod tools;
