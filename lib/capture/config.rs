//! How to analyse: [`Config`].

/// How to analyse.
#[derive(Clone, Debug)]
pub struct Config {
    /// TCP ports of chat servers (13337 by default).
    pub server_ports: Vec<u16>,
    /// Report every UDP datagram of a transfer ([`Event::Datagram`](super::Event::Datagram)).
    pub datagrams: bool,
    /// Cap on out-of-order bytes buffered per TCP direction.
    pub tcp_cap: usize,
    /// Record the points of a time-sequence graph for each UDP transfer.
    pub plot: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_ports: vec![crate::wire::DEFAULT_PORT],
            datagrams: false,
            tcp_cap: super::tcp::DEFAULT_CAP,
            plot: false,
        }
    }
}
