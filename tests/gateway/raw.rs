//! Raw HTTP/1.1 over one TCP connection: for what a client library will not do (send no `Host`
//! or a chosen one, put a stream request second on a kept-alive connection, stay silent) and
//! for watching the gateway close a connection.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::GUARD;

/// One client connection.
pub struct Raw {
    tcp: TcpStream,
    buf: Vec<u8>,
}

/// One response as read off the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// A header's value (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The data of an event stream's `connected` event.
    pub fn connected(&self) -> Value {
        let at = find(self.body.as_bytes(), b"event: connected\ndata: ")
            .unwrap_or_else(|| panic!("no `connected` event: {self:?}"));
        let data = &self.body[at + "event: connected\ndata: ".len()..];
        let line = data.split('\n').next().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// Asserts an error reply: this status, the spec's shape, this code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        let body = self.json();
        assert_eq!(body["success"], false, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
}

/// `127.0.0.1:PORT` of a gateway URL, for the `Host` header.
pub fn host(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

impl Raw {
    pub async fn connect(url: &str) -> Self {
        let tcp = TcpStream::connect(host(url)).await.unwrap();
        Self {
            tcp,
            buf: Vec::new(),
        }
    }

    /// Sends bytes as they are.
    pub async fn send(&mut self, text: &str) {
        self.tcp.write_all(text.as_bytes()).await.unwrap();
    }

    /// Sends a request with these header lines (`Name: value`) and reads its reply.
    pub async fn request(&mut self, method: &str, path: &str, headers: &[&str]) -> Reply {
        let mut text = format!("{method} {path} HTTP/1.1\r\n");
        for h in headers {
            text.push_str(h);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        self.send(&text).await;
        self.reply().await
    }

    /// Reads one response: its head, then the body by `content-length`, or for an event
    /// stream up to the end of its `connected` event.
    pub async fn reply(&mut self) -> Reply {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(self.fill().await > 0, "closed before a response head");
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut reply = Reply {
            status,
            head,
            body: String::new(),
        };
        if let Some(len) = reply.header("content-length") {
            let len: usize = len.parse().unwrap();
            while self.buf.len() < len {
                assert!(self.fill().await > 0, "closed inside a body");
            }
            reply.body = String::from_utf8_lossy(&self.buf[..len]).into_owned();
            self.buf.drain(..len);
        } else if reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"))
        {
            let connected = |buf: &[u8]| {
                let at = find(buf, b"event: connected")?;
                find(&buf[at..], b"\n\n")
            };
            while connected(&self.buf).is_none() {
                assert!(self.fill().await > 0, "stream closed before `connected`");
            }
            reply.body = String::from_utf8_lossy(&self.buf).into_owned();
        }
        reply
    }

    /// Waits (guarded) until the gateway closes the connection; what it sent before is kept.
    pub async fn assert_closed(&mut self) {
        while self.fill().await > 0 {}
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(GUARD, self.tcp.read(&mut chunk))
            .await
            .expect("hang guard: the connection stayed open and silent")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
