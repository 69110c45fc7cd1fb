//! Logs: human-readable by default, JSON on request, optionally also to daily files kept
//! for `retention_days`. Lines carry the request id (from the request span). Values that
//! could hold secrets or personal data are never logged: handlers log ids and kinds.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Keep the guard alive for the process's life (it
/// flushes the file writer).
pub fn init(config: &LogConfig) -> anyhow::Result<Option<WorkerGuard>> {
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (file_layer, guard) = match &config.dir {
        Some(dir) => {
            let appender = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix("convene")
                .filename_suffix("log")
                .max_log_files(config.retention_days.max(1) as usize)
                .build(dir)?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            (
                Some(fmt::layer().json().with_writer(writer).with_ansi(false)),
                Some(guard),
            )
        }
        None => (None, None),
    };
    let registry = tracing_subscriber::registry().with(filter).with(file_layer);
    match config.format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()?,
        LogFormat::Human => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()?,
    }
    Ok(guard)
}
