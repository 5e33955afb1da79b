//! `strata start` driven by clients nobody here wrote: the `tokio-postgres`
//! driver (extended protocol, binary formats, portals, cancel) and `psql`
//! (simple protocol), against a real server process that is stopped with
//! signals and restarted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rust_decimal::Decimal;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls};

/// A running `strata start` process; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    /// The metrics endpoint's port, when started with `--http`.
    http_port: Option<u16>,
}

/// The port of the first "on 127.0.0.1:PORT" or "http://127.0.0.1:PORT" in `line`.
fn port_in(line: &str, marker: &str) -> Option<u16> {
    let rest = line.split(marker).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

impl Server {
    fn start(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["start", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn strata start");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (mut port, mut http_port) = (None, None);
        let wants_http = extra.contains(&"--http");
        while port.is_none() || (wants_http && http_port.is_none()) {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).expect("read the server's stdout");
            assert!(n > 0, "the server exited before listening");
            port = port.or_else(|| port_in(&line, " protocol on 127.0.0.1:"));
            http_port = http_port.or_else(|| port_in(&line, "http://127.0.0.1:"));
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Server { child, port: port.expect("port"), http_port }
    }

    fn url(&self) -> String {
        format!("host=127.0.0.1 port={} user=tester dbname=strata", self.port)
    }

    /// Sends `signal` and waits for the process to exit; returns its exit code.
    fn stop(mut self, signal: i32) -> Option<i32> {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "server did not exit after signal {signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SIGKILL: i32 = libc::SIGKILL;
const SIGTERM: i32 = libc::SIGTERM;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

async fn connect(server: &Server) -> Client {
    let (client, connection) =
        tokio_postgres::connect(&server.url(), NoTls).await.expect("connect to strata");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn code(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.code()
}

/// DATE in its binary form: days since 2000-01-01.
#[derive(Debug, PartialEq)]
struct PgDate(i32);

impl<'a> FromSql<'a> for PgDate {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> Result<PgDate, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgDate(i32::from_be_bytes(raw.try_into()?)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::DATE
    }
}

#[test]
fn extended_protocol_round_trips_every_type_in_binary() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        c.batch_execute(
            "CREATE TABLE t (id INT PRIMARY KEY, small SMALLINT, big BIGINT, ok BOOLEAN, \
             r REAL, d DOUBLE PRECISION, n NUMERIC(12,3), name VARCHAR(20), code CHAR(4), \
             raw BYTEA, day DATE, at TIMESTAMP)",
        )
        .await
        .expect("create");
        let insert = c
            .prepare("INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
            .await
            .expect("prepare insert");
        assert_eq!(
            insert.params(),
            &[
                Type::INT4,
                Type::INT2,
                Type::INT8,
                Type::BOOL,
                Type::FLOAT4,
                Type::FLOAT8,
                Type::NUMERIC,
                Type::VARCHAR,
                Type::BPCHAR,
                Type::BYTEA,
                Type::DATE,
                Type::TIMESTAMP
            ]
        );
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let n: Decimal = "-12345.678".parse().unwrap();
        // The date is passed as text: the driver has no DATE type without chrono.
        let insert_text_date = c
            .prepare_typed(
                "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::date, $12)",
                &[
                    Type::INT4,
                    Type::INT2,
                    Type::INT8,
                    Type::BOOL,
                    Type::FLOAT4,
                    Type::FLOAT8,
                    Type::NUMERIC,
                    Type::VARCHAR,
                    Type::BPCHAR,
                    Type::BYTEA,
                    Type::TEXT,
                    Type::TIMESTAMP,
                ],
            )
            .await
            .expect("prepare typed");
        let changed = c
            .execute(
                &insert_text_date,
                &[
                    &1i32,
                    &-7i16,
                    &(i64::MAX - 1),
                    &true,
                    &1.5f32,
                    &-2.25f64,
                    &n,
                    &"héllo",
                    &"ab",
                    &vec![0u8, 1, 255],
                    &"2024-02-29",
                    &at,
                ],
            )
            .await
            .expect("insert");
        assert_eq!(changed, 1);
        let row = c.query_one("SELECT * FROM t WHERE id = $1", &[&1i32]).await.expect("select");
        assert_eq!(row.get::<_, i32>("id"), 1);
        assert_eq!(row.get::<_, i16>("small"), -7);
        assert_eq!(row.get::<_, i64>("big"), i64::MAX - 1);
        assert!(row.get::<_, bool>("ok"));
        assert_eq!(row.get::<_, f32>("r"), 1.5);
        assert_eq!(row.get::<_, f64>("d"), -2.25);
        assert_eq!(row.get::<_, Decimal>("n"), n);
        assert_eq!(row.get::<_, Decimal>("n").to_string(), "-12345.678");
        assert_eq!(row.get::<_, String>("name"), "héllo");
        assert_eq!(row.get::<_, String>("code"), "ab  ", "CHAR(4) is blank-padded");
        assert_eq!(row.get::<_, Vec<u8>>("raw"), vec![0, 1, 255]);
        // 2024-02-29 is 8825 days after 2000-01-01.
        assert_eq!(row.get::<_, PgDate>("day"), PgDate(8825));
        assert_eq!(row.get::<_, SystemTime>("at"), at);
        // NULLs in every column but the key.
        c.execute("INSERT INTO t (id) VALUES ($1)", &[&2i32]).await.expect("insert nulls");
        let row = c.query_one("SELECT n, name, raw FROM t WHERE id = 2", &[]).await.unwrap();
        assert_eq!(row.get::<_, Option<Decimal>>(0), None);
        assert_eq!(row.get::<_, Option<String>>(1), None);
        assert_eq!(row.get::<_, Option<Vec<u8>>>(2), None);
        // The simple protocol returns the same values as text.
        let text = c.simple_query("SELECT n, day, at, code FROM t WHERE id = 1").await.unwrap();
        let tokio_postgres::SimpleQueryMessage::Row(row) = &text[1] else {
            panic!("expected a row: {text:?}")
        };
        assert_eq!(row.get(0), Some("-12345.678"));
        assert_eq!(row.get(1), Some("2024-02-29"));
        assert_eq!(row.get(2), Some("2023-11-14 22:13:20.123456"));
        assert_eq!(row.get(3), Some("ab  "));
    });
}

#[test]
fn errors_carry_sqlstates_and_transactions_follow_postgres_rules() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let mut a = connect(&server).await;
        let b = connect(&server).await;
        // Settings drivers send unasked are accepted (benchmark drivers set this one).
        a.batch_execute("SET synchronous_commit = on; SET application_name = 'test'")
            .await
            .unwrap();
        a.batch_execute("CREATE TABLE acct (id INT PRIMARY KEY, bal INT CHECK (bal >= 0))")
            .await
            .unwrap();
        a.execute("INSERT INTO acct VALUES (1, 10), (2, 0)", &[]).await.unwrap();

        let e = a.query("SELECT * FROM missing", &[]).await.expect_err("no table");
        assert_eq!(code(&e), Some(&SqlState::UNDEFINED_TABLE));
        let e = a.execute("INSERT INTO acct VALUES (1, 5)", &[]).await.expect_err("dup");
        assert_eq!(code(&e), Some(&SqlState::UNIQUE_VIOLATION));
        let e = a.execute("UPDATE acct SET bal = -1 WHERE id = 2", &[]).await.expect_err("check");
        assert_eq!(code(&e), Some(&SqlState::CHECK_VIOLATION));
        let e = a.query("SELEC 1", &[]).await.expect_err("syntax");
        assert_eq!(code(&e), Some(&SqlState::SYNTAX_ERROR));

        // An error inside a transaction aborts it until ROLLBACK.
        let tx = a.transaction().await.unwrap();
        let e = tx.query("SELECT 1/0", &[]).await.expect_err("division");
        assert_eq!(code(&e), Some(&SqlState::DIVISION_BY_ZERO));
        let e = tx.query("SELECT 1", &[]).await.expect_err("aborted");
        assert_eq!(code(&e), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
        tx.rollback().await.unwrap();
        assert_eq!(a.query_one("SELECT 1 + 1", &[]).await.unwrap().get::<_, i32>(0), 2);

        // ROLLBACK TO SAVEPOINT leaves the aborted state.
        a.batch_execute("BEGIN; SAVEPOINT s; UPDATE acct SET bal = 11 WHERE id = 1").await.unwrap();
        a.batch_execute("SELECT * FROM missing").await.expect_err("missing");
        a.batch_execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
        a.batch_execute("UPDATE acct SET bal = 12 WHERE id = 1; COMMIT").await.unwrap();
        let bal: i32 = b.query_one("SELECT bal FROM acct WHERE id = 1", &[]).await.unwrap().get(0);
        assert_eq!(bal, 12);

        // First committer wins; the loser gets 40001 at COMMIT.
        let tx = a.transaction().await.unwrap();
        tx.execute("UPDATE acct SET bal = bal - 1 WHERE id = 1", &[]).await.unwrap();
        b.execute("UPDATE acct SET bal = bal + 100 WHERE id = 1", &[]).await.unwrap();
        let e = tx.commit().await.expect_err("conflict");
        assert_eq!(code(&e), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
        let bal: i32 = a.query_one("SELECT bal FROM acct WHERE id = 1", &[]).await.unwrap().get(0);
        assert_eq!(bal, 112);
    });
}

#[test]
fn portals_fetch_rows_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let mut c = connect(&server).await;
        c.batch_execute("CREATE TABLE n (i INT PRIMARY KEY)").await.unwrap();
        let values: Vec<String> = (1..=25).map(|i| format!("({i})")).collect();
        c.batch_execute(&format!("INSERT INTO n VALUES {}", values.join(","))).await.unwrap();
        let tx = c.transaction().await.unwrap();
        let stmt = tx.prepare("SELECT i FROM n WHERE i > $1 ORDER BY i").await.unwrap();
        let portal = tx.bind(&stmt, &[&5i32]).await.unwrap();
        let mut seen = Vec::new();
        let mut batches = 0;
        loop {
            let rows = tx.query_portal(&portal, 7).await.unwrap();
            batches += 1;
            seen.extend(rows.iter().map(|r| r.get::<_, i32>(0)));
            if rows.len() < 7 {
                break;
            }
        }
        assert_eq!(seen, (6..=25).collect::<Vec<_>>());
        assert_eq!(batches, 3, "20 rows in batches of 7");
        tx.commit().await.unwrap();
    });
}

