//! A fake OpenAI-compatible chat endpoint on port 0: it records each request and answers
//! `POST …/chat/completions` with the given pieces as streamed `data:` chunks, then
//! `data: [DONE]`, as OpenAI-compatible servers (Ollama, llama.cpp's) do.

use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request the fake endpoint received.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

type Seen = Arc<Mutex<Vec<Request>>>;

/// The endpoint; it stops when dropped.
pub struct FakeServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Serves every chat request with these pieces.
    pub async fn start(pieces: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Seen::default();
        let pieces: Arc<Vec<String>> = Arc::new(pieces.iter().map(|&p| p.to_owned()).collect());
        let task = tokio::spawn({
            let seen = Arc::clone(&seen);
            async move {
                while let Ok((sock, _)) = listener.accept().await {
                    tokio::spawn(answer(sock, Arc::clone(&pieces), Arc::clone(&seen)));
                }
            }
        });
        Self { url, seen, task }
    }

    /// The requests so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request, records it, streams the reply and closes the connection.
async fn answer(mut sock: TcpStream, pieces: Arc<Vec<String>>, seen: Seen) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client closed before its request was whole");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
    while buf.len() < head_end + length {
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client closed before its body was whole");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    seen.lock().unwrap().push(Request {
        path,
        authorization: header("authorization"),
        body,
    });
    let mut out = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
    );
    sock.write_all(out.as_bytes()).await.unwrap();
    for piece in pieces.iter() {
        let event = json!({ "object": "chat.completion.chunk",
            "choices": [{ "index": 0, "delta": { "content": piece } }] });
        out = format!("data: {event}\n\n");
        sock.write_all(out.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    sock.write_all(b"data: [DONE]\n\n").await.unwrap();
    let _ = sock.shutdown().await;
}
