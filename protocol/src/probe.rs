//! A minimal HTTP/1.1 client for the binaries' own checks (feature `probe`, the one part of
//! this crate that does I/O): one request on a fresh connection (`Connection: close`), read to
//! its end within a bound and a timeout. mcp-edge's active health checks use it (`GET` the
//! health path, and a replica's `tools/list` at its first passing check), so do its peer
//! announcements (`POST` to another process's admin listener), and so does both binaries'
//! `health` subcommand (a container HEALTHCHECK without curl).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    process::ExitCode,
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// What a probe sends, beside `Host`, `User-Agent`, `Connection` and `Content-Length`.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Extra header lines, each ending in CRLF.
    pub headers: &'a str,
    pub body: &'a [u8],
}

/// Send `request` to `addr` (`Host: host`): the status and the body (at most `limit` bytes;
/// a chunked body is joined), or why there is none.
pub async fn exchange(
    addr: SocketAddr,
    host: &str,
    request: &Request<'_>,
    limit: usize,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let head = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\n{}User-Agent: mcp-probe\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            request.method,
            request.path,
            request.headers,
            request.body.len()
        );
        stream
            .write_all(&[head.as_bytes(), request.body].concat())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        stream
            .take(limit as u64)
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))??;
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete response head")?;
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {:?}", head.lines().next().unwrap_or("")))?;
    let body = &response[end + 4..];
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

/// `GET path`: the response status, or why there is none.
pub async fn status(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let get = Request {
        method: "GET",
        path,
        headers: "",
        body: b"",
    };
    exchange(addr, host, &get, 64 << 10, timeout)
        .await
        .map(|(status, _)| status)
}

/// The data of a chunked HTTP/1.1 body (what arrived of it).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let Some(size) = size.filter(|&n| n > 0) else {
            break;
        };
        let start = line_end + 2;
        let Some(chunk) = body.get(start..start + size) else {
            out.extend_from_slice(&body[start.min(body.len())..]);
            break;
        };
        out.extend_from_slice(chunk);
        body = body.get(start + size + 2..).unwrap_or_default();
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_is_joined() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
        assert_eq!(dechunk(b"5\r\nhel"), b"hel", "what arrived of a cut chunk");
        assert_eq!(dechunk(b""), b"");
    }
}
