//! The room server: the whole server side of [the protocol](crate::protocol) on tokio.
//!
//! ```no_run
//! # async fn demo() -> Result<(), chatctl::server::ServerError> {
//! use chatctl::server::{Config, PortSpec, Server};
//! let config = Config { listen: "127.0.0.1:0".parse().unwrap(), ports: PortSpec::Ephemeral { max: 16 }, ..Config::default() };
//! let server = Server::bind(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(async { tokio::signal::ctrl_c().await.ok(); }).await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! The public API is [`Server`] (binds and runs), [`Handle`] (observes a
//! running server), and [`Config`] and [`PortSpec`] (what the flags turn
//! into). Inside:
//! - `config`: the configuration and its defaults.
//! - `ports`: the port pool; a `ports::PortGuard` returns its port on drop,
//!   so ports come back however a connection ends. One port per room slot is
//!   kept for update connections.
//! - `room`: the shared room handle; each user has a bounded update queue,
//!   and a user whose queue overflows is disconnected (nobody else waits).
//! - `files`: exactly the regular files directly in the download folder.
//! - `shutdown`: the shutdown signal every task honours, and the task tracker.
//! - `session`: one main connection: join (with the update connection
//!   accepted only from the client's IP within the join timeout, the main
//!   connection watched meanwhile), the request handlers, the update
//!   connection's task (a reset or failed write ends the session), leave
//!   and cleanup.
//! - `transfer`: TCP and classic UDP downloads, and the fast-mode seam.
//! - `limits`: the per-address cap on connections that have not joined.
//! - `logs`: rate-limited logging of what a remote peer can trigger.
//! - `input`: what the main connection's input means (a request, `4TT9`,
//!   `4999`, the end); framing is the shared `connection::Connection`.
//!
//! # Limits against hostile load
//! A connection must join within [`Config::unjoined_timeout`]; one address
//! holds at most [`Config::max_unjoined_per_host`] connections that have not
//! joined, the server at most [`Config::max_connections`]; over a cap a
//! connection is reset at once, so accepting never waits. A user has at most
//! [`Config::max_transfers_per_user`] transfers in flight (`4062` past it).

mod config;
mod files;
mod input;
mod limits;
mod logs;
mod ports;
mod room;
mod session;
mod shutdown;
mod transfer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use config::{Config, PortSpec, PortSpecError};
pub(crate) use ports::PortPool;
pub(crate) use room::Room;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed (e.g. address in use).
        #[source]
        source: std::io::Error,
    },
}

/// A bound server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: Arc<Config>,
    handle: Handle,
}

/// A cheap view of a running server's state, for tests and monitoring.
#[derive(Clone, Debug)]
pub struct Handle {
    room: Room,
    pool: PortPool,
}

impl Handle {
    /// Pool ports in use (update connections and transfers).
    pub fn ports_in_use(&self) -> usize {
        self.pool.in_use()
    }

    /// Users in the room, including joins in progress.
    pub fn users(&self) -> usize {
        self.room.len()
    }
}

impl Server {
    /// Binds the main listening socket.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let slots = config.ports.room_slots(config.max_users);
        let handle = Handle { room: Room::new(slots, config.update_queue), pool: PortPool::new(config.ports, slots) };
        Ok(Server { listener, config: Arc::new(config), handle })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// A handle to observe the server while it runs.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Serves until `shutdown` completes, then closes every connection and
    /// transfer, frees every port and returns once all tasks have ended.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (trigger, signal) = shutdown::Shutdown::new();
        let tracker = shutdown::Tracker::new();
        let limit = Arc::new(Semaphore::new(self.config.max_connections));
        let hosts = limits::Hosts::new(self.config.max_unjoined_per_host);
        let logs = logs::Logs::new(self.config.log_summary_every);
        let flusher = tokio::spawn(logs.clone().flush_every_period());
        tracing::info!(addr = %self.local_addr(), "listening on {}", self.local_addr());
        let transfers = match transfer_runtime() {
            Ok(rt) => TransferRuntime(Some(rt)),
            Err(e) => {
                tracing::warn!(error = %e, "downloads share the chat's threads: cannot start their own runtime");
                TransferRuntime(None)
            }
        };
        let on = transfers.0.as_ref().map_or_else(tokio::runtime::Handle::current, |rt| rt.handle().clone());
        let ctx = session::Ctx::new(self.config.clone(), &self.handle, on, logs.clone(), signal, tracker.token());
        tokio::pin!(shutdown);
        loop {
            // Accepting never waits on a limit: a connection over one is
            // closed at once, so one host cannot stall everyone else's.
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = &mut shutdown => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let admitted = match limit.clone().try_acquire_owned() {
                        Err(_) => Err("too many connections"),
                        Ok(permit) => hosts
                            .enter(peer.ip())
                            .map(|unjoined| (permit, unjoined))
                            .ok_or("too many from this address that have not joined"),
                    };
                    let (permit, unjoined) = match admitted {
                        Ok(a) => a,
                        Err(why) => {
                            limits::refuse(stream);
                            logs::limited!(logs, peer.ip(), "connection refused" => warn!(%peer, "connection refused: {why}"));
                            continue;
                        }
                    };
                    logs::limited!(logs, peer.ip(), debug!(%peer,), "connection accepted");
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        session::run(ctx, stream, peer, unjoined).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        flusher.abort();
        tracing::info!("shutting down");
        drop(self.listener);
        let _ = trigger.send(true);
        drop(ctx);
        if tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.is_err() {
            tracing::warn!("some tasks did not end within 5 s");
        }
        drop(transfers);
        tracing::info!(ports_in_use = self.handle.pool.in_use(), "stopped");
    }
}

/// The downloads' runtime, shut down without waiting when dropped: the
/// server may be dropped inside another runtime (a task aborted), where a
/// runtime must not block to shut down.
struct TransferRuntime(Option<tokio::runtime::Runtime>);

impl Drop for TransferRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The runtime downloads run on: two workers, apart from the chat, which
/// needs one thread (`chatctl serve` runs it on a current-thread runtime:
/// no wake-up crosses threads, as in a one-thread server such as ngircd).
fn transfer_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("transfers").enable_all().build()
}
