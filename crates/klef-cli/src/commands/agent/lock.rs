//! `klef agent lock`: the same command as `klef lock` (see `commands::lock`).

pub(crate) use crate::commands::lock::{Args, run};
