//! What may reach a program's environment, in one place: the rules `klef run` applies to the
//! command it starts, and the check `klef set`/`klef push` apply to every value they store.
//!
//! - klef's own credentials ([`klef_core::env::CREDENTIALS`]) never reach the command.
//! - A stored name that changes how a program is found or loaded ([`changes_loading`]: `PATH`,
//!   `LD_*`, `DYLD_*`, `BASH_ENV`, `NODE_OPTIONS`, …, and every `KLEF_*`) is withheld unless the
//!   user opts in on the command line: anyone who can write an environment could otherwise run
//!   their own program on the machine of everyone who runs it. docs/security.md lists them.
//! - Linux refuses to start a program with an environment string (`NAME=value`) longer than
//!   [`MAX_ENV_STRING`] bytes: `klef set`/`klef push` warn when they store such a value
//!   (`crate::secrets::check_value`, which also refuses a NUL byte), and `klef run` names it.

/// Exact names that change which program runs or what it loads.
pub(crate) const LOADER_NAMES: &[&str] = &[
    // Where commands are found, and the shell's start-up and parsing.
    "PATH",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    "CDPATH",
    "GLOBIGNORE",
    "PROMPT_COMMAND",
    // The C library's loaders (beyond the `LD_*`/`DYLD_*` prefixes).
    "GCONV_PATH",
    "HOSTALIASES",
    "LOCPATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    // Language runtimes that load or run code named in a variable.
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONUSERBASE",
    "PYTHONBREAKPOINT",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "LUA_INIT",
    "LUA_PATH",
    "LUA_CPATH",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "TCLLIBPATH",
    "R_PROFILE",
    "R_PROFILE_USER",
    // Programs other programs run.
    "EDITOR",
    "VISUAL",
    "PAGER",
    "BROWSER",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
];

/// Name prefixes with the same effect: the dynamic loaders (`LD_PRELOAD`, `LD_AUDIT`,
/// `DYLD_INSERT_LIBRARIES`, …), bash's exported functions (`BASH_FUNC_ls%%`), git's injected
/// configuration (`GIT_CONFIG_*`: `core.fsmonitor` runs a program) and klef's own settings
/// (`KLEF_AGENT_BIN`, `KLEF_SERVER`, …: a stored one would redirect a `klef` the command runs).
pub(crate) const LOADER_PREFIXES: &[&str] = &["LD_", "DYLD_", "BASH_FUNC_", "GIT_CONFIG_", "KLEF_"];

/// npm reads its settings (`script-shell`, `node-options`, …) from `npm_config_*` in any case.
const NPM_CONFIG_PREFIX: &str = "npm_config_";

/// The longest `NAME=value` string Linux passes to a program (`MAX_ARG_STRLEN`, 32 pages of
/// 4 KiB, counting the final NUL).
pub(crate) const MAX_ENV_STRING: usize = 128 * 1024;

/// Whether a stored variable named `name` changes how a program is found or loaded, and so is
/// withheld from `klef run`'s command unless the user allows it.
pub(crate) fn changes_loading(name: &str) -> bool {
    LOADER_NAMES.contains(&name)
        || LOADER_PREFIXES.iter().any(|p| name.starts_with(p))
        || name
            .get(..NPM_CONFIG_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(NPM_CONFIG_PREFIX))
}

/// Whether `NAME=value` is too long for Linux to pass as one environment variable.
pub(crate) fn too_long_for_env(name: &str, value: &str) -> bool {
    name.len() + 1 + value.len() + 1 > MAX_ENV_STRING
}

/// The warning after storing a value too long for [`MAX_ENV_STRING`] (`klef set`, `klef push`).
pub(crate) fn too_long_warning(name: &str, value: &str) -> String {
    format!(
        "{name} is stored, but its value ({} KiB) is over the {} KiB one environment variable can hold, so `klef run` cannot pass it; read it with `klef get {name}` or `klef pull` into a file",
        value.len().div_ceil(1024),
        MAX_ENV_STRING / 1024
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_names_are_recognised_and_ordinary_ones_are_not() {
        for name in [
            "PATH",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "DYLD_INSERT_LIBRARIES",
            "BASH_ENV",
            "ENV",
            "NODE_OPTIONS",
            "PYTHONSTARTUP",
            "PERL5OPT",
            "RUBYOPT",
            "JAVA_TOOL_OPTIONS",
            "BASH_FUNC_ls%%",
            "GIT_CONFIG_COUNT",
            "KLEF_AGENT_BIN",
            "KLEF_TOKEN",
            "npm_config_script_shell",
            "NPM_CONFIG_NODE_OPTIONS",
        ] {
            assert!(changes_loading(name), "{name}");
        }
        for name in [
            "DATABASE_URL",
            "API_KEY",
            "MYPATH",
            "PATH_PREFIX",
            "NODE_ENV",
            "HOME",
            "LANG",
            "npm",
        ] {
            assert!(!changes_loading(name), "{name}");
        }
    }

    #[test]
    fn the_linux_limit_counts_name_equals_value_and_nul() {
        let name = "K";
        let fits = "x".repeat(MAX_ENV_STRING - name.len() - 2);
        assert!(!too_long_for_env(name, &fits));
        let over = format!("{fits}x");
        assert!(too_long_for_env(name, &over));
        let warning = too_long_warning(name, &over);
        assert!(warning.contains("klef pull") && warning.contains("128 KiB"));
    }
}