#[test]
fn a_running_query_is_cancelled_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        c.batch_execute("CREATE TABLE n (i INT PRIMARY KEY)").await.unwrap();
        let values: Vec<String> = (1..=400).map(|i| format!("({i})")).collect();
        c.batch_execute(&format!("INSERT INTO n VALUES {}", values.join(","))).await.unwrap();
        let token = c.cancel_token();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            token.cancel_query(NoTls).await
        });
        let started = Instant::now();
        let e = c
            .query("SELECT count(*) FROM n a, n b, n c WHERE a.i + b.i + c.i < 0", &[])
            .await
            .expect_err("cancelled");
        canceller.await.unwrap().expect("cancel request sent");
        assert_eq!(code(&e), Some(&SqlState::QUERY_CANCELED), "{e}");
        assert!(started.elapsed() < Duration::from_secs(60));
        let n: i64 = c.query_one("SELECT count(*) FROM n", &[]).await.unwrap().get(0);
        assert_eq!(n, 400);
    });
}

#[test]
fn connections_past_the_limit_are_refused_with_53300() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-connections", "2"]);
    runtime().block_on(async {
        let first = connect(&server).await;
        let _second = connect(&server).await;
        let Err(e) = tokio_postgres::connect(&server.url(), NoTls).await else {
            panic!("a third connection was accepted")
        };
        assert_eq!(code(&e), Some(&SqlState::TOO_MANY_CONNECTIONS), "{e}");
        drop(first);
        // The slot frees when a client leaves.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tokio_postgres::connect(&server.url(), NoTls).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    assert_eq!(code(&e), Some(&SqlState::TOO_MANY_CONNECTIONS), "{e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("slot never freed: {e}"),
            }
        }
    });
}

