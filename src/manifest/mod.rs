//! The `lambda-img.toml` schema, its validation and the resolved model.
