//! Process start and stop shared by the binaries: log setup, the shutdown
//! signal and how `main` reports an error.

/// Logs to stderr, filtered by `RUST_LOG` (else `default_filter`), in
/// colour only on a terminal: the local cluster, the bench and the chaos
/// runner send each service's stderr to a log file, where colour codes
/// only get in the way of reading and quoting it.
pub fn init_tracing(default_filter: &str) {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .init();
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down");
}

/// What `main` returns: on an error, one line on stderr with its causes
/// (`error: reading config: no such file`) and exit status 1. Returning
/// the `anyhow::Error` from `main` would print its `Debug` form instead,
/// which adds a whole backtrace whenever `RUST_BACKTRACE` is set in the
/// environment, burying the one line that says what to fix.
pub fn exit_status<E: std::fmt::Display>(result: Result<(), E>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