#[test]
fn garbage_on_one_connection_harms_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        c.batch_execute("CREATE TABLE k (id INT PRIMARY KEY)").await.unwrap();
        for garbage in [
            &b"\x00\x00\x00\x08\x04\xd2\x16\x2f"[..], // SSL request, then nothing
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\x00\x00\x00\x03",                 // length below the minimum
            b"\x7f\xff\xff\xff\x00\x03\x00\x00", // a 2 GiB startup packet
        ] {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _ = s.write_all(garbage);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut sink = Vec::new();
            // The server answers or hangs up; it never stalls.
            let _ = s.read_to_end(&mut sink);
        }
        c.execute("INSERT INTO k VALUES (1)", &[]).await.expect("still serving");
        let n: i64 = c.query_one("SELECT count(*) FROM k", &[]).await.unwrap().get(0);
        assert_eq!(n, 1);
    });
}

/// A startup message for user `tester`, database `strata` (trust login).
fn startup_message() -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec(); // protocol 3.0
    for (k, v) in [("user", "tester"), ("database", "strata")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend(body);
    msg
}

/// xorshift64*: a seeded generator, so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One random frontend message after a good startup: a real or unknown
/// type byte; a payload of random bytes or of pieces of valid messages
/// (names, NUL-terminated SQL, counts, format codes); a length that is
/// right, short, long, negative or huge; and the whole perhaps cut short.
fn random_message(rng: &mut Rng) -> Vec<u8> {
    const TYPES: &[u8] = b"QPBEDSCHXdcfpF?\x00";
    let kind = TYPES[rng.below(TYPES.len() as u64) as usize];
    let mut payload = Vec::new();
    for _ in 0..rng.below(6) {
        match rng.below(5) {
            0 => payload.extend_from_slice(b"SELECT 1\0"),
            1 => payload.extend_from_slice(b"s1\0"),
            2 => payload.extend_from_slice(&(rng.below(5) as u16).to_be_bytes()),
            3 => payload.extend_from_slice(&(rng.next() as i32).to_be_bytes()),
            _ => payload.extend((0..rng.below(16)).map(|_| rng.next() as u8)),
        }
    }
    let right = payload.len() as i64 + 4;
    let length: i64 = match rng.below(6) {
        0 => right - 1 - rng.below(4) as i64,
        1 => right + 1 + rng.below(64) as i64,
        2 => -1,
        3 => 0x7fff_ffff,
        _ => right,
    };
    let mut msg = vec![kind];
    msg.extend_from_slice(&(length as i32).to_be_bytes());
    msg.extend(payload);
    if rng.below(4) == 0 {
        let cut = rng.below(msg.len() as u64) as usize;
        msg.truncate(cut);
    }
    msg
}

