//! The fast mode's formats (the hello that names one, [protocol](crate::protocol)
//! §5) and the whole-file hash each one puts in DONE: [`Format`],
//! [`HashAlgorithm`], [`Hasher`], and `FileHash`, which feeds a file to the
//! hasher in whole runs as it is sent or received.

use super::*;

/// The hello's prefix: `int("0098")` is 98 for a classic peer.
pub(crate) const HELLO_PREFIX: &[u8] = b"0098";
/// The hello's padded length (QUIC's minimum Initial size).
pub(crate) const HELLO_LEN: usize = 1200;

/// A fast-mode wire format chatctl speaks, as its hello marks it (format
/// 1, the hello all spaces, is classic to this chatctl). The formats differ
/// only in the whole-file check DONE carries ([`Format::hash_algorithm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CRC32C per datagram, BLAKE3 of the whole file; the hello ends with a tab.
    V2,
    /// CRC32C per datagram, XXH3-128 of the whole file; the hello ends with a
    /// form feed.
    V3,
}

impl Format {
    /// The format a chatctl receiver offers.
    pub const LATEST: Format = Format::V3;

    /// The hello's last byte: ASCII whitespace that both Python's `int()`
    /// and [`classic::parse_window`](crate::rdt::classic::parse_window)
    /// strip, so a classic sender reads any of these hellos as window 98.
    pub(crate) const fn hello_mark(self) -> u8 {
        match self {
            Format::V2 => b'\t',
            Format::V3 => 0x0c,
        }
    }

    /// The whole-file check in DONE: the one place that maps a format to its hash.
    pub const fn hash_algorithm(self) -> HashAlgorithm {
        match self {
            Format::V2 => HashAlgorithm::Blake3,
            Format::V3 => HashAlgorithm::Xxh3_128,
        }
    }

    /// The format of a chatctl receiver's fast-capable hello: [`HELLO_PREFIX`],
    /// spaces up to [`HELLO_LEN`] − 1 bytes, then the format's mark (None for
    /// anything else, a format-1 hello included).
    pub(crate) fn of_hello(datagram: &[u8]) -> Option<Format> {
        let (&last, body) = datagram.split_last()?;
        if !body.starts_with(HELLO_PREFIX) || !body[HELLO_PREFIX.len()..].iter().all(|&b| b == b' ') {
            return None;
        }
        [Format::V2, Format::V3].into_iter().find(|f| f.hello_mark() == last)
    }

    /// This format's hello.
    pub fn hello(self) -> Vec<u8> {
        let mut v = HELLO_PREFIX.to_vec();
        v.resize(HELLO_LEN - 1, b' ');
        v.push(self.hello_mark());
        v
    }
}

/// Whether `datagram` is a chatctl receiver's fast-capable hello of a format
/// this chatctl sends (`Format::of_hello`).
pub fn is_fast_hello(datagram: &[u8]) -> bool {
    Format::of_hello(datagram).is_some()
}

/// The hello of the format a chatctl receiver offers ([`Format::LATEST`]).
pub fn encode_hello() -> Vec<u8> {
    Format::LATEST.hello()
}

/// The whole-file check DONE carries, by [`Format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HashAlgorithm {
    /// BLAKE3, 32 bytes (format 2).
    #[serde(rename = "BLAKE3")]
    Blake3,
    /// XXH3-128 (format 3): the digest as a big-endian u128, then 16 zero bytes.
    #[serde(rename = "XXH3-128")]
    Xxh3_128,
}

impl HashAlgorithm {
    /// Its usual name (`BLAKE3`, `XXH3-128`).
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Blake3 => "BLAKE3",
            HashAlgorithm::Xxh3_128 => "XXH3-128",
        }
    }

    /// Bytes of DONE's 32-byte hash field the digest fills (the rest are zero).
    pub(crate) const fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Blake3 => 32,
            HashAlgorithm::Xxh3_128 => 16,
        }
    }

    /// A hasher whose [`finalize`](Hasher::finalize) is DONE's hash field.
    pub(crate) fn hasher(self) -> Hasher {
        match self {
            HashAlgorithm::Blake3 => Hasher(HasherState::Blake3(Box::default())),
            HashAlgorithm::Xxh3_128 => Hasher(HasherState::Xxh3(Box::default())),
        }
    }

    /// DONE's hash field for a file of `bytes`, at once.
    pub fn field(self, bytes: &[u8]) -> [u8; 32] {
        let mut h = self.hasher();
        h.update(bytes);
        h.finalize()
    }

    /// DONE's hash field in hex as a person reads it: the digest's bytes, or
    /// all 32 when the padding after it is not zero (a malformed DONE).
    pub fn hex(self, field: &[u8; 32]) -> String {
        let n = if field[self.digest_len()..].iter().all(|&b| b == 0) { self.digest_len() } else { field.len() };
        field[..n].iter().fold(String::with_capacity(2 * n), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

impl std::fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A whole-file hash in progress ([`HashAlgorithm::hasher`]).
#[derive(Clone)]
pub(crate) struct Hasher(HasherState);

#[derive(Clone)]
enum HasherState {
    Blake3(Box<blake3::Hasher>),
    Xxh3(Box<twox_hash::XxHash3_128>),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Hasher").field(&self.algorithm()).finish_non_exhaustive()
    }
}

impl Hasher {
    /// Which hash this is.
    pub(crate) fn algorithm(&self) -> HashAlgorithm {
        match self.0 {
            HasherState::Blake3(_) => HashAlgorithm::Blake3,
            HasherState::Xxh3(_) => HashAlgorithm::Xxh3_128,
        }
    }

    /// Hashes the file's next `bytes`.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            HasherState::Blake3(h) => {
                h.update(bytes);
            }
            HasherState::Xxh3(h) => h.write(bytes),
        }
    }

    /// DONE's 32-byte hash field for what was fed: the BLAKE3 hash, or the
    /// XXH3-128 digest (big-endian) followed by 16 zero bytes.
    pub(crate) fn finalize(&self) -> [u8; 32] {
        match &self.0 {
            HasherState::Blake3(h) => *h.finalize().as_bytes(),
            HasherState::Xxh3(h) => {
                let mut field = [0; 32];
                field[..16].copy_from_slice(&h.finish_128().to_be_bytes());
                field
            }
        }
    }
}

