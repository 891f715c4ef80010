//! Dispatch: one module per subcommand, groups in folders. Each module has an `Args` (or a
//! `Command` enum for groups) and `pub(crate) async fn run(args, ctx) -> Result<ExitStatus>`.

pub(crate) mod agent;
pub(crate) mod audit;
pub(crate) mod backup;
pub(crate) mod completions;
pub(crate) mod diff;
pub(crate) mod env;
pub(crate) mod get;
pub(crate) mod history;
pub(crate) mod init;
pub(crate) mod inject;
pub(crate) mod keys;
pub(crate) mod link;
pub(crate) mod list;
pub(crate) mod lock;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod man;
pub(crate) mod password;
pub(crate) mod projects;
pub(crate) mod promote;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod recover;
pub(crate) mod rollback;
pub(crate) mod run;
pub(crate) mod set;
pub(crate) mod signup;
pub(crate) mod unlock;
pub(crate) mod unset;
pub(crate) mod whoami;
pub(crate) mod workspace;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::printer::Printer;

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli, printer: Printer) -> Result<ExitStatus> {
    let ctx = Context::new(cli.global, printer)?;
    let status = match cli.command {
        Command::Init(args) => init::run(args, &ctx).await,
        Command::Link(args) => link::run(args, &ctx).await,
        Command::Projects(cmd) => projects::run(cmd, &ctx).await,
        Command::Workspace(cmd) => workspace::run(cmd, &ctx).await,
        Command::Env(cmd) => env::run(cmd, &ctx).await,
        Command::Set(args) => set::run(args, &ctx).await,
        Command::Get(args) => get::run(args, &ctx).await,
        Command::List(args) => list::run(&args, &ctx).await,
        Command::Unset(args) => unset::run(args, &ctx).await,
        Command::Pull(args) => pull::run(args, &ctx).await,
        Command::Push(args) => push::run(args, &ctx).await,
        Command::Run(args) => run::run(args, &ctx).await,
        Command::Inject(args) => inject::run(args, &ctx).await,
        Command::Diff(args) => diff::run(args, &ctx).await,
        Command::Promote(args) => promote::run(args, &ctx).await,
        Command::History(args) => history::run(&args, &ctx).await,
        Command::Rollback(args) => rollback::run(&args, &ctx).await,
        Command::Unlock(args) => unlock::run(&args, &ctx).await,
        Command::Lock(args) => lock::run(&args, &ctx).await,
        Command::Agent(cmd) => agent::run(cmd, &ctx).await,
        Command::Signup(args) => signup::run(args, &ctx).await,
        Command::Login(args) => login::run(args, &ctx).await,
        Command::Logout(args) => logout::run(&args, &ctx).await,
        Command::Whoami(args) => whoami::run(&args, &ctx).await,
        Command::Audit(args) => audit::run(&args, &ctx).await,
        Command::Keys(cmd) => keys::run(cmd, &ctx).await,
        Command::Password(cmd) => password::run(cmd, &ctx).await,
        Command::Recover(args) => recover::run(&args, &ctx).await,
        Command::Backup(cmd) => backup::run(cmd, &ctx).await,
        Command::Completions(args) => completions::run(&args, &ctx),
        Command::Man => man::run(&ctx),
    };
    ctx.finish().await;
    status
}
