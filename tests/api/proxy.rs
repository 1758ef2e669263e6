//! A TCP proxy on loopback whose connections the test can cut, as a network or a
//! load balancer would: the way to cut off a real browser's connection.

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

pub struct Proxy {
    pub port: u16,
    /// The forwarding tasks of open connections: aborting one drops both sockets.
    open: Arc<Mutex<Vec<AbortHandle>>>,
    /// While true, new connections are accepted but not forwarded (they wait).
    held: watch::Sender<bool>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `target_port`.
    pub async fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (held, watch_held) = watch::channel(false);
        let registry = open.clone();
        actix_web::rt::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut held = watch_held.clone();
                let task = actix_web::rt::spawn(async move {
                    // unwrap: the sender lives as long as the proxy.
                    held.wait_for(|held| !held).await.unwrap();
                    let mut outbound = TcpStream::connect(("127.0.0.1", target_port))
                        .await
                        .expect("the proxy reaches the app");
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                registry.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy { port, open, held }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Closes every open connection and holds new ones until `release`.
    pub fn cut_and_hold(&self) {
        self.held.send_replace(true);
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Forwards the held connections, and new ones, again.
    pub fn release(&self) {
        self.held.send_replace(false);
    }
}
