//! The costbench binary: parse arguments, run, map the outcome to an exit code.

fn main() {
    // reqwest is built without a default TLS provider; ring is installed once here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::process::exit(costbench::cli::main());
}
