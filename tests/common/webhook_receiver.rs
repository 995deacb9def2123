//! A webhook endpoint on loopback for the cluster tests and benches: answers 200 to every POST
//! and keeps each one (the `X-Tagstream-Node` that sent it, its events, when it came). Requests
//! on one connection are served one after another (the client keeps connections alive).

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One POST the endpoint got.
#[derive(Clone, Debug)]
pub struct Post {
    /// `X-Tagstream-Node`, if sent.
    pub node: Option<String>,
    /// The body's events (a JSON array; empty if it was not one).
    pub events: Vec<serde_json::Value>,
    pub at: Instant,
}

/// Every POST so far, in arrival order.
pub type Posts = Arc<Mutex<Vec<Post>>>;

/// Starts the endpoint; returns its URL and what it gets.
pub fn start_receiver() -> std::io::Result<(String, Posts)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let posts: Posts = Arc::default();
    let kept = posts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let kept = kept.clone();
            std::thread::spawn(move || serve(stream, &kept));
        }
    });
    Ok((url, posts))
}

fn serve(stream: std::net::TcpStream, posts: &Mutex<Vec<Post>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (mut length, mut node) = (0usize, None);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "x-tagstream-node" => node = Some(value.trim().to_string()),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let events = serde_json::from_slice(&body).unwrap_or_default();
        posts.lock().unwrap_or_else(|e| e.into_inner()).push(Post {
            node,
            events,
            at: Instant::now(),
        });
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}
