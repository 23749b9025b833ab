//! `tollgate-mock-provider`: the mock OpenAI provider as a standalone server
//! for load benchmarks. Requests are never recorded (nobody could read them).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tollgate_mock_provider::{MockOptions, MockProvider};

const USAGE: &str = "\
tollgate-mock-provider: a mock OpenAI-compatible provider for load tests

USAGE: tollgate-mock-provider [--listen ADDR] [--latency-ms N] [--reply TEXT] [--no-record]

  --listen ADDR     address to serve on (default 127.0.0.1:9999)
  --latency-ms N    wait N milliseconds before every answer (default 0)
  --reply TEXT      the assistant's reply (default: the library's DEFAULT_REPLY)
  --no-record       accepted for clarity; the binary never records requests
  -h, --help        this text

Serves POST /v1/chat/completions, POST /v1/embeddings and GET /v1/models
until SIGINT or SIGTERM.";

struct Args {
    listen: SocketAddr,
    options: MockOptions,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 9999));
    let mut options = MockOptions {
        record: false,
        ..MockOptions::default()
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => {
                let v = value("--listen")?;
                listen = v
                    .parse()
                    .map_err(|e| format!("--listen {v:?}: {e} (expected IP:PORT)"))?;
            }
            "--latency-ms" => {
                let v = value("--latency-ms")?;
                let ms: u64 = v.parse().map_err(|e| format!("--latency-ms {v:?}: {e}"))?;
                options.latency = Duration::from_millis(ms);
            }
            "--reply" => options.reply = value("--reply")?,
            "--no-record" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(Args { listen, options }))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("tollgate-mock-provider: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mock = match MockProvider::start_on(args.listen, args.options).await {
        Ok(mock) => mock,
        Err(e) => {
            eprintln!(
                "tollgate-mock-provider: cannot listen on {}: {e}",
                args.listen
            );
            return ExitCode::FAILURE;
        }
    };
    println!("tollgate-mock-provider listening on {}", mock.base_url());
    shutdown_signal().await;
    drop(mock);
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
