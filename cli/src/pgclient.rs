//! A small blocking PostgreSQL wire-protocol (v3) client for `strata sql
//! postgres://...`: startup with trust, cleartext-password or SCRAM-SHA-256
//! authentication (RFC 5802/7677, as PostgreSQL does it), the simple query
//! protocol, COPY in both directions, and cancel requests.
//!
//! Results come back as text with their column types' OIDs, which is all a
//! psql-like shell needs: it prints text, aligning numeric columns right. It
//! works against Strata's server and against PostgreSQL alike. Messages from
//! the server are bounded (1 GiB, PostgreSQL's own limit) and a malformed one
//! is an error, never a panic.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::TcpStream;

use anyhow::{Context, bail};
use strata_sql::{DataType, OutputColumn, SqlError, StatementResult, TxnStatus, Value};

/// The largest message accepted from a server.
const MAX_MESSAGE: usize = 1 << 30;
const PROTOCOL_V3: i32 = 196_608;
const CANCEL_REQUEST_CODE: i32 = 80_877_102;
const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// Where to connect, from a `postgres://user:password@host:port/database` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
}

impl Target {
    /// Parses a `postgres://` or `postgresql://` URL; missing parts default
    /// as libpq's do (port 5432, user `$USER`, database = user).
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .with_context(|| format!("not a postgres:// URL: {url}"))?;
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let database = database.split('?').next().unwrap_or("");
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(c.to_string()), None),
            },
            None => (None, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().with_context(|| format!("bad port in {url}"))?),
            None => (hostport, 5432),
        };
        let user = user
            .filter(|u| !u.is_empty())
            .or_else(|| std::env::var("PGUSER").ok())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "strata".into());
        let password = password.or_else(|| std::env::var("PGPASSWORD").ok());
        let database = if database.is_empty() { user.clone() } else { database.to_string() };
        let host = if host.is_empty() { "localhost" } else { host };
        Ok(Target { host: host.to_string(), port, user, password, database })
    }
}

/// What a simple query produced.
#[derive(Debug, Default)]
pub struct QueryOutcome {
    pub results: Vec<StatementResult>,
    pub notices: Vec<String>,
    pub error: Option<SqlError>,
}

/// An open connection.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    status: TxnStatus,
    /// Backend pid and secret key, for cancel requests.
    cancel_key: Option<(i32, Vec<u8>)>,
    pub target: Target,
    pub server_version: String,
}