/// Bytes the whole-file hash is fed at once (at least): large enough for
/// BLAKE3's SIMD multi-chunk path (and XXH3's long-input loop), small enough
/// to stay in the file adapters' caches.
pub(crate) const HASH_RUN: u64 = 64 << 10;

/// The whole-file hash of a transfer ([`Format::hash_algorithm`]), fed in
/// order from a [`Source`] or [`Sink`]'s memory where it can, by reading
/// back otherwise.
#[derive(Debug, Clone)]
pub(crate) struct FileHash {
    hasher: Hasher,
    /// Bytes `0..hashed_to` are hashed.
    hashed_to: u64,
    buf: Vec<u8>,
}

/// What [`FileHash`] reads the file from: a [`Source`] or a [`Sink`].
pub(crate) trait HashInput {
    fn held(&self, offset: u64, len: usize) -> &[u8];
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl HashInput for dyn Source + '_ {
    fn held(&self, offset: u64, len: usize) -> &[u8] {
        self.cached(offset, len)
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.read_at(offset, buf)
    }
}

impl HashInput for dyn Sink + '_ {
    fn held(&self, offset: u64, len: usize) -> &[u8] {
        self.cached(offset, len)
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.read_at(offset, buf)
    }
}

impl FileHash {
    /// Nothing hashed yet, with `algorithm`.
    pub(crate) fn new(algorithm: HashAlgorithm) -> Self {
        Self { hasher: algorithm.hasher(), hashed_to: 0, buf: Vec::new() }
    }

    /// How far the hash has got.
    pub(crate) fn hashed_to(&self) -> u64 {
        self.hashed_to
    }

    /// Hashes the file up to `end`: from the memory of `file` while it has
    /// the bytes, else reading them (1 MiB at a time).
    pub(crate) fn feed_to<F: HashInput + ?Sized>(
        &mut self,
        end: u64,
        file: &mut F,
    ) -> Result<(), (u64, std::io::Error)> {
        while self.hashed_to < end {
            let want = (end - self.hashed_to).min(1 << 20) as usize;
            let c = file.held(self.hashed_to, want);
            if !c.is_empty() {
                let c = &c[..c.len().min(want)];
                self.hasher.update(c);
                self.hashed_to += c.len() as u64;
                continue;
            }
            self.buf.resize(want, 0);
            file.read(self.hashed_to, &mut self.buf).map_err(|e| (self.hashed_to, e))?;
            self.hasher.update(&self.buf);
            self.hashed_to += want as u64;
        }
        Ok(())
    }

    /// Like [`feed_to`](Self::feed_to), but only up to the last multiple of
    /// [`HASH_RUN`] at or below `end`: every update then starts and ends on
    /// a BLAKE3 chunk boundary, so whole runs go through its SIMD
    /// multi-chunk path (an update that starts mid-chunk hashes that chunk
    /// one 64-byte block at a time; XXH3 does not mind either way). The
    /// last, partial run is fed by a final `feed_to(size)`.
    pub(crate) fn feed_runs_to<F: HashInput + ?Sized>(
        &mut self,
        end: u64,
        file: &mut F,
    ) -> Result<(), (u64, std::io::Error)> {
        self.feed_to(end - end % HASH_RUN, file)
    }

    /// Feeds `bytes`, the file's bytes at `offset`, straight away if they
    /// are next and large enough for the fast path (65 KB datagrams, which
    /// the file adapters do not keep in memory).
    pub(crate) fn feed_next(&mut self, offset: u64, bytes: &[u8]) {
        if offset == self.hashed_to && bytes.len() as u64 >= HASH_RUN / 4 {
            self.hasher.update(bytes);
            self.hashed_to += bytes.len() as u64;
        }
    }

    /// DONE's hash field for what was fed (the whole file once `hashed_to`
    /// is its size).
    pub(crate) fn finalize(&self) -> [u8; 32] {
        self.hasher.finalize()
    }
}
