//! A fault-injecting TCP proxy on loopback, in front of the emulator (or any
//! server): it forwards bytes unchanged, and on request it
//!
//! - goes down ([`Proxy::down`]): new connections refused, open ones cut —
//!   "the emulator is unreachable" without losing what the emulator holds —
//!   and comes back on the same port ([`Proxy::up`]);
//! - answers the next requests itself with a fault ([`Proxy::fail_next`]):
//!   AWS's throttling answer for the request's service (`503 SlowDown` for
//!   S3, `400 Throttling` for RDS and Route53, `503 RequestLimitExceeded` for
//!   EC2, told apart by the service in the request's SigV4 credential scope),
//!   or a connection closed without an answer ([`Fault::Reset`]).
//!
//! - cuts a region ([`Proxy::cut_region`]): every request signed for that
//!   region (its SigV4 credential scope) has its connection closed
//!   unanswered, while requests for other regions pass — one emulator
//!   serving two regions, one of them lost.
//!
//! Faults are served on fresh connections: arming them cuts the open ones, so
//! the client's next request (or its retry) opens a connection and meets the
//! fault; a fault answer closes its connection.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The service's throttling error.
    Throttle,
    /// The connection closed after the request, without an answer.
    Reset,
}

pub struct Proxy {
    pub port: u16,
    /// The address it listens on (another host's side of a veth pair, say).
    addr: String,
    upstream: u16,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    up: bool,
    /// Bumped when the listener must stop.
    listener: u64,
    /// Bumped when open connections must be cut.
    connections: u64,
    faults: VecDeque<Fault>,
    /// Every fault served: (service, fault).
    served: Vec<(String, Fault)>,
    /// Regions whose requests are cut, and how many were.
    cut: Vec<String>,
    cut_requests: usize,
    /// Regions whose requests are read and never answered (a region that
    /// accepts connections and hangs): counted with the cut ones.
    stalled: Vec<String>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Self {
        Self::start_on("127.0.0.1", upstream)
    }

