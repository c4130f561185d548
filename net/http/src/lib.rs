//! The HTTP status page: an app PD, client of the TCP PD through the
//! socket interface, that answers `GET /` with an HTML table of every PD
//! (state, restarts, last fault, last recovery, ring counters) and
//! `GET /status.json` with the same as JSON. What it shows comes from the
//! monitor, by protected call ([`axolotl_monitor::query`]).
//!
//! Requests are parsed by [`parse_request`], which bounds and checks every
//! byte from the network; anything else gets a 4xx answer, never a panic.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use axolotl_link::{RxLink, TxLink};
use axolotl_monitor::query::{self, PdState};
use axolotl_sdk::{Channel, ChannelSet, Handler, Os};
use axolotl_socket::{decode, encode, Handle, Msg};
use core::fmt::Write as _;

/// Longest request head (request line and headers) taken.
pub const MAX_REQUEST: usize = 4096;
/// Connections served at once; more are reset.
pub const MAX_CONNS: usize = 16;
/// PDs listed at most.
pub const MAX_PDS: u64 = 64;
/// Bytes per `Send` message.
const CHUNK: usize = 1024;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// `/`: the HTML table.
    Html,
    /// `/status.json`.
    Json,
}

/// A parsed request, or the status to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A GET (`head`: HEAD) of a page.
    Get(Page, bool),
    /// Not complete yet.
    Partial,
    /// Answer with this status and no page.
    Error(u16),
}

/// Parses the request head in `buf` (bytes received so far).
pub fn parse_request(buf: &[u8]) -> Request {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= MAX_REQUEST {
            Request::Error(431)
        } else {
            Request::Partial
        };
    };
    if end > MAX_REQUEST {
        return Request::Error(431);
    }
    let line_end = buf.windows(2).position(|w| w == b"\r\n").unwrap_or(end);
    let Ok(line) = core::str::from_utf8(&buf[..line_end]) else {
        return Request::Error(400);
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Error(400);
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Error(400);
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Request::Error(405),
    };
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/" | "/index.html" => Request::Get(Page::Html, head),
        "/status.json" => Request::Get(Page::Json, head),
        _ => Request::Error(404),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// Text safe inside HTML.
struct Esc<'a>(&'a str);

