//! `klef man` (hidden): prints the man page that `cargo xtask man` also writes.

use anyhow::Result;

use crate::context::Context;
use crate::diagnostics::ExitStatus;

pub(crate) fn run(ctx: &Context) -> Result<ExitStatus> {
    ctx.printer.data(&crate::man_page())?;
    Ok(ExitStatus::SUCCESS)
}
