//! A worker's stderr: read as bytes and drained until EOF whatever it holds (a worker whose
//! stderr pipe closed early would get `EPIPE` and likely die), kept as a tail bounded in lines
//! and in bytes. Invalid UTF-8 is kept lossily; a long line is cut, and a line that never ends
//! is cut as it arrives, so no worker output grows the gateway's memory without bound.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Lines kept.
pub const MAX_LINES: usize = 200;
/// Bytes kept of one line; the rest is counted, not kept.
pub const MAX_LINE_BYTES: usize = 4096;
/// Bytes kept in all (about 64 KiB: what the admin API returns and the store keeps per exit).
pub const MAX_TAIL_BYTES: usize = 64 * 1024;

/// The last lines of a stream of bytes.
#[derive(Debug, Default)]
pub struct Tail {
    lines: VecDeque<String>,
    /// Bytes held by `lines`.
    bytes: usize,
    /// The line being read, up to [`MAX_LINE_BYTES`].
    partial: Vec<u8>,
    /// Bytes of the line being read that were over the cap and dropped.
    cut: usize,
}

impl Tail {
    /// Adds bytes as they were read.
    pub fn push(&mut self, mut data: &[u8]) {
        while let Some(i) = data.iter().position(|b| *b == b'\n') {
            self.extend_partial(&data[..i]);
            self.end_line();
            data = &data[i + 1..];
        }
        self.extend_partial(data);
    }

    /// The stream ended: a last line without a newline is kept too.
    pub fn finish(&mut self) {
        if !self.partial.is_empty() || self.cut > 0 {
            self.end_line();
        }
    }

    /// The kept lines (and the line being read), newline-joined.
    pub fn text(&self) -> String {
        let mut out: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        let partial = (!self.partial.is_empty()).then(|| self.render_partial());
        if let Some(p) = &partial {
            out.push(p);
        }
        out.join("\n")
    }

    fn extend_partial(&mut self, data: &[u8]) {
        let take = MAX_LINE_BYTES
            .saturating_sub(self.partial.len())
            .min(data.len());
        self.partial.extend_from_slice(&data[..take]);
        self.cut += data.len() - take;
    }

    fn render_partial(&self) -> String {
        let mut line = String::from_utf8_lossy(&self.partial).into_owned();
        if line.ends_with('\r') {
            line.pop();
        }
        if self.cut > 0 {
            let _ = write!(line, "… ({} more bytes)", self.cut);
        }
        line
    }

    fn end_line(&mut self) {
        let line = self.render_partial();
        self.partial.clear();
        self.cut = 0;
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.lines.len() > MAX_LINES || self.bytes > MAX_TAIL_BYTES {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.len(),
                None => break,
            }
        }
    }
}

/// Reads `stderr` to its end into `tail`.
pub async fn drain(mut stderr: impl AsyncRead + Unpin, tail: Arc<Mutex<Tail>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => tail
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(&buf[..n]),
        }
    }
    tail.lock().unwrap_or_else(PoisonError::into_inner).finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_lossily_and_within_bounds() {
        let mut t = Tail::default();
        t.push(b"one\r\ntw");
        t.push(b"o \xff\xfe\nthree");
        assert_eq!(t.text(), "one\ntwo \u{fffd}\u{fffd}\nthree");
        t.finish();
        assert_eq!(t.text(), "one\ntwo \u{fffd}\u{fffd}\nthree");

        let mut t = Tail::default();
        let chunk = vec![b'x'; 100_000];
        for _ in 0..100 {
            t.push(&chunk); // 10 MB without a newline: only the cap is held
        }
        assert_eq!(t.partial.len(), MAX_LINE_BYTES);
        t.push(b"\n");
        assert!(
            t.text().ends_with("(9995904 more bytes)"),
            "{}",
            &t.text()[4000..]
        );
        for _ in 0..1000 {
            t.push(&chunk[..5000]);
            t.push(b"\n");
        }
        assert!(
            t.text().len() <= MAX_TAIL_BYTES + MAX_LINES,
            "{}",
            t.text().len()
        );
        assert!(t.lines.len() <= MAX_LINES);
    }
}
