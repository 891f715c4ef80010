//! `klef completions SHELL`: a completion script generated from the clap tree.

use anyhow::Result;
use clap_complete::Shell;

use crate::context::Context;
use crate::diagnostics::ExitStatus;

/// Print a shell completion script
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The shell: bash, zsh, fish, powershell or elvish
    #[arg(value_enum)]
    pub(crate) shell: Shell,
}

pub(crate) fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let mut cmd = crate::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "klef", &mut out);
    ctx.printer.data_bytes(&out)?;
    Ok(ExitStatus::SUCCESS)
}
