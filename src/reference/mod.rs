//! The reference grammar, parsed once into typed values: where an image is
//! read from ([`ImageRef`]: `[base] image`, `check`/`inspect`/`run`
//! arguments) and where a build writes one ([`OutputRef`]: `--output`), with
//! the registry name grammar ([`Reference`]) both use. An `--output` naming
//! `{function}` is an [`OutputTemplate`] until each function's name is put in.
//!
//! Everything else matches on these types instead of looking at prefixes.

mod image_ref;
mod output_ref;
mod output_template;
pub mod registry;

pub use image_ref::{ImageRef, ImageRefError, ImageTarget, split_path_tag};
pub use output_ref::{OutputKind, OutputRef, OutputRefError, OutputTarget};
pub use output_template::{FUNCTION_PLACEHOLDER, OutputTemplate};
pub use registry::{Reference, ReferenceError};