    /// A proxy listening on `addr`: how a process in a network namespace
    /// reaches the emulator on the host's loopback.
    pub fn start_on(addr: &str, upstream: u16) -> Self {
        let proxy = Proxy {
            port: super::free_port(),
            addr: addr.to_string(),
            upstream,
            state: Default::default(),
        };
        proxy.up();
        proxy
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.addr, self.port)
    }

    /// Answers the next `n` requests with `fault` instead of forwarding them.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut state = self.state.lock().unwrap();
        state.faults.extend(std::iter::repeat_n(fault, n));
        state.connections += 1;
    }

    /// Faults armed and not yet served.
    pub fn faults_pending(&self) -> usize {
        self.state.lock().unwrap().faults.len()
    }

    /// Every fault served so far, with the service it was served to.
    pub fn served(&self) -> Vec<(String, Fault)> {
        self.state.lock().unwrap().served.clone()
    }

    pub fn up(&self) {
        let generation = {
            let mut state = self.state.lock().unwrap();
            if state.up {
                return;
            }
            state.up = true;
            state.listener += 1;
            state.listener
        };
        let listener =
            TcpListener::bind((self.addr.as_str(), self.port)).expect("proxy port free again");
        listener.set_nonblocking(true).unwrap();
        let state = self.state.clone();
        let upstream = self.upstream;
        std::thread::spawn(move || loop {
            if state.lock().unwrap().listener != generation {
                return; // dropping the listener refuses new connections
            }
            match listener.accept() {
                Ok((client, _)) => {
                    client.set_nonblocking(false).unwrap();
                    let state = state.clone();
                    std::thread::spawn(move || serve(client, upstream, &state));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        });
    }

    /// From now on closes, unanswered, every request signed for `region`
    /// (open connections are cut, so none slips through on one).
    pub fn cut_region(&self, region: &str) {
        let mut state = self.state.lock().unwrap();
        state.cut.push(region.to_string());
        state.connections += 1;
    }

    /// From now on reads every request signed for `region` and never
    /// answers it, holding the connection open.
    pub fn stall_region(&self, region: &str) {
        let mut state = self.state.lock().unwrap();
        state.stalled.push(region.to_string());
        state.connections += 1;
    }

    /// Lets every region through again.
    pub fn restore_regions(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut.clear();
        state.stalled.clear();
        state.connections += 1;
    }

    /// How many requests a region cut has closed or a stall has held.
    pub fn cut_requests(&self) -> usize {
        self.state.lock().unwrap().cut_requests
    }

    /// Refuses new connections and cuts open ones.
    pub fn down(&self) {
        let mut state = self.state.lock().unwrap();
        state.up = false;
        state.listener += 1;
        state.connections += 1;
        drop(state);
        // Let the accept loop notice and drop its listener.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One client connection: a fault if one is armed, else forwarded both ways
/// until either side closes or the connection is cut.
fn serve(mut client: TcpStream, upstream: u16, state: &Arc<Mutex<State>>) {
    let generation = state.lock().unwrap().connections;
    if !state.lock().unwrap().faults.is_empty() {
        // Read the request head, to know which service asks.
        client.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
            match client.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let fault = state.lock().unwrap().faults.pop_front();
        if let Some(fault) = fault {
            let service = service_of(&String::from_utf8_lossy(&head));
            state.lock().unwrap().served.push((service.clone(), fault));
            if fault == Fault::Throttle {
                let _ = client.write_all(throttle_answer(&service).as_bytes());
            }
            let _ = client.shutdown(std::net::Shutdown::Both);
            return;
        }
        // Served meanwhile by another connection: forward what was read.
        let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
            return;
        };
        if server.write_all(&head).is_err() {
            return;
        }
        client.set_read_timeout(None).ok();
        pump(client, server, state, generation);
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let regional = {
        let s = state.lock().unwrap();
        !s.cut.is_empty() || !s.stalled.is_empty()
    };
    if regional {
        requests(client, server, state, generation);
        return;
    }
    pump(client, server, state, generation);
}

/// With a region cut: the answers flow back unchanged, and the requests are
/// read one at a time (head, then `Content-Length` bytes of body), each
/// passed on only when its region is not cut.
fn requests(
    mut client: TcpStream,
    mut server: TcpStream,
    state: &Arc<Mutex<State>>,
    generation: u64,
) {
    let answers = (server.try_clone().unwrap(), client.try_clone().unwrap());
    let back = state.clone();
    std::thread::spawn(move || {
        let (mut from, mut to) = answers;
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Both);
        drop(back);
    });
    let cut = |client: &TcpStream, server: &TcpStream| {
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = server.shutdown(std::net::Shutdown::Both);
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        // The head of the next request.
        let end = loop {
            if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match client.read(&mut buf) {
                Ok(0) | Err(_) => return cut(&client, &server),
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..end]).to_string();
        let region = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
            .and_then(|l| l.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(2))
            .unwrap_or("")
            .to_string();
        {
            let mut s = state.lock().unwrap();
            if s.stalled.contains(&region) {
                s.cut_requests += 1;
                drop(s);
                // Never answered: held until the proxy's state changes.
                while state.lock().unwrap().connections == generation {
                    std::thread::sleep(Duration::from_millis(100));
                }
                return cut(&client, &server);
            }
            if s.connections != generation || s.cut.contains(&region) {
                if s.cut.contains(&region) {
                    s.cut_requests += 1;
                }
                drop(s);
                return cut(&client, &server);
            }
        }
        let length: Option<usize> = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        });
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        if server.write_all(&pending[..end]).is_err() {
            return cut(&client, &server);
        }
        pending.drain(..end);
        if chunked {
            // Not framed by a length: passed on as it comes, unparsed.
            let _ = server.write_all(&pending);
            pump(client, server, state, generation);
            return;
        }
        let mut body = length.unwrap_or(0);
        let now = body.min(pending.len());
        if server.write_all(&pending[..now]).is_err() {
            return cut(&client, &server);
        }
        pending.drain(..now);
        body -= now;
        while body > 0 {
            let want = body.min(buf.len());
            match client.read(&mut buf[..want]) {
                Ok(0) | Err(_) => return cut(&client, &server),
                Ok(n) => {
                    if server.write_all(&buf[..n]).is_err() {
                        return cut(&client, &server);
                    }
                    body -= n;
                }
            }
        }
    }
}

fn pump(client: TcpStream, server: TcpStream, state: &Arc<Mutex<State>>, generation: u64) {
    for (mut from, mut to) in [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ] {
        let state = state.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            loop {
                from.set_read_timeout(Some(Duration::from_millis(200))).ok();
                if state.lock().unwrap().connections != generation {
                    let _ = from.shutdown(std::net::Shutdown::Both);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                    return;
                }
                match from.read(&mut buf) {
                    Ok(0) => {
                        let _ = to.shutdown(std::net::Shutdown::Write);
                        return;
                    }
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        });
    }
}

/// The service in a SigV4 request's credential scope
/// (`Credential=AKID/20261124/us-east-1/s3/aws4_request` → `s3`).
fn service_of(head: &str) -> String {
    head.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .and_then(|l| l.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string()
}

/// AWS's throttling answer, as each service sends it.
fn throttle_answer(service: &str) -> String {
    let (status, body) = match service {
        "s3" => (
            "503 Slow Down",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>".to_string(),
        ),
        "ec2" => (
            "503 Service Unavailable",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>".to_string(),
        ),
        _ => (
            "400 Bad Request",
            "<?xml version=\"1.0\"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>".to_string(),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
