//! The clap tree: `Cli { global, command }` (STYLE.md rule 7). Help text comes from the `///`
//! doc comments; the first line is the short help.

use std::ffi::OsString;

use clap::{
    ArgAction, ArgMatches, Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand,
};
use klef_core::env::EnvVars;

use crate::commands;

/// A parsed command line: the global flags and the subcommand.
#[derive(Debug)]
pub(crate) struct Cli {
    pub(crate) global: GlobalArgs,
    pub(crate) command: Command,
}

impl Cli {
    /// The whole clap tree: [`Top`] with every subcommand.
    pub(crate) fn command() -> clap::Command {
        crate::help::with_examples(Command::augment_subcommands(Top::command()), "")
    }

    /// The clap tree for parsing `args` (the first is the program name): [`Top`] with only the
    /// subcommands whose name or alias is one of `args`, so building it costs what the command
    /// line uses. clap copies every global flag into every subcommand before it parses; with
    /// the whole tree that is nine flags into thirty subcommands, ≈ 0.5 MB of allocations and
    /// 90 page faults on every start, `klef --version` included.
    ///
    /// A successful parse is the whole tree's: a parse only descends into subcommands named on
    /// the command line, and every one of them is here. Anything else (help, a usage error with
    /// its suggestions) depends on the subcommands left out, so the caller parses again with
    /// [`Cli::command`] unless the result is the version, which does not.
    pub(crate) fn command_for(args: &[OsString]) -> clap::Command {
        let all = Command::augment_subcommands(clap::Command::new("klef"));
        let named = all
            .get_subcommands()
            .filter(|sc| {
                let mut names = std::iter::once(sc.get_name()).chain(sc.get_all_aliases());
                names.any(|name| args.iter().skip(1).any(|arg| arg == name))
            })
            .cloned();
        Top::command().subcommands(named)
    }

    /// The parsed command line from a tree built by [`Cli::command`] or [`Cli::command_for`].
    pub(crate) fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self {
            global: GlobalArgs::from_arg_matches(matches)?,
            command: Command::from_arg_matches(matches)?,
        })
    }

    /// Parses `args` as `klef` does (for tests).
    #[cfg(test)]
    pub(crate) fn try_parse_from<const N: usize>(args: [&str; N]) -> Result<Self, clap::Error> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let matches = Self::command_for(&args).try_get_matches_from(&args)?;
        Self::from_arg_matches(&matches)
    }
}

/// End-to-end encrypted secrets for developers.
///
/// Keep your apps' secrets in projects and environments, encrypted on your machine, and run
/// your programs with them. Exit codes: 0 ok, 1 error, 2 usage, 3 authentication (wrong
/// password, locked), 4 permission denied, 5 not found, 6 server unreachable, 7 conflict;
/// `klef run` exits with its command's code.
#[derive(Debug, Parser)]
#[command(
    name = "klef",
    version,
    propagate_version = true,
    max_term_width = 100,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub(crate) struct Top {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
}

/// Flags accepted by every command.
#[derive(Debug, Clone, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches, as clap parses them"
)]
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

    /// Ask the server, not the agent's copy of the environment (which is served for
    /// `KLEF_CACHE_FRESH`, 5 s by default, after the server last confirmed it)
    #[arg(long, global = true)]
    pub(crate) fresh: bool,
}

// The subcommands. No doc comment: clap would make it the about text of the tree they are
// added to, over `Top`'s.
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
    #[command(subcommand, alias = "project")]
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
    /// Render a template's `{{klef:KEY}}` placeholders into a file
    Inject(commands::inject::Args),
    /// Compare two environments, or one with its past (exit 0 equal, 1 different)
    Diff(commands::diff::Args),
    /// Copy values from one environment to another, in one transaction
    Promote(commands::promote::Args),
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

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_tree_for_a_command_line_holds_the_subcommands_it_names() {
        let names = |args: &[&str]| -> Vec<String> {
            Cli::command_for(&os(args))
                .get_subcommands()
                .map(|sc| sc.get_name().to_owned())
                .collect()
        };
        assert!(names(&["klef", "--version"]).is_empty());
        assert_eq!(names(&["klef", "get", "KEY"]), ["get"]);
        // Every token counts, wherever it is: a flag's value that names a subcommand keeps it.
        assert_eq!(
            names(&["klef", "-e", "list", "get", "KEY"]),
            ["get", "list"]
        );
        // The program name itself is not an argument.
        assert!(names(&["run"]).is_empty());
        for sc in Cli::command().get_subcommands() {
            Cli::command_for(&os(&["klef", sc.get_name()])).debug_assert();
        }
        Cli::command_for(&os(&["klef"])).debug_assert();
    }

    /// Whatever parses with the subcommands a command line names parses the same with the
    /// whole tree; what fails may fail differently (the caller parses again with the whole tree
    /// for the message).
    #[test]
    fn the_tree_for_a_command_line_parses_as_the_whole_tree() {
        let lines: &[&[&str]] = &[
            &["klef", "get", "KEY"],
            &["klef", "-e", "staging", "get", "KEY", "--plain"],
            &["klef", "get", "KEY", "--json", "-p", "my-app", "-vv"],
            &["klef", "--env=list", "list", "--reveal"],
            &["klef", "run", "--", "env", "get", "-e", "x"],
            &["klef", "run", "--", "printenv"],
            &["klef", "env", "use", "staging"],
            &["klef", "env", "create", "qa", "--json"],
            &[
                "klef",
                "keys",
                "create",
                "ci",
                "--scope",
                "app:prod",
                "--permission",
                "read",
            ],
            &["klef", "pull", "-o", "-"],
            &["klef", "push", ".env", "--dry-run"],
            &["klef", "set", "A=1", "B=2"],
            &["klef", "unset", "A"],
            &["klef", "--profile", "work", "lock"],
            &["klef", "init", "get"],
            &["klef", "agent", "status"],
            &["klef", "completions", "zsh"],
            &["klef", "man"],
            &["klef"],
            &["klef", "gett"],
            &["klef", "get"],
            &["klef", "get", "--nope"],
            &["klef", "help", "get"],
            &["klef", "get", "--help"],
            &["klef", "env", "--version"],
            &["klef", "-q", "-v", "get", "KEY"],
        ];
        for line in lines {
            let args = os(line);
            let named = Cli::command_for(&args).try_get_matches_from(&args);
            let whole = Cli::command().try_get_matches_from(&args);
            match (named, whole) {
                (Ok(named), Ok(whole)) => {
                    let named = Cli::from_arg_matches(&named).expect("named tree");
                    let whole = Cli::from_arg_matches(&whole).expect("whole tree");
                    assert_eq!(format!("{named:?}"), format!("{whole:?}"), "{line:?}");
                }
                (Ok(named), Err(e)) => panic!("{line:?}: {named:?} but the whole tree says {e}"),
                (Err(named), Ok(_)) if named.kind() != clap::error::ErrorKind::DisplayVersion => {}
                (Err(_), Ok(_)) => panic!("{line:?}: version only from the named tree"),
                (Err(named), Err(whole)) => {
                    if named.kind() == clap::error::ErrorKind::DisplayVersion {
                        assert_eq!(named.to_string(), whole.to_string(), "{line:?}");
                    }
                }
            }
        }
    }
}
