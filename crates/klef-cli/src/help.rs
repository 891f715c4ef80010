//! The `Examples:` section of every command's `--help` (clap's `after_long_help`), kept in one
//! table so the man page, the completions' descriptions and `--help` agree, and a test can
//! check that no command lacks one.

/// `(command path, examples)`: each example is `command  # what it does`.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "klef init                       # a project here, with a local vault",
            "klef set DATABASE_URL            # asks for the value, hidden",
            "klef run -- npm start            # runs with the secrets in its environment",
        ],
    ),
    (
        "init",
        &[
            "klef init",
            "klef init my-app --recovery-file ~/klef-recovery.txt",
        ],
    ),
    (
        "link",
        &[
            "klef link my-app",
            "klef link 0f8f3c1e-9a1b-4c2d-8e3f-1a2b3c4d5e6f -e staging",
        ],
    ),
    ("projects", &["klef projects list"]),
    (
        "projects list",
        &["klef projects list", "klef projects list --json"],
    ),
    ("projects rename", &["klef projects rename my-app billing"]),
    (
        "projects rotate-key",
        &[
            "klef projects rotate-key my-app",
            "klef projects rotate-key my-app --json",
        ],
    ),
    (
        "projects delete",
        &[
            "klef projects delete old-app",
            "klef projects delete old-app --yes   # in scripts",
        ],
    ),
    (
        "workspace",
        &[
            "klef workspace list",
            "klef workspace invite alice@example.com --env staging",
        ],
    ),
    (
        "workspace list",
        &["klef workspace list", "klef workspace list --json"],
    ),
    ("workspace create", &["klef workspace create \"Acme Inc\""]),
    ("workspace use", &["klef workspace use \"Acme Inc\""]),
    (
        "workspace rename",
        &["klef workspace rename \"Acme Inc\" Acme"],
    ),
    (
        "workspace delete",
        &[
            "klef workspace delete Sandbox",
            "klef workspace delete Sandbox --yes",
        ],
    ),
    (
        "workspace invite",
        &[
            "klef workspace invite alice@example.com",
            "klef workspace invite bob@example.com --role member --env staging",
        ],
    ),
    (
        "workspace accept",
        &[
            "klef workspace accept                                   # lists your open invitations",
            "klef workspace accept 6b1f… --code klef_inv_…           # with the code the admin sent you",
            "klef workspace accept 6b1f… --owner-fingerprint 3f2a-…  # or the owner's fingerprint",
        ],
    ),
    (
        "workspace confirm",
        &[
            "klef workspace confirm alice@example.com",
            "klef workspace confirm alice@example.com --fingerprint 3f2a-91c0-…",
        ],
    ),
    (
        "workspace verify",
        &["klef workspace verify", "klef workspace verify --json"],
    ),
    (
        "workspace members",
        &["klef workspace members", "klef workspace members --json"],
    ),
    (
        "workspace remove",
        &[
            "klef workspace remove alice@example.com                 # asks about keys she created",
            "klef workspace remove alice@example.com --revoke-keys   # her system keys stop working",
            "klef workspace remove alice@example.com --keep-keys --no-rotate",
        ],
    ),
    ("env", &["klef env list", "klef env use staging"]),
    ("env list", &["klef env list", "klef env list --json"]),
    (
        "env create",
        &[
            "klef env create qa",
            "klef env create prod-eu --name \"Production (EU)\"",
        ],
    ),
    (
        "env use",
        &[
            "klef env use staging           # your own choice for this directory",
            "klef env use staging --save    # the team default in .klef",
        ],
    ),
    ("env rename", &["klef env rename qa testing"]),
    (
        "env delete",
        &["klef env delete qa", "klef env delete qa --yes"],
    ),
    (
        "env rotate-key",
        &["klef env rotate-key", "klef env rotate-key production"],
    ),
    (
        "env seal",
        &["klef env seal", "klef env seal production --json"],
    ),
    (
        "set",
        &[
            "klef set API_KEY                       # asks for the value, hidden, twice",
            "klef set PORT 8080",
            "klef set A=1 B=2",
            "printf %s \"$TOKEN\" | klef set TOKEN    # from a pipe, byte for byte",
            "klef set --personal DATABASE_URL       # your own value, sealed to you alone",
            "klef set --personal LOG_LEVEL=debug    # others keep the shared value",
        ],
    ),
    (
        "get",
        &[
            "klef get DATABASE_URL",
            "klef get DATABASE_URL --plain -e production",
            "klef get DATABASE_URL --raw     # the stored text, ${…} references unresolved",
        ],
    ),
    (
        "list",
        &[
            "klef list",
            "klef list --reveal -e staging",
            "klef list --json",
            "klef list              # PERSONAL column: names you override, or have alone",
        ],
    ),
    (
        "unset",
        &[
            "klef unset OLD_KEY",
            "klef unset A B C",
            "klef unset --personal DATABASE_URL   # back to the shared value, for you",
            "klef unset --personal --all          # all of yours; starts again if they were lost",
        ],
    ),
    (
        "pull",
        &[
            "klef pull                       # writes .env (mode 0600)",
            "klef pull -o - --format json",
            "klef pull -o .env.production -e production",
            "klef pull --raw -o -            # references kept as ${…}, for `klef push`",
        ],
    ),
    (
        "push",
        &[
            "klef push                       # imports .env",
            "klef push --dry-run",
            "klef push exported.json --replace --yes",
        ],
    ),
    (
        "run",
        &[
            "klef run -- npm start",
            "klef run -e production -- ./migrate.sh",
            "KLEF_TOKEN=klef_sys_… klef run -- make deploy",
            "klef run --skip-unreadable -- npm start   # without values that cannot be decrypted",
            "klef run --mask -- ./deploy.sh   # secret values in its output become ****",
        ],
    ),
    (
        "inject",
        &[
            "klef inject -i config.tmpl -o config.yaml   # {{klef:DB_URL}} → its value",
            "klef inject -i values.tmpl -e production -o values.yaml",
            "klef inject -i - < app.conf.tmpl > app.conf",
        ],
    ),
    (
        "diff",
        &[
            "klef diff staging                      # development (current) vs staging, masked",
            "klef diff -e staging production --show # reveal the values",
            "klef diff production --raw --all       # stored text; list unchanged names too",
            "klef diff billing/production           # another project's environment",
            "klef diff --at 2026-12-01T09:00:00Z    # this environment then vs now",
            "klef diff -e staging production -q || echo \"staging and production differ\"",
            "klef diff --personal --show            # the shared values vs what you see",
        ],
    ),
    (
        "promote",
        &[
            "klef promote --from staging --to production            # shows the change, asks",
            "klef promote --from staging --to production API_URL DB_URL",
            "klef promote --from staging --to production --dry-run",
            "klef promote --from staging --to production --yes      # in scripts",
        ],
    ),
    (
        "history",
        &[
            "klef history DATABASE_URL",
            "klef history DATABASE_URL --json",
        ],
    ),
    ("rollback", &["klef rollback DATABASE_URL 3"]),
    (
        "unlock",
        &[
            "klef unlock",
            "klef unlock --password-stdin < password-file",
        ],
    ),
    ("lock", &["klef lock"]),
    ("agent", &["klef agent status", "klef agent stop"]),
    (
        "agent start",
        &[
            "klef agent start",
            "KLEF_AGENT_IDLE_TIMEOUT=15m klef agent start",
        ],
    ),
    ("agent stop", &["klef agent stop"]),
    (
        "agent status",
        &["klef agent status", "klef agent status --json"],
    ),
    ("agent lock", &["klef agent lock"]),
    ("password", &["klef password change"]),
    (
        "password change",
        &[
            "klef password change",
            "KLEF_NEW_PASSWORD=… klef password change --password-stdin < old-password",
        ],
    ),
    (
        "recover",
        &[
            "klef recover",
            "klef recover --code-file ~/klef-recovery.txt",
        ],
    ),
    (
        "backup",
        &[
            "klef backup export acme.kbak",
            "klef backup import acme.kbak",
        ],
    ),
    (
        "backup export",
        &[
            "klef backup export acme.kbak",
            "klef backup export acme.kbak --force",
        ],
    ),
    (
        "backup import",
        &[
            "klef backup import acme.kbak",
            "klef backup import acme.kbak --force",
        ],
    ),
    (
        "signup",
        &["klef signup --server https://klef.example.com --email you@example.com"],
    ),
    (
        "login",
        &[
            "klef login                       # the server named in .klef, the last email",
            "klef login --server https://klef.example.com --email you@example.com",
            "klef login --key klef_user_…",
        ],
    ),
    ("logout", &["klef logout"]),
    (
        "whoami",
        &[
            "klef whoami",
            "klef whoami --json",
            "KLEF_TOKEN=klef_sys_… klef whoami   # describes the key",
        ],
    ),
    ("audit", &["klef audit", "klef audit --limit 20 --json"]),
    (
        "keys",
        &[
            "klef keys list",
            "klef keys create --type system --label ci --scope my-app:production --permission read",
        ],
    ),
    (
        "keys create",
        &[
            "klef keys create --type user --label laptop",
            "klef keys create --type system --label ci --scope my-app:production --permission read",
            "klef keys create --type system --label deploy --scope 'my-app:*' --permission readwrite",
        ],
    ),
    ("keys list", &["klef keys list", "klef keys list --json"]),
    (
        "keys put",
        &["klef keys put klef_sys_ab12 --scope my-app:staging --permission read"],
    ),
    ("keys revoke", &["klef keys revoke klef_sys_ab12"]),
    (
        "completions",
        &[
            "klef completions bash > ~/.local/share/bash-completion/completions/klef",
            "klef completions zsh > \"${fpath[1]}/_klef\"",
        ],
    ),
    ("man", &["klef man > klef.1"]),
];