#[test]
fn random_and_truncated_messages_never_stall_or_harm_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let seed = std::env::var("STRATA_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
            | 1,
    );
    eprintln!("protocol fuzz seed {seed} (replay with STRATA_FUZZ_SEED={seed})");
    let mut rng = Rng(seed);
    runtime().block_on(async {
        let c = connect(&server).await;
        c.batch_execute("CREATE TABLE k (id INT PRIMARY KEY)").await.unwrap();
        for case in 0..200 {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(&startup_message()).unwrap();
            let mut input = Vec::new();
            for _ in 0..1 + rng.below(3) {
                input.extend(random_message(&mut rng));
            }
            // The server may hang up before reading everything: ignore write errors.
            let _ = s.write_all(&input);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut sink = Vec::new();
            match s.read_to_end(&mut sink) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                Err(e) => panic!("case {case} (seed {seed}): {e} after sending {input:02x?}"),
            }
            // Every reply the server sent is a whole message: a type byte and
            // a length that fits what followed.
            let mut rest = &sink[..];
            while !rest.is_empty() {
                assert!(rest.len() >= 5, "case {case}: torn reply {sink:02x?}");
                let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
                assert!(len >= 4 && rest.len() > len, "case {case}: torn reply {sink:02x?}");
                rest = &rest[1 + len..];
            }
        }
        // A Bind that claims five parameter formats and holds none: the
        // client hears FATAL 08P01 before the connection closes.
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(&startup_message()).unwrap();
        s.write_all(&[b'B', 0, 0, 0, 8, 0, 0, 0, 5]).unwrap();
        let mut said = Vec::new();
        s.read_to_end(&mut said).expect("the server hangs up");
        let said = String::from_utf8_lossy(&said);
        assert!(said.contains("FATAL") && said.contains("08P01"), "{said:?}");

        c.execute("INSERT INTO k VALUES (1)", &[]).await.expect("still serving");
        let n: i64 = c.query_one("SELECT count(*) FROM k", &[]).await.unwrap().get(0);
        assert_eq!(n, 1);
    });
}

/// A frontend message: its type byte, then its length and `body`.
fn frontend(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut msg = vec![kind];
    msg.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    msg.extend_from_slice(body);
    msg
}

/// The type bytes of the whole backend messages in `bytes`; panics on a torn one.
fn message_kinds(bytes: &[u8]) -> Vec<u8> {
    let mut kinds = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "torn reply {bytes:02x?}");
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        assert!(len >= 4 && rest.len() > len, "torn reply {bytes:02x?}");
        kinds.push(rest[0]);
        rest = &rest[1 + len..];
    }
    kinds
}

