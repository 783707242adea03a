//! The build report: what `build --json` prints, what `--metadata-file`
//! writes and what `deploy` reads back. It sits above the modules whose values
//! it describes (image, sinks, rules, base repair) and below `build`, so
//! `report` stays a leaf that any module may use to tell the user things.

pub mod json;
pub mod metadata;
