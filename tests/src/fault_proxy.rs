//! A TCP proxy between the product and PostgreSQL that injects the faults a real network and
//! server produce: cut connections, a database that is down, latency, and replies lost after
//! the server already committed (the case retries and idempotency must survive).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
/// A StartupMessage is a few parameters; anything larger is not PostgreSQL talking.
const MAX_STARTUP_LEN: usize = 64 * 1024;

/// What the proxy did, so a test can assert its fault really happened.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyStats {
    /// Connections forwarded to the server (refused ones are not counted here).
    pub accepted: u64,
    /// Open connections closed by `cut_all` or `refuse`.
    pub cut: u64,
    /// Connections closed at once because the proxy was refusing.
    pub refused: u64,
    /// Statements executed by the server whose reply the client never got.
    pub replies_lost: u64,
}

/// Handle to a running proxy; clones share it, and dropping the last one stops it.
#[derive(Clone)]
pub struct FaultProxy {
    guard: Arc<Guard>,
}

/// Owns the accept task, which must not keep itself alive through the handle.
struct Guard {
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.cut_all();
    }
}

struct Shared {
    upstream: String,
    addr: SocketAddr,
    refusing: AtomicBool,
    latency_nanos: AtomicU64,
    /// Bumped to cut: every connection task watches it.
    cuts: watch::Sender<u64>,
    lost: Mutex<Option<LostReplies>>,
    stats: Mutex<ProxyStats>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream` (e.g. "127.0.0.1:5432").
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fault proxy");
        let addr = listener.local_addr().expect("fault proxy address");
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            addr,
            refusing: AtomicBool::new(false),
            latency_nanos: AtomicU64::new(0),
            cuts: watch::Sender::new(0),
            lost: Mutex::new(None),
            stats: Mutex::new(ProxyStats::default()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        FaultProxy {
            guard: Arc::new(Guard { shared, accept }),
        }
    }

    /// The address clients connect to instead of the server's.
    pub fn addr(&self) -> SocketAddr {
        self.shared().addr
    }

    /// `database_url` with its host:port replaced by the proxy's (keeps user, db name, query string).
    pub fn url(&self, database_url: &str) -> String {
        let Some((scheme, rest)) = database_url.split_once("://") else {
            return database_url.to_owned();
        };
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let user = authority.rfind('@').map_or("", |at| &authority[..=at]);
        format!("{scheme}://{user}{}{tail}", self.addr())
    }

    /// Resets every open connection now (both sides closed).
    pub fn cut_all(&self) {
        self.shared().cut_all();
    }

    /// New connections are accepted and closed at once (like a database that is down) until `allow()`; open ones are cut too.
    pub fn refuse(&self) {
        self.shared().refusing.store(true, Ordering::SeqCst);
        self.cut_all();
    }

    /// Lets new connections through again after `refuse()`.
    pub fn allow(&self) {
        self.shared().refusing.store(false, Ordering::SeqCst);
    }

    /// Adds `latency` before forwarding each chunk in both directions (Duration::ZERO to stop).
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.shared().latency_nanos.store(nanos, Ordering::SeqCst);
    }

    /// Loses the reply to the next `times` statements containing `pattern` (case-insensitive) after the server ran them.
    ///
    /// The statement is forwarded and executed, the server's reply is swallowed, and the connection
    /// (both sides) is closed once the server sent ReadyForQuery: the statement (and, for
    /// autocommit or COMMIT, its commit) took effect but the client sees a broken connection.
    pub fn lose_reply_to(&self, pattern: &str, times: usize) {
        let armed = (times > 0).then(|| LostReplies::new(pattern, LossMode::Next(times)));
        *lock(&self.shared().lost) = armed;
    }

    /// Like `lose_reply_to` but for a random fraction (0.0..=1.0) of matching statements, until disarmed; seeded for reproducibility.
    pub fn lose_replies_randomly(&self, pattern: &str, probability: f64, seed: u64) {
        *lock(&self.shared().lost) = Some(LostReplies::new(pattern, LossMode::random(probability, seed)));
    }

    /// Stops losing replies; connections already losing one still close.
    pub fn disarm_lost_replies(&self) {
        *lock(&self.shared().lost) = None;
    }

    /// Counters: connections accepted, connections cut, replies lost (for tests to assert a fault really happened and to print figures).
    pub fn stats(&self) -> ProxyStats {
        *lock(&self.shared().stats)
    }

    fn shared(&self) -> &Shared {
        &self.guard.shared
    }
}

impl Shared {
    fn cut_all(&self) {
        // Counted here, not by the connections, so the figure is right as soon as this returns.
        let open = self.cuts.receiver_count() as u64;
        self.cuts.send_modify(|generation| *generation += 1);
        lock(&self.stats).cut += open;
    }

    fn should_lose(&self, sql: &str) -> bool {
        let mut armed = lock(&self.lost);
        let Some(lost) = armed.as_mut() else { return false };
        let lose = lost.decide(sql);
        if lost.exhausted() {
            *armed = None;
        }
        lose
    }

    async fn delay(&self) {
        let nanos = self.latency_nanos.load(Ordering::SeqCst);
        if nanos > 0 {
            tokio::time::sleep(Duration::from_nanos(nanos)).await;
        }
    }
}

struct LostReplies {
    pattern: String,
    mode: LossMode,
}

enum LossMode {
    Next(usize),
    Random { probability: f64, rng: XorShift },
}

impl LossMode {
    fn random(probability: f64, seed: u64) -> LossMode {
        let rng = XorShift::new(seed);
        LossMode::Random { probability, rng }
    }
}

impl LostReplies {
    fn new(pattern: &str, mode: LossMode) -> LostReplies {
        LostReplies {
            pattern: pattern.to_lowercase(),
            mode,
        }
    }

    fn decide(&mut self, sql: &str) -> bool {
        if !sql.to_lowercase().contains(&self.pattern) {
            return false;
        }
        match &mut self.mode {
            LossMode::Next(left) => {
                *left = left.saturating_sub(1);
                true
            }
            LossMode::Random { probability, rng } => rng.next_f64() < *probability,
        }
    }

    fn exhausted(&self) -> bool {
        matches!(self.mode, LossMode::Next(0))
    }
}

/// xorshift64*: reproducible draws without a `rand` dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Spreads small seeds, and keeps the state off zero, where xorshift stays stuck.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // E.g. out of file descriptors: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if shared.refusing.load(Ordering::SeqCst) {
            lock(&shared.stats).refused += 1;
            continue;
        }
        lock(&shared.stats).accepted += 1;
        let cuts = shared.cuts.subscribe();
        tokio::spawn(serve(shared.clone(), client, cuts));
    }
}

/// Relays one connection until either side closes, a reply is lost, or it is cut.
async fn serve(shared: Arc<Shared>, client: TcpStream, mut cuts: watch::Receiver<u64>) {
    tokio::select! {
        _ = relay(&shared, client) => {}
        _ = cuts.changed() => {}
    }
}

async fn relay(shared: &Shared, mut client: TcpStream) -> io::Result<()> {
    let mut server = TcpStream::connect(&shared.upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    startup(shared, &mut client, &mut server).await?;
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    // One entry per ReadyForQuery the server owes the client: whether to lose that reply.
    let owed = Mutex::new(VecDeque::new());
    tokio::select! {
        end = client_to_server(shared, client_read, server_write, &owed) => end,
        end = server_to_client(shared, server_read, client_write, &owed) => end,
    }
}

/// Declines SSL and GSS encryption itself, so the rest of the session is plaintext it can parse.
async fn startup(shared: &Shared, client: &mut TcpStream, server: &mut TcpStream) -> io::Result<()> {
    loop {
        let mut head = [0u8; 8];
        client.read_exact(&mut head).await?;
        let [l0, l1, l2, l3, c0, c1, c2, c3] = head;
        let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
        let code = u32::from_be_bytes([c0, c1, c2, c3]);
        if len == 8 && (code == SSL_REQUEST || code == GSSENC_REQUEST) {
            client.write_all(b"N").await?;
            continue;
        }
        if !(8..=MAX_STARTUP_LEN).contains(&len) {
            return Err(invalid("startup message length"));
        }
        let mut message = head.to_vec();
        message.resize(len, 0);
        client.read_exact(&mut message[8..]).await?;
        shared.delay().await;
        // StartupMessage or CancelRequest: the server handles both.
        return server.write_all(&message).await;
    }
}

async fn client_to_server(
    shared: &Shared,
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    owed: &Mutex<VecDeque<bool>>,
) -> io::Result<()> {
    let mut tracker = ClientTracker::default();
    let mut buf = Vec::new();
    while read_chunk(&mut from, &mut buf).await? {
        shared.delay().await;
        let mut out = Vec::new();
        for message in take_messages(&mut buf)? {
            // Before forwarding: the server cannot answer a statement the tracker has not seen.
            tracker.observe(shared, &message, owed);
            out.extend_from_slice(&message);
        }
        to.write_all(&out).await?;
    }
    Ok(())
}

/// Follows the client's statements to know which reply to lose.
#[derive(Default)]
struct ClientTracker {
    /// Prepared statement name → SQL: sqlx re-runs a cached statement by name alone.
    statements: HashMap<Vec<u8>, String>,
    /// Whether a statement bound since the last Sync is to lose its reply.
    lose_at_sync: bool,
}

impl ClientTracker {
    fn observe(&mut self, shared: &Shared, message: &[u8], owed: &Mutex<VecDeque<bool>>) {
        let mut fields = message[5..].split(|byte| *byte == 0);
        match message[0] {
            b'P' => {
                if let (Some(name), Some(sql)) = (fields.next(), fields.next()) {
                    let sql = String::from_utf8_lossy(sql).into_owned();
                    self.statements.insert(name.to_vec(), sql);
                }
            }
            b'B' => {
                let statement = fields.nth(1).and_then(|name| self.statements.get(name));
                if let Some(sql) = statement {
                    self.lose_at_sync = self.lose_at_sync || shared.should_lose(sql);
                }
            }
            b'S' => lock(owed).push_back(std::mem::take(&mut self.lose_at_sync)),
            b'Q' => {
                let sql = String::from_utf8_lossy(fields.next().unwrap_or_default());
                lock(owed).push_back(shared.should_lose(&sql));
            }
            b'F' => lock(owed).push_back(false),
            _ => {}
        }
    }
}

async fn server_to_client(
    shared: &Shared,
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    owed: &Mutex<VecDeque<bool>>,
) -> io::Result<()> {
    // The ReadyForQuery ending authentication answers no statement.
    let mut started = false;
    let mut buf = Vec::new();
    while read_chunk(&mut from, &mut buf).await? {
        shared.delay().await;
        let mut out = Vec::new();
        let mut lost = false;
        for message in take_messages(&mut buf)? {
            let losing = started && lock(owed).front() == Some(&true);
            if !losing {
                out.extend_from_slice(&message);
            }
            if message[0] == b'Z' {
                if started {
                    lock(owed).pop_front();
                }
                started = true;
                if losing {
                    lost = true;
                    break;
                }
            }
        }
        // Replies to earlier statements in the same chunk still reach the client.
        to.write_all(&out).await?;
        if lost {
            // Counted before the sockets close, so a test sees it once its query failed.
            lock(&shared.stats).replies_lost += 1;
            return Ok(());
        }
    }
    Ok(())
}

/// Appends what is available to `buf`; false once the peer closed.
async fn read_chunk(from: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.reserve(16 * 1024);
    Ok(from.read_buf(buf).await? > 0)
}

/// Removes the complete `type + length + body` messages from the front of `buf`; a partial one stays.
fn take_messages(buf: &mut Vec<u8>) -> io::Result<Vec<Vec<u8>>> {
    let mut messages = Vec::new();
    let mut at = 0;
    while let Some(len) = buf.get(at + 1..).and_then(|rest| rest.first_chunk::<4>()) {
        let len = u32::from_be_bytes(*len) as usize;
        if len < 4 {
            return Err(invalid("message length"));
        }
        let end = at + 1 + len;
        if buf.len() < end {
            break;
        }
        messages.push(buf[at..end].to_vec());
        at = end;
    }
    buf.drain(..at);
    Ok(messages)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("fault proxy: invalid {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, PgConnection, PgExecutor};

    const UPSTREAM: &str = "127.0.0.1:5432";
    const SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    async fn connect(url: &str) -> PgConnection {
        PgConnection::connect(url).await.expect("connect")
    }

    /// Simple query protocol, as sqlx sends statements without parameters.
    async fn ping(conn: &mut PgConnection) -> bool {
        sqlx::raw_sql("SELECT 1").execute(conn).await.is_ok()
    }

    /// A table of its own per test, seen by direct connections (a temp table would not be).
    async fn scratch_table(direct: &mut PgConnection) -> String {
        let table = format!("fault_proxy_{}", uuid::Uuid::new_v4().simple());
        let create = format!("CREATE TABLE {table} (v int NOT NULL)");
        sqlx::raw_sql(&create).execute(direct).await.expect("create table");
        table
    }

    /// Parameterized, so sqlx prepares it once and then re-runs it by statement name.
    async fn insert(conn: impl PgExecutor<'_>, table: &str, v: i32) -> sqlx::Result<()> {
        let sql = format!("insert into {table} (v) VALUES ($1)");
        sqlx::query(&sql).bind(v).execute(conn).await.map(drop)
    }

    async fn values(direct: &mut PgConnection, table: &str) -> Vec<i32> {
        let select = format!("SELECT v FROM {table} ORDER BY v");
        sqlx::query_scalar(&select)
            .fetch_all(direct)
            .await
            .expect("read directly")
    }

    async fn drop_table(mut direct: PgConnection, table: &str) {
        let drop = format!("DROP TABLE {table}");
        sqlx::raw_sql(&drop).execute(&mut direct).await.expect("drop table");
    }

    #[tokio::test]
    async fn forwards_simple_and_parameterized_queries() {
        let proxy = FaultProxy::start(UPSTREAM).await;
        let url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=prefer";
        let proxied = format!("postgres://postgres@{}/postgres?sslmode=prefer", proxy.addr());
        assert_eq!(proxy.url(url), proxied);
        let mut conn = connect(&proxied).await;
        proxy.set_latency(Duration::from_millis(2));
        for i in 0..5i32 {
            assert!(ping(&mut conn).await, "simple query");
            let next: i32 = sqlx::query_scalar("SELECT $1::int4 + 1")
                .bind(i)
                .fetch_one(&mut conn)
                .await
                .expect("bind");
            assert_eq!(next, i + 1);
        }
        let stats = proxy.stats();
        assert_eq!((stats.accepted, stats.cut, stats.replies_lost), (1, 0, 0), "{stats:?}");
        drop(proxy);
        assert!(!ping(&mut conn).await, "stopped with its last handle");
    }

    #[tokio::test]
    async fn lost_insert_reply_still_commits() {
        let mut direct = connect(SERVER).await;
        let table = scratch_table(&mut direct).await;
        let proxy = FaultProxy::start(UPSTREAM).await;
        let mut conn = connect(&proxy.url(SERVER)).await;
        insert(&mut conn, &table, 1).await.expect("first insert");

        proxy.lose_reply_to("INSERT INTO", 1);
        let lost = insert(&mut conn, &table, 2).await;
        assert!(lost.is_err(), "the client must not see the reply: {lost:?}");
        assert_eq!(proxy.stats().replies_lost, 1);
        assert_eq!(
            values(&mut direct, &table).await,
            vec![1, 2],
            "the lost insert committed"
        );

        let mut fresh = connect(&proxy.url(SERVER)).await;
        insert(&mut fresh, &table, 3).await.expect("armed for one only");
        assert_eq!(values(&mut direct, &table).await, vec![1, 2, 3]);
        drop_table(direct, &table).await;
    }

    #[tokio::test]
    async fn lost_commit_reply_still_commits() {
        let mut direct = connect(SERVER).await;
        let table = scratch_table(&mut direct).await;
        let proxy = FaultProxy::start(UPSTREAM).await;
        let mut conn = connect(&proxy.url(SERVER)).await;

        proxy.lose_reply_to("COMMIT", 1);
        let mut tx = conn.begin().await.expect("begin");
        insert(&mut *tx, &table, 7).await.expect("insert in transaction");
        assert!(tx.commit().await.is_err(), "the client must not see the commit's reply");
        assert_eq!(proxy.stats().replies_lost, 1);
        assert_eq!(values(&mut direct, &table).await, vec![7], "the transaction committed");
        drop_table(direct, &table).await;
    }

    #[tokio::test]
    async fn random_losses_are_seeded_and_disarmed() {
        let draws = |seed| {
            let mut lost = LostReplies::new("insert", LossMode::random(0.3, seed));
            (0..1000).map(|_| lost.decide("INSERT INTO t")).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        let count = draws(7).into_iter().filter(|lost| *lost).count();
        assert!((200..400).contains(&count), "{count} of 1000 lost at p = 0.3");

        let proxy = FaultProxy::start(UPSTREAM).await;
        proxy.lose_replies_randomly("select", 1.0, 42);
        assert!(!ping(&mut connect(&proxy.url(SERVER)).await).await);
        proxy.disarm_lost_replies();
        assert!(ping(&mut connect(&proxy.url(SERVER)).await).await, "disarmed");
        assert_eq!(proxy.stats().replies_lost, 1);
    }

    #[tokio::test]
    async fn refuse_then_allow_and_cut_all() {
        let proxy = FaultProxy::start(UPSTREAM).await;
        let url = proxy.url(SERVER);
        let mut open = connect(&url).await;

        proxy.refuse();
        assert!(!ping(&mut open).await, "refuse cuts open connections");
        assert!(PgConnection::connect(&url).await.is_err(), "refused while down");

        proxy.allow();
        let mut conn = connect(&url).await;
        assert!(ping(&mut conn).await, "allowed again");
        proxy.cut_all();
        assert!(!ping(&mut conn).await, "cut");

        let stats = proxy.stats();
        assert_eq!((stats.accepted, stats.cut), (2, 2), "{stats:?}");
        assert!(stats.refused >= 1, "{stats:?}");
    }
}