#[test]
fn each_round_of_replies_arrives_in_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&startup_message()).unwrap();
    let mut startup = Vec::new();
    while !startup.ends_with(b"Z\0\0\0\x05I") {
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("startup replies");
        assert!(n > 0, "the server hung up during startup");
        startup.extend_from_slice(&buf[..n]);
    }
    message_kinds(&startup);

    // Parse, Bind, Describe, Execute and Sync in one write, as drivers send
    // them; the replies are held until ReadyForQuery and sent with one write,
    // so one read returns them all. Then the same with an error, which skips
    // to Sync, and a simple query.
    let unnamed_round = |sql: &str| {
        let mut parse = vec![0];
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(b"\0\0\0");
        let mut round = frontend(b'P', &parse);
        round.extend(frontend(b'B', &[0; 8])); // no parameters, text results
        round.extend(frontend(b'D', b"P\0"));
        round.extend(frontend(b'E', &[0; 5])); // every row
        round.extend(frontend(b'S', b""));
        round
    };
    for (input, replies) in [
        (unnamed_round("SELECT 1 + 1"), &b"12TDCZ"[..]),
        (unnamed_round("SELEKT 1"), b"EZ"),
        (frontend(b'Q', b"SELECT 1; SELECT 2\0"), b"TDCTDCZ"),
        (unnamed_round("SELECT 'still serving'"), b"12TDCZ"),
    ] {
        s.write_all(&input).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).expect("replies");
        assert_eq!(message_kinds(&buf[..n]), replies, "{:?}", String::from_utf8_lossy(&buf[..n]));
    }
}

#[test]
fn sigterm_exits_cleanly_and_sigkill_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        c.batch_execute("CREATE TABLE log (id INT PRIMARY KEY, note TEXT)").await.unwrap();
        for i in 0..50 {
            c.execute("INSERT INTO log VALUES ($1, 'before term')", &[&i]).await.unwrap();
        }
    });
    assert_eq!(server.stop(SIGTERM), Some(0), "SIGTERM is a clean shutdown");

    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let n: i64 = c.query_one("SELECT count(*) FROM log", &[]).await.unwrap().get(0);
        assert_eq!(n, 50);
        for i in 50..100 {
            c.execute("INSERT INTO log VALUES ($1, 'before kill')", &[&i]).await.unwrap();
        }
    });
    server.stop(SIGKILL);

    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        let n: i64 = c.query_one("SELECT count(*) FROM log", &[]).await.unwrap().get(0);
        assert_eq!(n, 100, "every acknowledged insert survived SIGKILL");
    });
}

/// Runs psql against the server, or says why not.
fn psql(server: &Server, args: &[&str]) -> Option<std::process::Output> {
    let found = Command::new("psql").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipping the psql checks: psql is not installed");
        return None;
    }
    Some(
        Command::new("psql")
            .args(["-X", "-h", "127.0.0.1", "-p", &server.port.to_string(), "-U", "tester"])
            .args(["-d", "strata"])
            .args(args)
            .output()
            .expect("run psql"),
    )
}

#[test]
fn psql_runs_scripts_and_reports_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let Some(out) = psql(
        &server,
        &[
            "-c",
            "CREATE TABLE t (id INT PRIMARY KEY, name TEXT, price NUMERIC(6,2))",
            "-c",
            "INSERT INTO t VALUES (1, 'one', 1.5), (2, NULL, NULL)",
            "-c",
            "SELECT * FROM t ORDER BY id",
        ],
    ) else {
        return;
    };
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "CREATE TABLE\nINSERT 0 2\n id | name | price \n----+------+-------\n  1 | one  |  1.50\n  2 |      |      \n(2 rows)\n\n"
    );
    let out = psql(
        &server,
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "SELECT * FROM t WHERE id = 1/0",
        ],
    )
    .expect("psql is installed");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("22012") && stderr.contains("division by zero"), "{stderr}");
}

