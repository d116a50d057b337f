//! The costbench binary: parse arguments, run, map the outcome to an exit code.

fn main() {
    // Rust ignores SIGPIPE, which turns a closed pipe (`| head`) into a panic in println!; a
    // command-line tool should end quietly like any other.
    #[cfg(unix)]
    // SAFETY: called before any thread starts; SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // reqwest is built without a default TLS provider; ring is installed once here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::process::exit(costbench::cli::main());
}
