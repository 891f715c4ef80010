//! The clap tree: `Cli { global, command }` (STYLE.md rule 7). Help text comes from the `///`
//! doc comments; the first line is the short help.

use clap::{ArgAction, Args, Parser, Subcommand};
use klef_core::env::EnvVars;

use crate::commands;

/// End-to-end encrypted secrets for developers.
///
/// Keep your apps' secrets in projects and environments, encrypted on your machine, and run
/// your programs with them. Exit codes: 0 ok, 1 error, 2 usage, 3 authentication (wrong
/// password, locked), 4 permission denied, 5 not found, 6 server unreachable, 7 conflict;
/// `klef run` exits with its command's code.
#[derive(Debug, Parser)]
#[command(name = "klef", version, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags accepted by every command.
#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// The environment to use (overrides the default in `.klef`)
    #[arg(short = 'e', long = "env", global = true, env = EnvVars::KLEF_ENV, value_name = "SLUG")]
    pub(crate) env: Option<String>,

    /// The project to use, by id or name, where no `.klef` is found
    #[arg(short = 'p', long, global = true, env = EnvVars::KLEF_PROJECT, value_name = "ID|NAME")]
    pub(crate) project: Option<String>,

    /// Print machine-readable JSON on stdout (stable field names)
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Print only data and errors (no progress or success messages)
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "verbose")]
    pub(crate) quiet: u8,

    /// Log what klef does on stderr (`-vv` for more); `RUST_LOG` overrides
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Never colour the output (also `NO_COLOR`)
    #[arg(long, global = true)]
    pub(crate) no_color: bool,

    /// Read the encryption password from the first line of stdin
    ///
    /// The rest of stdin stays available to the command (for example the value of `klef set
    /// KEY`).
    #[arg(long, global = true)]
    pub(crate) password_stdin: bool,

    /// The Klef server to use (server mode), e.g. `https://klef.example.com`
    #[arg(long, global = true, env = EnvVars::KLEF_SERVER, value_name = "URL")]
    pub(crate) server: Option<String>,

    /// Use a separate set of config and data directories
    #[arg(long, global = true, env = EnvVars::KLEF_PROFILE, value_name = "NAME")]
    pub(crate) profile: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(crate) enum Command {
    /// Create a project here, with development, staging and production environments
    ///
    /// On first use this also creates your local account: you choose an encryption password
    /// (asked twice) and get a recovery code, shown once.
    Init(commands::init::Args),
    /// Write `.klef` here for an existing project
    Link(commands::link::Args),
    /// Manage projects
    #[command(subcommand)]
    Projects(commands::projects::Command),
    /// Manage workspaces (a personal one exists by default)
    #[command(subcommand)]
    Workspace(commands::workspace::Command),
    /// Manage the project's environments
    #[command(subcommand)]
    Env(commands::env::Command),
    /// Set one or more secrets
    Set(commands::set::Args),
    /// Print a secret's value
    Get(commands::get::Args),
    /// List the environment's secrets
    List(commands::list::Args),
    /// Delete secrets (their history is kept)
    Unset(commands::unset::Args),
    /// Write the environment's secrets to a file (`.env` by default)
    Pull(commands::pull::Args),
    /// Import a dotenv file into the environment in one transaction
    Push(commands::push::Args),
    /// Run a command with the environment's secrets in its environment
    Run(commands::run::Args),
    /// Show the earlier versions of a secret
    History(commands::history::Args),
    /// Make an earlier version of a secret the current one
    Rollback(commands::rollback::Args),
    /// Unlock your vault for this session: later commands need no password
    Unlock(commands::unlock::Args),
    /// Wipe every key the agent holds (the agent keeps running)
    Lock(commands::lock::Args),
    /// Start, stop and inspect the key agent
    #[command(subcommand)]
    Agent(commands::agent::Command),
    /// Manage the encryption password
    #[command(subcommand)]
    Password(commands::password::Command),
    /// Set a new encryption password with your recovery code
    Recover(commands::recover::Args),
    /// Back up and restore the vault (encrypted archives)
    #[command(subcommand)]
    Backup(commands::backup::Command),
    /// Create an account on a Klef server and sign in
    Signup(commands::signup::Args),
    /// Sign in to a Klef server
    Login(commands::login::Args),
    /// Sign out: revoke the session on the server and forget its token
    Logout(commands::logout::Args),
    /// Show who you are signed in as, on which server, and where the session token is kept
    Whoami(commands::whoami::Args),
    /// Show the workspace's audit log (who did what, when, with which key)
    Audit(commands::audit::Args),
    /// Manage API keys: user keys, and scoped system keys for CI (server mode)
    #[command(subcommand)]
    Keys(commands::keys::Command),
    /// Print a shell completion script
    Completions(commands::completions::Args),
    /// Print the man page (roff)
    #[command(hide = true)]
    Man,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli =
            Cli::try_parse_from(["klef", "get", "K", "--password-stdin", "-e", "staging"]).unwrap();
        assert!(cli.global.password_stdin);
        assert_eq!(cli.global.env.as_deref(), Some("staging"));
    }

    #[test]
    fn no_prefix_matching() {
        assert!(Cli::try_parse_from(["klef", "ge", "K"]).is_err());
    }
}