#[test]
fn psql_describes_tables_indexes_and_databases() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let Some(out) = psql(
        &server,
        &[
            "-c",
            "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL DEFAULT 'x', \
             price NUMERIC(10,2), CONSTRAINT price_positive CHECK (price > 0))",
            "-c",
            "CREATE INDEX items_name ON items (name)",
            "-c",
            "CREATE TABLE log (line TEXT)",
        ],
    ) else {
        return;
    };
    assert!(out.status.success(), "{out:?}");
    let run = |command: &str| {
        let out = psql(&server, &["-c", command]).expect("psql is installed");
        assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dt = run("\\dt");
    assert!(dt.contains(" public | items | table | strata"), "{dt}");
    assert!(dt.contains(" public | log   | table | strata"), "{dt}");
    assert!(dt.contains("(2 rows)"), "{dt}");

    let d = run("\\d items");
    for line in [
        "Table \"public.items\"",
        " id     | integer               |           | not null | ",
        " name   | character varying(20) |           | not null | 'x'",
        " price  | numeric(10,2)         |           |          | ",
        "Indexes:",
        "    \"items_pkey\" PRIMARY KEY, btree (id)",
        "    \"items_name\" btree (name)",
        "Check constraints:",
        "    \"price_positive\" CHECK (price > 0)",
    ] {
        assert!(d.contains(line), "{line:?} missing from:\n{d}");
    }

    let di = run("\\d items_name");
    assert!(di.contains("Index \"public.items_name\""), "{di}");
    assert!(di.contains("btree, for table \"public.items\""), "{di}");

    let l = run("\\l");
    assert!(l.contains(" strata | strata | UTF8"), "{l}");

    let missing = psql(&server, &["-c", "\\d nosuch"]).expect("psql is installed");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("Did not find any relation named"),
        "{missing:?}"
    );
}

/// One HTTP/1.1 GET (or `method`) against the metrics endpoint: status line and body.
fn http(port: u16, method: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

/// The value of the sample `name` (with its labels) in a Prometheus text body.
fn sample(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {name} in\n{body}"))
        .parse()
        .expect("a number")
}

#[test]
fn metrics_endpoint_counts_what_the_server_did() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--http", "127.0.0.1:0"]);
    let port = server.http_port.expect("http port");
    assert_eq!(http(port, "GET", "/health"), ("HTTP/1.1 200 OK".to_string(), "ok\n".to_string()));
    let (status, _) = http(port, "GET", "/nowhere");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http(port, "POST", "/metrics");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");

    runtime().block_on(async {
        let c = connect(&server).await;
        c.batch_execute("CREATE TABLE m (id INT PRIMARY KEY)").await.unwrap();
        for i in 0..5 {
            c.execute("INSERT INTO m VALUES ($1)", &[&i]).await.unwrap();
        }
        c.execute("INSERT INTO m VALUES (0)", &[]).await.expect_err("duplicate");
        let (status, body) = http(port, "GET", "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(sample(&body, "strata_connections"), 1.0);
        assert_eq!(sample(&body, "strata_connections_accepted_total"), 1.0);
        assert!(sample(&body, "strata_commits_total") >= 6.0, "{body}");
        assert_eq!(sample(&body, "strata_statements_failed_total"), 1.0, "{body}");
        assert_eq!(sample(&body, "strata_statement_duration_seconds_count"), 7.0);
        assert_eq!(sample(&body, "strata_statement_duration_seconds_bucket{le=\"+Inf\"}"), 7.0);
        assert!(sample(&body, "strata_engine_wal_syncs_total") >= 6.0, "{body}");
        assert_eq!(sample(&body, "strata_aborts_total{reason=\"write_write\"}"), 0.0);
    });
}

#[test]
fn copy_in_and_out_through_the_driver() {
    use futures::{SinkExt, StreamExt};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = connect(&server).await;
        c.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, name TEXT, price NUMERIC(6,2))")
            .await
            .unwrap();
        let sink = c.copy_in("COPY t FROM STDIN").await.expect("copy in");
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(b"1\tone\t1.50\n2\t\\N\t\\N\n"))
            .await
            .unwrap();
        sink.send(bytes::Bytes::from_static(b"3\ttab\\there\t3\n")).await.unwrap();
        assert_eq!(sink.finish().await.expect("copy done"), 3);

        let sink = c
            .copy_in("COPY t (id, name) FROM STDIN WITH (FORMAT csv, HEADER)")
            .await
            .expect("copy csv");
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(b"id,name\n4,\"a, b\"\n5,\n")).await.unwrap();
        assert_eq!(sink.finish().await.unwrap(), 2);

        // A bad row loads nothing of its COPY.
        let sink = c.copy_in("COPY t FROM STDIN").await.unwrap();
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(b"6\tsix\t6\n1\tdup\t1\n")).await.unwrap();
        let e = sink.finish().await.expect_err("duplicate key");
        assert_eq!(code(&e), Some(&SqlState::UNIQUE_VIOLATION), "{e}");
        let n: i64 = c.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
        assert_eq!(n, 5);

        let stream = c.copy_out("COPY t TO STDOUT").await.expect("copy out");
        let chunks: Vec<bytes::Bytes> =
            stream.map(|r| r.expect("copy data")).collect::<Vec<_>>().await;
        let text: String = chunks.iter().map(|b| String::from_utf8_lossy(b).to_string()).collect();
        assert_eq!(
            text,
            "1\tone\t1.50\n2\t\\N\t\\N\n3\ttab\\there\t3.00\n4\ta, b\t\\N\n5\t\\N\t\\N\n"
        );
        let stream = c
            .copy_out("COPY (SELECT id, name FROM t WHERE id >= 4 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)")
            .await
            .expect("copy query out");
        let chunks: Vec<bytes::Bytes> = stream.map(|r| r.unwrap()).collect::<Vec<_>>().await;
        let text: String = chunks.iter().map(|b| String::from_utf8_lossy(b).to_string()).collect();
        assert_eq!(text, "id,name\n4,\"a, b\"\n5,\n");
    });
}