/// The examples of the command at `path` (`""` for `klef` itself, `"env create"`).
pub(crate) fn examples(path: &str) -> Option<&'static [&'static str]> {
    EXAMPLES.iter().find(|(p, _)| *p == path).map(|(_, e)| *e)
}

/// `cmd` (at `path`) and its subcommands with their `Examples:` sections.
pub(crate) fn with_examples(mut cmd: clap::Command, path: &str) -> clap::Command {
    if let Some(lines) = examples(path) {
        let mut text = String::from("Examples:\n");
        for l in lines {
            text.push_str("  ");
            text.push_str(l);
            text.push('\n');
        }
        cmd = cmd.after_long_help(text.trim_end().to_owned());
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        cmd = cmd.mut_subcommand(&name, |sc| with_examples(sc, &sub_path));
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        if !cmd.is_hide_set() {
            out.push(path.to_owned());
        }
        for sc in cmd.get_subcommands() {
            let p = if path.is_empty() {
                sc.get_name().to_owned()
            } else {
                format!("{path} {}", sc.get_name())
            };
            paths(sc, &p, out);
        }
    }

    #[test]
    fn every_command_has_examples() {
        let mut all = Vec::new();
        paths(&crate::command(), "", &mut all);
        let missing: Vec<&String> = all.iter().filter(|p| examples(p).is_none()).collect();
        assert!(
            missing.is_empty(),
            "commands without examples in help.rs: {missing:?}"
        );
        let help = crate::command()
            .find_subcommand_mut("env")
            .and_then(|e| e.find_subcommand_mut("create"))
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        assert!(help.contains("Examples:\n  klef env create qa"), "{help}");
    }

    #[test]
    fn every_personal_flag_has_an_example() {
        for path in ["set", "unset", "diff"] {
            assert!(
                examples(path)
                    .unwrap_or_default()
                    .iter()
                    .any(|e| e.contains("--personal")),
                "{path}"
            );
        }
    }
}
