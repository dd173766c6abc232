//! The `turnwatch` binary: parse the command line, run the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = turnwatch::cli::Cli::parse();
    // The reference worker is a plain program: no runtime, no logging on stdout.
    if let Some(turnwatch::cli::Command::Worker(args)) = &cli.command {
        return exit(turnwatch::worker::run(args));
    }
    let quiet = matches!(cli.command, Some(turnwatch::cli::Command::Bench { .. }));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if quiet { "warn" } else { "info" })
    });
    if cli.command.is_none() {
        // The console owns the terminal: its (embedded gateway's) log goes to a file.
        let dir = turnwatch::config::data_dir();
        let file = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("console.log"))
        });
        if let Ok(file) = file {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("turnwatch: cannot start the runtime: {e}");
            return exit(2);
        }
    };
    match runtime.block_on(turnwatch::cli::run(cli)) {
        Ok(code) => exit(code),
        Err(e) => {
            eprintln!("turnwatch: {e:#}");
            exit(2)
        }
    }
}

fn exit(code: i32) -> std::process::ExitCode {
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
