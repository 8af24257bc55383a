//! The stdio transport with JSON-RPC's parse errors answered. rmcp skips a line that is
//! not JSON (the official SDKs do, fearing error storms with a peer that echoes); JSON-RPC
//! 2.0 §5.1 asks for `{"error":{"code":-32700}, "id":null}`, and a client author
//! debugging a malformed frame needs to see it. So stdin passes through here first: a
//! line that is not JSON is answered with the parse error, everything else goes on to
//! rmcp, and one writer keeps the two streams of answers whole, line by line.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The longest line accepted (rmcp's own bound is similar): a longer one is answered
/// with a parse error and skipped, not buffered without end.
const MAX_LINE: usize = 4 * 1024 * 1024;

const PARSE_ERROR: &str =
    r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: not JSON"}}"#;

/// Wires `input`/`output` (the process's stdin and stdout) to the pair rmcp serves on.
/// The returned handle ends once every answer is written: await it before exiting, or
/// the last response can be lost with the runtime.
pub fn filtered<R, W>(
    input: R,
    output: W,
) -> (
    (tokio::io::DuplexStream, tokio::io::DuplexStream),
    tokio::task::JoinHandle<()>,
)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (rmcp_in, mut feed) = tokio::io::duplex(1 << 16);
    let (rmcp_out, answers) = tokio::io::duplex(1 << 16);
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();

    let parse_errors = tx.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(input);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match (&mut lines)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
                // Skip the rest of the oversized line without holding it.
                loop {
                    let (found, n) = match lines.fill_buf().await {
                        Ok([]) | Err(_) => break,
                        Ok(chunk) => match chunk.iter().position(|b| *b == b'\n') {
                            Some(i) => (true, i + 1),
                            None => (false, chunk.len()),
                        },
                    };
                    lines.consume(n);
                    if found {
                        break;
                    }
                }
                let _ = parse_errors.send(PARSE_ERROR.to_string());
                continue;
            }
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if serde_json::from_slice::<serde_json::Value>(line).is_err() {
                let _ = parse_errors.send(PARSE_ERROR.to_string());
                continue;
            }
            if feed.write_all(line).await.is_err() || feed.write_all(b"\n").await.is_err() {
                break;
            }
        }
        // EOF on stdin: rmcp sees EOF and ends the session.
        let _ = feed.shutdown().await;
    });

    tokio::spawn(async move {
        let mut lines = BufReader::new(answers).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if tx.send(l).is_err() {
                break;
            }
        }
    });

    let writer = tokio::spawn(async move {
        let mut out = output;
        while let Some(mut l) = rx.recv().await {
            l.push('\n');
            if out.write_all(l.as_bytes()).await.is_err() || out.flush().await.is_err() {
                break;
            }
        }
    });

    ((rmcp_in, rmcp_out), writer)
}