impl core::fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for c in self.0.chars() {
            match c {
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '&' => f.write_str("&amp;")?,
                '"' => f.write_str("&quot;")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// The HTML page for `pds`.
pub fn html(pds: &[PdState]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Axolotl status</title></head>\n\
         <body><h1>Axolotl: {} protection domains</h1>\n<table border=\"1\">\n\
         <tr><th>PD</th><th>state</th><th>restarts</th><th>last fault</th><th>last recovery</th>\
         <th>packets in</th><th>packets out</th><th>dropped</th><th>bad</th><th>device resets</th></tr>\n",
        pds.len()
    );
    for p in pds {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>",
            Esc(p.name()),
            p.phase,
            p.restarts
        );
        match p.last_fault {
            Some((k, addr, at)) => {
                let _ = write!(
                    s,
                    "{} at {addr:#x} ({}.{:03} s)",
                    k.name(),
                    at / 1_000_000_000,
                    at / 1_000_000 % 1000
                );
            }
            None => s.push('-'),
        }
        s.push_str("</td><td>");
        match p.last_recovery_ns {
            Some(ns) => {
                let _ = write!(s, "{}.{:03} ms", ns / 1_000_000, ns / 1_000 % 1000);
            }
            None => s.push('-'),
        }
        s.push_str("</td>");
        match p.counters {
            Some(c) => {
                let _ = write!(
                    s,
                    "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                    c.packets_in, c.packets_out, c.dropped, c.bad, c.device_resets
                );
            }
            None => s.push_str("<td>-</td><td>-</td><td>-</td><td>-</td><td>-</td>"),
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n</body></html>\n");
    s
}

/// The JSON page for `pds`.
pub fn json(pds: &[PdState]) -> String {
    let mut s = String::from("[");
    for (i, p) in pds.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        // Names come from system.xml: letters, digits, '_' and '-'.
        let name: String = p
            .name()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        let _ = write!(
            s,
            "{{\"name\":\"{name}\",\"state\":\"{}\",\"restarts\":{},\"last_fault\":",
            p.phase, p.restarts
        );
        match p.last_fault {
            Some((k, addr, at)) => {
                let _ = write!(
                    s,
                    "{{\"kind\":\"{}\",\"addr\":\"{addr:#x}\",\"at_ns\":{at}}}",
                    k.name()
                );
            }
            None => s.push_str("null"),
        }
        s.push_str(",\"last_recovery_ns\":");
        match p.last_recovery_ns {
            Some(ns) => {
                let _ = write!(s, "{ns}");
            }
            None => s.push_str("null"),
        }
        s.push_str(",\"counters\":");
        match p.counters {
            Some(c) => {
                let _ = write!(
                    s,
                    "{{\"packets_in\":{},\"packets_out\":{},\"dropped\":{},\"bad\":{},\"device_resets\":{},\"buffers_out\":{}}}",
                    c.packets_in, c.packets_out, c.dropped, c.bad, c.device_resets, c.buffers_out
                );
            }
            None => s.push_str("null"),
        }
        s.push('}');
    }
    s.push_str("]\n");
    s
}

/// A full response: status line, headers and (unless `head`) the body.
pub fn response(status: u16, content_type: &str, body: &str, head: bool) -> Vec<u8> {
    let mut s = String::new();
    let _ = write!(
        s,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\nCache-Control: no-store\r\n\r\n",
        reason(status),
        body.len()
    );
    if !head {
        s.push_str(body);
    }
    s.into_bytes()
}

struct Conn {
    handle: Handle,
    request: Vec<u8>,
    /// The response, and how much of it went out.
    out: Option<(Vec<u8>, usize)>,
    closed: bool,
}

/// The status page app PD.
pub struct HttpApp {
    port: u16,
    to_tcp: TxLink,
    from_tcp: RxLink,
    monitor: Channel,
    listening: bool,
    conns: Vec<Conn>,
    served: u64,
    /// Messages from TCP that do not decode (a TCP gone wrong).
    malformed: u64,
}

impl HttpApp {
    /// The app on `port`, asking the monitor on `monitor`.
    pub fn new(
        os: &mut dyn Os,
        port: u16,
        to_tcp: TxLink,
        from_tcp: RxLink,
        monitor: Channel,
    ) -> HttpApp {
        let mut app = HttpApp {
            port,
            to_tcp,
            from_tcp,
            monitor,
            listening: false,
            conns: Vec::new(),
            served: 0,
            malformed: 0,
        };
        app.listen(os);
        app.run(os);
        app
    }

    fn send(&mut self, m: &Msg<'_>) -> bool {
        let mut buf = [0u8; CHUNK + 16];
        match encode(m, &mut buf) {
            Some((meta, n)) => self.to_tcp.send(&buf[..n], meta).is_ok(),
            None => false,
        }
    }

    fn listen(&mut self, os: &mut dyn Os) {
        if self.send(&Msg::Listen(self.port)) && self.to_tcp.must_notify() {
            os.notify(self.to_tcp.channel());
        }
    }

    fn pds(&self, os: &mut dyn Os) -> Vec<PdState> {
        let mut out = Vec::new();
        for i in 0..MAX_PDS {
            match query::status(os, self.monitor, i) {
                Ok(Some(st)) => out.push(st),
                Ok(None) => break,
                Err(e) => {
                    log::warn!("monitor: {e}");
                    break;
                }
            }
        }
        out
    }