/// Reads a NUL-terminated string from `b` at `*at`.
fn cstr(b: &[u8], at: &mut usize) -> anyhow::Result<String> {
    let rest = b.get(*at..).context("truncated message")?;
    let end = rest.iter().position(|&c| c == 0).context("unterminated string in message")?;
    *at += end + 1;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

fn int16(b: &[u8], at: &mut usize) -> anyhow::Result<i16> {
    let v = b.get(*at..*at + 2).context("truncated message")?;
    *at += 2;
    Ok(i16::from_be_bytes([v[0], v[1]]))
}

fn int32(b: &[u8], at: &mut usize) -> anyhow::Result<i32> {
    let v = b.get(*at..*at + 4).context("truncated message")?;
    *at += 4;
    Ok(i32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

/// A SQLSTATE as the `&'static str` that `SqlError` holds. Each distinct
/// code is allocated once (there are a few hundred), so a long session's
/// errors do not grow memory.
fn intern(code: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static CODES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut codes = CODES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = codes.get(code.as_str()) {
        return c;
    }
    let leaked: &'static str = Box::leak(code.into_boxed_str());
    codes.insert(leaked);
    leaked
}

/// An ErrorResponse or NoticeResponse body as a SqlError.
fn error_fields(body: &[u8]) -> SqlError {
    let mut e = SqlError::new("XX000", "");
    let mut at = 0;
    while let Some(&kind) = body.get(at) {
        if kind == 0 {
            break;
        }
        at += 1;
        let Ok(value) = cstr(body, &mut at) else { break };
        match kind {
            b'C' => e.code = intern(value),
            b'M' => e.message = value,
            b'D' => e.detail = Some(value),
            b'P' => e.position = value.parse().ok(),
            _ => {}
        }
    }
    e
}

/// The display type for a column's type OID: numeric types align right.
fn display_type(oid: i32) -> DataType {
    match oid {
        20 => DataType::Int8,
        21 => DataType::Int2,
        23 | 26 => DataType::Int4,
        700 => DataType::Float4,
        701 => DataType::Float8,
        1700 => DataType::Numeric { precision: None, scale: None },
        _ => DataType::Text,
    }
}

impl Client {
    /// Connects and authenticates (trust, cleartext or MD5-less password).
    pub fn connect(target: Target) -> anyhow::Result<Client> {
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .with_context(|| format!("connecting to {}:{}", target.host, target.port))?;
        stream.set_nodelay(true)?;
        let mut client = Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: BufWriter::new(stream),
            status: TxnStatus::Idle,
            cancel_key: None,
            target,
            server_version: String::new(),
        };
        let mut params = Vec::new();
        for (k, v) in [
            ("user", client.target.user.as_str()),
            ("database", client.target.database.as_str()),
            ("application_name", "strata sql"),
            ("client_encoding", "UTF8"),
        ] {
            params.extend_from_slice(k.as_bytes());
            params.push(0);
            params.extend_from_slice(v.as_bytes());
            params.push(0);
        }
        params.push(0);
        let len = (8 + params.len()) as i32;
        client.writer.write_all(&len.to_be_bytes())?;
        client.writer.write_all(&PROTOCOL_V3.to_be_bytes())?;
        client.writer.write_all(&params)?;
        client.writer.flush()?;
        loop {
            let (kind, body) = client.read_message()?;
            match kind {
                b'R' => {
                    let mut at = 0;
                    match int32(&body, &mut at)? {
                        0 => {}
                        3 => {
                            let password = client
                                .target
                                .password
                                .clone()
                                .context("the server asks for a password (set PGPASSWORD)")?;
                            let mut p = password.into_bytes();
                            p.push(0);
                            client.send(b'p', &p)?;
                        }
                        10 => {
                            let mechanisms = &body[at..];
                            let offered = mechanisms
                                .split(|&b| b == 0)
                                .any(|m| m == SCRAM_SHA_256.as_bytes());
                            anyhow::ensure!(
                                offered,
                                "the server offers no SASL mechanism strata sql knows"
                            );
                            let password = client
                                .target
                                .password
                                .clone()
                                .context("the server asks for a password (set PGPASSWORD)")?;
                            client.scram(&password)?;
                        }
                        other => bail!(
                            "the server asks for authentication method {other}, which strata sql does not support"
                        ),
                    }
                }
                b'S' => {
                    let mut at = 0;
                    let (name, value) = (cstr(&body, &mut at)?, cstr(&body, &mut at)?);
                    if name == "server_version" {
                        client.server_version = value;
                    }
                }
                b'K' => {
                    let mut at = 0;
                    let pid = int32(&body, &mut at)?;
                    client.cancel_key = Some((pid, body[at..].to_vec()));
                }
                b'Z' => return Ok(client),
                b'E' => {
                    let e = error_fields(&body);
                    bail!("{}: {}", e.code, e.message);
                }
                b'N' => {}
                other => bail!("unexpected message {:?} during startup", other as char),
            }
        }
    }

    pub fn status(&self) -> TxnStatus {
        self.status
    }

    /// SCRAM-SHA-256 without channel binding: client-first, server-first,
    /// client-final with the proof, then the server's signature is checked,
    /// so a server that does not know the password is refused too.
    fn scram(&mut self, password: &str) -> anyhow::Result<()> {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD as B64;
        use ring::{digest, hmac, pbkdf2};
        let mut nonce = [0u8; 18];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut nonce)?;
        let client_nonce = B64.encode(nonce);
        // PostgreSQL takes the user from the startup packet: the name here is empty.
        let client_first_bare = format!("n=,r={client_nonce}");
        let client_first = format!("n,,{client_first_bare}");
        let mut initial = SCRAM_SHA_256.as_bytes().to_vec();
        initial.push(0);
        initial.extend_from_slice(&(client_first.len() as i32).to_be_bytes());
        initial.extend_from_slice(client_first.as_bytes());
        self.send(b'p', &initial)?;
        self.writer.flush()?;

        let server_first = self.sasl_message(11)?;
        let mut fields = std::collections::HashMap::new();
        for part in server_first.split(',') {
            if let Some((k, v)) = part.split_once('=') {
                fields.insert(k, v);
            }
        }
        let nonce = fields.get("r").context("SCRAM: no nonce from the server")?;
        anyhow::ensure!(nonce.starts_with(&client_nonce), "SCRAM: the server's nonce is not ours");
        let salt = B64.decode(fields.get("s").context("SCRAM: no salt")?)?;
        let iterations: u32 = fields.get("i").context("SCRAM: no iteration count")?.parse()?;
        let iterations = std::num::NonZeroU32::new(iterations).context("SCRAM: zero iterations")?;

        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            password.as_bytes(),
            &mut salted,
        );
        let salted_key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
        let client_key = hmac::sign(&salted_key, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
        let client_final_bare = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{client_final_bare}");
        let signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> =
            client_key.as_ref().iter().zip(signature.as_ref()).map(|(k, s)| k ^ s).collect();
        let client_final = format!("{client_final_bare},p={}", B64.encode(proof));
        self.send(b'p', client_final.as_bytes())?;
        self.writer.flush()?;

        let server_final = self.sasl_message(12)?;
        let server_key = hmac::sign(&salted_key, b"Server Key");
        let expected = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, server_key.as_ref()),
            auth_message.as_bytes(),
        );
        let verifier = server_final.strip_prefix("v=").context("SCRAM: no server signature")?;
        anyhow::ensure!(
            B64.decode(verifier)? == expected.as_ref(),
            "SCRAM: the server's signature is wrong; it does not know the password"
        );
        Ok(())
    }

    /// The payload of the next Authentication message, which must be `code`
    /// (11: SASL continue, 12: SASL final); an error response fails.
    fn sasl_message(&mut self, code: i32) -> anyhow::Result<String> {
        let (kind, body) = self.read_message()?;
        match kind {
            b'R' => {
                let mut at = 0;
                let got = int32(&body, &mut at)?;
                anyhow::ensure!(got == code, "SCRAM: expected step {code}, got {got}");
                Ok(String::from_utf8_lossy(&body[at..]).into_owned())
            }
            b'E' => {
                let e = error_fields(&body);
                bail!("{}: {}", e.code, e.message)
            }
            other => bail!("unexpected message {:?} during SCRAM", other as char),
        }
    }

    fn send(&mut self, kind: u8, body: &[u8]) -> anyhow::Result<()> {
        self.writer.write_all(&[kind])?;
        self.writer.write_all(&((body.len() + 4) as i32).to_be_bytes())?;
        self.writer.write_all(body)?;
        Ok(())
    }

    fn read_message(&mut self) -> anyhow::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        self.reader.read_exact(&mut head).context("the server closed the connection")?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        let len = usize::try_from(len).ok().filter(|&l| (4..=MAX_MESSAGE).contains(&l));
        let len = len.with_context(|| format!("bad message length from the server: {len:?}"))?;
        let mut body = vec![0; len - 4];
        self.reader.read_exact(&mut body).context("the server closed the connection")?;
        Ok((head[0], body))
    }

    /// A handle that cancels this connection's running query from another thread.
    pub fn canceller(&self) -> Option<Canceller> {
        let (pid, secret) = self.cancel_key.clone()?;
        Some(Canceller { host: self.target.host.clone(), port: self.target.port, pid, secret })
    }

    /// Runs a simple query. `copy_in` supplies the data of a `COPY ... FROM
    /// STDIN`; `copy_out` receives a `COPY ... TO STDOUT`'s lines.
    pub fn query(
        &mut self,
        sql: &str,
        copy_in: &mut dyn FnMut() -> anyhow::Result<Vec<u8>>,
        copy_out: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<QueryOutcome> {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.send(b'Q', &body)?;
        self.writer.flush()?;
        let mut outcome = QueryOutcome::default();
        let mut current: Option<StatementResult> = None;
        loop {
            let (kind, body) = self.read_message()?;
            let mut at = 0;
            match kind {
                b'T' => {
                    let n = int16(&body, &mut at)?;
                    let mut columns = Vec::new();
                    for _ in 0..n.max(0) {
                        let name = cstr(&body, &mut at)?;
                        at += 6; // table oid, column number
                        let oid = int32(&body, &mut at)?;
                        at += 8; // size, modifier, format
                        columns.push(OutputColumn { name, ty: display_type(oid) });
                    }
                    current = Some(StatementResult { columns, ..Default::default() });
                }
                b'D' => {
                    let n = int16(&body, &mut at)?;
                    let mut row = Vec::with_capacity(n.max(0) as usize);
                    for _ in 0..n.max(0) {
                        let len = int32(&body, &mut at)?;
                        if len < 0 {
                            row.push(Value::Null);
                        } else {
                            let bytes =
                                body.get(at..at + len as usize).context("truncated DataRow")?;
                            row.push(Value::Text(String::from_utf8_lossy(bytes).into_owned()));
                            at += len as usize;
                        }
                    }
                    current.get_or_insert_with(StatementResult::default).rows.push(row);
                }
                b'C' => {
                    let mut r = current.take().unwrap_or_default();
                    r.tag = cstr(&body, &mut at)?;
                    r.count = r.rows.len() as u64;
                    outcome.results.push(r);
                }
                b'I' => {}
                b'E' => outcome.error = Some(error_fields(&body)),
                b'N' => outcome.notices.push(error_fields(&body).message),
                b'G' => {
                    // CopyInResponse: send the data, then CopyDone (or CopyFail).
                    match copy_in() {
                        Ok(data) => {
                            for chunk in data.chunks(64 << 10) {
                                self.send(b'd', chunk)?;
                            }
                            self.send(b'c', &[])?;
                        }
                        Err(e) => {
                            let mut m = e.to_string().into_bytes();
                            m.push(0);
                            self.send(b'f', &m)?;
                        }
                    }
                    self.writer.flush()?;
                }
                b'H' => {}
                b'd' => copy_out(&body)?,
                b'c' => {}
                b'S' | b'A' => {}
                b'Z' => {
                    self.status = match body.first() {
                        Some(b'T') => TxnStatus::InTransaction,
                        Some(b'E') => TxnStatus::Failed,
                        _ => TxnStatus::Idle,
                    };
                    return Ok(outcome);
                }
                other => bail!("unexpected message {:?} from the server", other as char),
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Terminate, politely; the connection closes either way.
        let _ = self.send(b'X', &[]);
        let _ = self.writer.flush();
    }
}

/// Sends a CancelRequest for one connection.
#[derive(Clone, Debug)]
pub struct Canceller {
    host: String,
    port: u16,
    pid: i32,
    secret: Vec<u8>,
}

impl Canceller {
    pub fn cancel(&self) -> std::io::Result<()> {
        let mut s = TcpStream::connect((self.host.as_str(), self.port))?;
        let mut msg = Vec::with_capacity(12 + self.secret.len());
        msg.extend_from_slice(&((12 + self.secret.len()) as i32).to_be_bytes());
        msg.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
        msg.extend_from_slice(&self.pid.to_be_bytes());
        msg.extend_from_slice(&self.secret);
        s.write_all(&msg)?;
        // The server closes the connection when it has read the request.
        let _ = s.read(&mut [0u8; 1]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_libpq_defaults() {
        let t = Target::parse("postgres://ann:pw@db.local:6543/shop").unwrap();
        assert_eq!(
            t,
            Target {
                host: "db.local".into(),
                port: 6543,
                user: "ann".into(),
                password: Some("pw".into()),
                database: "shop".into()
            }
        );
        let t = Target::parse("postgresql://bob@127.0.0.1/").unwrap();
        assert_eq!((t.port, t.database.as_str(), t.user.as_str()), (5432, "bob", "bob"));
        assert!(Target::parse("mysql://x").is_err());
        assert!(Target::parse("postgres://h:notaport/db").is_err());
    }

    #[test]
    fn error_responses_decode_their_fields() {
        let body = b"SERROR\0C42P01\0Mrelation \"x\" does not exist\0P15\0\0";
        let e = error_fields(body);
        assert_eq!(e.code, "42P01");
        assert_eq!(e.message, "relation \"x\" does not exist");
        assert_eq!(e.position, Some(15));
        // Truncated input gives what it can, without panicking.
        let e = error_fields(b"C4");
        assert_eq!(e.code, "XX000");
    }
}
