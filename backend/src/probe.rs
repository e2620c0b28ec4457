//! One HTTP GET for a status code: the `health` subcommand of both binaries (a container
//! HEALTHCHECK without curl in the image) and mcp-edge's active health checks.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    process::ExitCode,
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// `GET path` on `addr` with `Host: host`: the response status, or why there is none.
pub async fn status(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: mcp-health\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut head = [0u8; 64];
        let mut read = 0;
        while read < 12 {
            let n = stream
                .read(&mut head[read..])
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("closed before a status line".to_owned());
            }
            read += n;
        }
        let line =
            std::str::from_utf8(&head[..read]).map_err(|_| "status line is not text".to_owned())?;
        line.get(9..12)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// The `health` subcommand: exit 0 when `GET path` on the local listener answers 200.
/// A wildcard listen address (0.0.0.0, ::) is probed on loopback.
pub async fn command(listen: SocketAddr, path: &str) -> ExitCode {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    match status(addr, &addr.to_string(), path, Duration::from_secs(3)).await {
        Ok(200) => {
            println!("ready: http://{addr}{path} answered 200");
            ExitCode::SUCCESS
        }
        Ok(code) => {
            println!("not ready: http://{addr}{path} answered {code}");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("not ready: http://{addr}{path}: {e}");
            ExitCode::FAILURE
        }
    }
}