    fn answer(&mut self, os: &mut dyn Os, i: usize) {
        let resp = match parse_request(&self.conns[i].request) {
            Request::Partial => return,
            Request::Get(page, head) => {
                let pds = self.pds(os);
                self.served += 1;
                match page {
                    Page::Html => response(200, "text/html; charset=utf-8", &html(&pds), head),
                    Page::Json => response(200, "application/json", &json(&pds), head),
                }
            }
            Request::Error(code) => {
                let body = alloc::format!("{code} {}\n", reason(code));
                response(code, "text/plain", &body, false)
            }
        };
        self.conns[i].out = Some((resp, 0));
        self.conns[i].request = Vec::new();
    }

    fn on_message(&mut self, os: &mut dyn Os, m: Msg<'_>) {
        log::debug!("from TCP: {m:?}");
        match m {
            Msg::Listening(p) => {
                log::info!("HTTP status page on TCP port {p}");
                self.listening = true;
            }
            Msg::Refused(p) => log::error!("TCP refused port {p} to the status page"),
            Msg::Accepted(h, _, _) => {
                if self.conns.len() >= MAX_CONNS {
                    self.send(&Msg::Abort(h));
                    return;
                }
                self.conns.push(Conn {
                    handle: h,
                    request: Vec::new(),
                    out: None,
                    closed: false,
                });
            }
            Msg::Data(h, d) => {
                let Some(i) = self.conns.iter().position(|c| c.handle == h) else {
                    return;
                };
                let c = &mut self.conns[i];
                if c.out.is_some() {
                    return; // one request per connection; the rest is ignored
                }
                let room = (MAX_REQUEST + 4).saturating_sub(c.request.len());
                c.request.extend_from_slice(&d[..d.len().min(room)]);
                self.answer(os, i);
            }
            Msg::PeerClosed(h) => {
                if let Some(c) = self.conns.iter_mut().find(|c| c.handle == h) {
                    if c.out.is_none() {
                        c.closed = true;
                        self.send(&Msg::Close(h));
                    }
                }
            }
            Msg::Closed(h) => self.conns.retain(|c| c.handle != h),
            other => log::warn!("TCP sent {}, which an app does not take", other.op_name()),
        }
    }

    /// Sends what responses it can.
    fn flush(&mut self) {
        let mut buf = [0u8; CHUNK + 16];
        for c in &mut self.conns {
            let Some((resp, off)) = &mut c.out else {
                continue;
            };
            while *off < resp.len() {
                let end = (*off + CHUNK).min(resp.len());
                let Some((meta, n)) = encode(&Msg::Send(c.handle, &resp[*off..end]), &mut buf)
                else {
                    break;
                };
                if self.to_tcp.send(&buf[..n], meta).is_err() {
                    return;
                }
                *off = end;
            }
            if !c.closed {
                let Some((meta, n)) = encode(&Msg::Close(c.handle), &mut buf) else {
                    continue;
                };
                if self.to_tcp.send(&buf[..n], meta).is_ok() {
                    c.closed = true;
                }
            }
        }
    }

