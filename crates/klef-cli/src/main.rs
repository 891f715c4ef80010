//! The `klef` binary: a thin shell over [`klef_cli::main`].

fn main() -> std::process::ExitCode {
    klef_cli::main()
}
