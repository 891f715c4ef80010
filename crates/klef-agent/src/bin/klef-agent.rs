//! The `klef-agent` binary: a thin wrapper over [`klef_agent::daemon::main`].

fn main() -> std::process::ExitCode {
    klef_agent::daemon::main()
}
