//! Editing an image config as JSON that keeps every field it does not change.
//! (Filled in by the build step; see `ConfigEdit`.)