    fn run(&mut self, os: &mut dyn Os) {
        let mut buf = [0u8; 2048];
        loop {
            if self.from_tcp.peer_restarted() {
                // TCP restarted: every connection is gone; listen again.
                log::info!("TCP restarted: listening again");
                self.conns.clear();
                self.listening = false;
                self.listen(os);
            }
            let mut moved = 0;
            for _ in 0..64 {
                match self.from_tcp.recv(&mut buf) {
                    Ok(Some((n, meta))) => {
                        moved += 1;
                        match decode(meta, &buf[..n]) {
                            Ok(m) => self.on_message(os, m),
                            Err(e) => {
                                self.malformed += 1;
                                // A TCP gone wrong may send many: the 1st,
                                // 2nd, 4th, 8th... are logged.
                                if self.malformed.is_power_of_two() {
                                    log::warn!(
                                        "malformed message from TCP: {e:?} ({} so far)",
                                        self.malformed
                                    );
                                }
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        if self.from_tcp.ring_errors().is_power_of_two() {
                            log::warn!(
                                "link from TCP: {e} ({} so far)",
                                self.from_tcp.ring_errors()
                            );
                        }
                        break;
                    }
                }
            }
            self.flush();
            if self.to_tcp.must_notify() {
                os.notify(self.to_tcp.channel());
            }
            if self.from_tcp.must_notify() {
                os.notify(self.from_tcp.channel());
            }
            os.keepalive();
            if moved > 0 {
                continue;
            }
            let pending = self
                .conns
                .iter()
                .any(|c| c.out.as_ref().is_some_and(|(r, o)| *o < r.len()));
            let room_back = pending && !self.to_tcp.request_returns();
            if !room_back && self.from_tcp.request_packets() {
                return;
            }
        }
    }
}

impl axolotl_monitor::query::HasCounters for HttpApp {
    fn counters(&mut self) -> query::Counters {
        query::Counters {
            packets_in: self.served,
            packets_out: self.served,
            dropped: 0,
            bad: self.from_tcp.bad_descriptors() + self.to_tcp.bad_returns() + self.malformed,
            buffers_out: self.to_tcp.unreturned(),
            ..Default::default()
        }
    }
}

impl Handler for HttpApp {
    type Error = core::convert::Infallible;

    fn notified(&mut self, os: &mut dyn Os, _channels: ChannelSet) -> Result<(), Self::Error> {
        self.run(os);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn requests_parse_and_bad_ones_get_4xx() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Get(Page::Html, false)
        );
        assert_eq!(
            parse_request(b"HEAD /status.json HTTP/1.0\r\n\r\n"),
            Request::Get(Page::Json, true)
        );
        assert_eq!(
            parse_request(b"GET /?x=1 HTTP/1.1\r\n\r\n"),
            Request::Get(Page::Html, false)
        );
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost"), Request::Partial);
        assert_eq!(
            parse_request(b"POST / HTTP/1.1\r\n\r\n"),
            Request::Error(405)
        );
        assert_eq!(
            parse_request(b"GET /etc/passwd HTTP/1.1\r\n\r\n"),
            Request::Error(404)
        );
        assert_eq!(parse_request(b"GET / SPDY\r\n\r\n"), Request::Error(400));
        assert_eq!(
            parse_request(b"GET  / HTTP/1.1\r\n\r\n"),
            Request::Error(400)
        );
        assert_eq!(
            parse_request(b"\xff\xfe / HTTP/1.1\r\n\r\n"),
            Request::Error(400)
        );
        assert_eq!(parse_request(&[b'a'; MAX_REQUEST]), Request::Error(431));
    }

    #[test]
    fn pages_escape_and_count() {
        let (mut name, n) = ([0u8; query::MAX_NAME], 5);
        name[..n].copy_from_slice(b"<tcp>");
        let p = PdState {
            name,
            name_len: n,
            phase: "running",
            restarts: 2,
            last_fault: Some((axolotl_sdk::FaultKind::Panic, 0x10, 1_500_000_000)),
            last_recovery_ns: Some(1_700_000),
            heartbeats: 1,
            counters: Some(query::Counters {
                packets_in: 5,
                packets_out: 6,
                dropped: 7,
                bad: 8,
                ..Default::default()
            }),
        };
        let h = html(&[p]);
        assert!(h.contains("&lt;tcp&gt;") && !h.contains("<tcp>"));
        assert!(h.contains("panic at 0x10 (1.500 s)") && h.contains("1.700 ms"));
        assert!(h.contains("<td>5</td><td>6</td><td>7</td><td>8</td>"));
        let j = json(&[p]);
        assert!(
            j.contains("\"name\":\"tcp\"")
                && j.contains("\"restarts\":2")
                && j.contains("\"bad\":8")
        );
        let r = response(200, "text/html", "hello", false);
        assert!(r.ends_with(b"\r\n\r\nhello"));
        assert!(String::from_utf8(r)
            .unwrap()
            .contains("Content-Length: 5\r\n"));
        assert!(response(200, "text/html", "hello", true).ends_with(b"\r\n\r\n"));
    }

    proptest! {
        #[test]
        fn random_requests_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let _ = parse_request(&bytes);
        }
    }
}
