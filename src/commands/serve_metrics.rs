//! The `/metrics` endpoint of `pgdr watch --metrics-address`: the watched
//! clusters' metrics (as `status --format openmetrics`) read every
//! [`REFRESH`] in the background, and a minimal HTTP/1.1 responder that
//! serves the newest copy. A scrape never waits on PostgreSQL or the bucket,
//! and scrapes from several Prometheus servers cost no extra reads.

use crate::providers::Systems;
use crate::spec::Desired;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::RwLock;

/// How often the metrics are read again: under Prometheus's usual scrape
/// interval, and a watcher's reads stay a few requests a minute.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// The longest request read: a scrape's request line and headers.
const MAX_REQUEST: usize = 16 * 1024;

/// Listens on `address`, before the watcher starts: a port in use stops it
/// at once, naming the address.
pub async fn bind(address: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("--metrics-address {address}: cannot listen: {e}"))?;
    eprintln!(
        "{} pgdr watch: metrics at http://{}/metrics",
        crate::spec::time::log_stamp(),
        listener.local_addr().unwrap_or(address)
    );
    Ok(listener)
}

/// Serves `/metrics` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, desired: &[Desired], systems: &Systems) {
    let current = Arc::new(RwLock::new(String::new()));
    let refresh = async {
        loop {
            let (text, _) = super::status::read_metrics(desired, systems).await;
            *current.write().await = text;
            tokio::time::sleep(REFRESH).await;
        }
    };
    let accept = async {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let current = current.clone();
                    tokio::spawn(async move {
                        let text = current.read().await.clone();
                        if let Err(e) = answer(stream, &text).await {
                            tracing::debug!(target: "pgdr::metrics", error = %e, "scrape not answered");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(target: "pgdr::metrics", error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    };
    tokio::join!(refresh, accept);
}

/// One request: `GET /metrics` (any query) is answered with `text`, before
/// the first read with 503; anything else with 404 or 405.
async fn answer(mut stream: TcpStream, text: &str) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 2048];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buffer[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") if text.is_empty() => (
            "503 Service Unavailable",
            "text/plain; charset=utf-8",
            "the first reading is not done yet\n",
        ),
        ("GET" | "HEAD", "/metrics") => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", text)
        }
        (_, "/metrics") => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "GET only\n",
        ),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "pgdr serves /metrics\n",
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}