#[test]
fn psql_copies_with_backslash_copy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, "id,name\n1,one\n2,\"t,w,o\"\n").unwrap();
    let out_file = dir.path().join("out.txt");
    let Some(out) = psql(
        &server,
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE TABLE t (id INT PRIMARY KEY, name TEXT)",
            "-c",
            &format!("\\copy t from '{}' with (format csv, header)", csv.display()),
            "-c",
            &format!("\\copy t to '{}'", out_file.display()),
            "-c",
            "SELECT count(*) FROM t",
        ],
    ) else {
        return;
    };
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("COPY 2"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "1\tone\n2\tt,w,o\n");
}

/// Runs `strata sql` with `args`; returns (exit code, stdout, stderr).
fn strata_sql(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("sql")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run strata sql");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn strata_sql_talks_to_the_server_as_psql_would() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let url = format!("postgres://tester@127.0.0.1:{}/strata", server.port);
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "1,one\n2,two\n").unwrap();
    let (code, stdout, stderr) = strata_sql(&[
        &url,
        "-c",
        "CREATE TABLE t (id INT PRIMARY KEY, name TEXT)",
        "-c",
        &format!("\\copy t from '{}' with (format csv)", csv.display()),
        "-c",
        "\\set who two",
        "-c",
        "SELECT id, name FROM t WHERE name <> :'who' ORDER BY id",
        "-c",
        "\\conninfo",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "CREATE TABLE\nCOPY 2\n id | name\n----+------\n  1 | one\n(1 row)\n\n\
             You are connected to database \"strata\" as user \"tester\" on host \"127.0.0.1\" \
             at port \"{}\" (server 15.0 (Strata 0.1.0)).\n",
            server.port
        )
    );
    let (code, _, stderr) = strata_sql(&[
        "--host",
        "127.0.0.1",
        "--port",
        &server.port.to_string(),
        "-U",
        "tester",
        "-c",
        "SELECT * FROM nope",
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("42P01") && stderr.contains("\"nope\" does not exist"), "{stderr}");
    // The catalog commands read pg_catalog, so they work over the wire too.
    let (code, stdout, stderr) = strata_sql(&[&url, "-c", "\\dt", "-c", "\\d t"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(" public | t    | table | strata"), "{stdout}");
    assert!(stdout.contains(" id     | integer |           | not null |"), "{stdout}");
    assert!(stdout.contains("    \"t_pkey\" PRIMARY KEY, btree (id)"), "{stdout}");
}

#[test]
fn ctrl_c_cancels_the_running_statement_not_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let url = format!("postgres://tester@127.0.0.1:{}/strata", server.port);
    let values: Vec<String> = (1..=400).map(|i| format!("({i})")).collect();
    let (code, _, stderr) = strata_sql(&[
        &url,
        "-c",
        "CREATE TABLE n (i INT PRIMARY KEY)",
        "-c",
        &format!("INSERT INTO n VALUES {}", values.join(",")),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let data = dir.path().join("embedded");
    let data = data.to_str().unwrap();
    let insert = format!("INSERT INTO n VALUES {}", values.join(","));
    let (code, _, stderr) =
        strata_sql(&["--data", data, "-c", "CREATE TABLE n (i INT PRIMARY KEY)", "-c", &insert]);
    assert_eq!(code, Some(0), "{stderr}");
    let slow = "SELECT count(*) FROM n a, n b, n c WHERE a.i + b.i + c.i < 0";
    for target in [vec![url.as_str()], vec!["--data", data]] {
        // A SIGINT that lands before the statement starts ends the run
        // (status 130); wait longer and try again then.
        let mut wait = Duration::from_millis(500);
        loop {
            let child = Command::new(env!("CARGO_BIN_EXE_strata"))
                .arg("sql")
                .args(&target)
                .args(["-c", slow])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(wait);
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() == Some(130) && wait < Duration::from_secs(8) {
                wait *= 2;
                continue;
            }
            // The shell reported the cancelled statement and exited as a
            // failed -c does; SIGINT did not kill it.
            assert_eq!(out.status.code(), Some(1), "{target:?}: {stderr}");
            assert!(
                stderr.contains("57014") && stderr.contains("canceling statement"),
                "{target:?}: {stderr}"
            );
            break;
        }
    }
}

#[test]
fn configured_users_must_log_in_with_scram() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--user", "ann=s3cret", "--user", "bob=other"]);
    runtime().block_on(async {
        let url = |user: &str, password: &str| {
            format!(
                "host=127.0.0.1 port={} user={user} password={password} dbname=strata",
                server.port
            )
        };
        let (client, connection) =
            tokio_postgres::connect(&url("ann", "s3cret"), NoTls).await.expect("right password");
        tokio::spawn(connection);
        let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
        for (user, password) in [("ann", "wrong"), ("nobody", "s3cret")] {
            let Err(e) = tokio_postgres::connect(&url(user, password), NoTls).await else {
                panic!("{user}/{password} was let in")
            };
            assert_eq!(code(&e), Some(&SqlState::INVALID_PASSWORD), "{user}: {e}");
        }
        // Without a password at all, the client cannot answer the challenge.
        let no_password = format!("host=127.0.0.1 port={} user=ann dbname=strata", server.port);
        assert!(tokio_postgres::connect(&no_password, NoTls).await.is_err());
    });
}

#[test]
fn psql_connects_over_tls_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipping the TLS test: openssl could not make a certificate ({made:?})");
        return;
    }
    let server = Server::start(
        dir.path(),
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    let found = Command::new("psql").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipping the TLS test: psql is not installed");
        return;
    }
    let conn =
        format!("host=127.0.0.1 port={} user=tester dbname=strata sslmode=require", server.port);
    let out = Command::new("psql")
        .args(["-X", &conn, "-c", "SELECT 40 + 2 AS answer", "-c", "\\conninfo"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("42"), "{stdout}");
    assert!(stdout.contains("SSL connection"), "{stdout}");
    // Clients that do not ask for TLS are still served.
    let plain =
        format!("host=127.0.0.1 port={} user=tester dbname=strata sslmode=disable", server.port);
    let out = Command::new("psql").args(["-X", &plain, "-c", "SELECT 1"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn idle_connections_are_closed_but_busy_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--idle-timeout", "1"]);
    runtime().block_on(async {
        let c = connect(&server).await;
        c.batch_execute("CREATE TABLE n (i INT PRIMARY KEY)").await.unwrap();
        let values: Vec<String> = (1..=120).map(|i| format!("({i})")).collect();
        c.batch_execute(&format!("INSERT INTO n VALUES {}", values.join(","))).await.unwrap();
        // A statement running past the timeout is not idleness.
        let started = Instant::now();
        let n: i64 = c
            .query_one("SELECT count(*) FROM n a, n b, n c WHERE a.i + b.i + c.i > 0", &[])
            .await
            .expect("a long statement survives the idle timeout")
            .get(0);
        assert_eq!(n, 120 * 120 * 120);
        eprintln!("long statement took {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(2500)).await;
        c.query_one("SELECT 1", &[]).await.expect_err("the idle connection was closed");
        assert!(c.is_closed());
        // Before it hangs up, the server says why, as PostgreSQL does.
        let mut raw = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        raw.write_all(&startup_message()).unwrap();
        let mut said = Vec::new();
        raw.read_to_end(&mut said).expect("the server hangs up after the timeout");
        let said = String::from_utf8_lossy(&said);
        assert!(said.contains("57P05") && said.contains("idle-session timeout"), "{said:?}");
        let fresh = connect(&server).await;
        let n: i64 = fresh.query_one("SELECT count(*) FROM n", &[]).await.unwrap().get(0);
        assert_eq!(n, 120);
    });
}

#[test]
fn strata_sql_logs_in_with_scram() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--user", "ann=s3cret"]);
    let url =
        |password: &str| format!("postgres://ann:{password}@127.0.0.1:{}/strata", server.port);
    let (code, stdout, stderr) = strata_sql(&[&url("s3cret"), "-A", "-t", "-c", "SELECT 6 * 7"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "42\n");
    let (code, _, stderr) = strata_sql(&[&url("wrong"), "-c", "SELECT 1"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("28P01"), "{stderr}");
}
