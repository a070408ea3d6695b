//! A TCP forwarder in front of a real server (NetBox) that a test can cut:
//! "NetBox is down" without stopping the shared NetBox other tests use.
//! While cut, it closes every connection it has and every new one at once,
//! which a client sees as NetBox unreachable. Loopback only.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        Proxy::serve(TcpListener::bind("127.0.0.1:0").unwrap(), upstream)
    }

    /// Forwards 127.0.0.1:<port> inside the network namespace `netns` (a
    /// name of `ip netns`) to `upstream` in this process's namespace: how a
    /// Kea in a namespace of its own (tests/support/src/kea6.rs) reaches
    /// the tests' NetBox on the host's loopback. Only the listening socket
    /// is made in there, by a thread that enters it and ends.
    pub fn start_in_netns(upstream: SocketAddr, netns: &str) -> Proxy {
        let path = format!("/var/run/netns/{netns}");
        let listener = std::thread::spawn(move || {
            let ns =
                std::fs::File::open(&path).unwrap_or_else(|e| panic!("proxy: open {path}: {e}"));
            // SAFETY: setns on a namespace file we hold open; it moves only
            // this short-lived thread.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "proxy: setns {path}: {}",
                std::io::Error::last_os_error()
            );
            TcpListener::bind("127.0.0.1:0").unwrap()
        })
        .join()
        .expect("proxy: listener thread");
        Proxy::serve(listener, upstream)
    }

    fn serve(listener: TcpListener, upstream: SocketAddr) -> Proxy {
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        {
            let (down, stop, live) = (down.clone(), stop.clone(), live.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let client = match listener.accept() {
                        Ok((c, _)) => c,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    if down.load(Ordering::Acquire) {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    let _ = client.set_nonblocking(false);
                    let Ok(server) = TcpStream::connect(upstream) else {
                        continue;
                    };
                    let mut l = live.lock().unwrap();
                    l.retain(|s| s.peer_addr().is_ok());
                    l.push(client.try_clone().unwrap());
                    l.push(server.try_clone().unwrap());
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    std::thread::spawn(move || pump(client, server));
                    std::thread::spawn(move || pump(s2, c2));
                }
            });
        }
        Proxy {
            port,
            down,
            stop,
            live,
        }
    }

    /// Cuts (true) or restores (false) the way to the server.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Release);
        if down {
            for s in self.live.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.set_down(true);
    }
}
