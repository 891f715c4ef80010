//! The `klef` command-line interface.
