//! pgwire's message loop over a socket that sends each batch of replies with
//! one write, as PostgreSQL does.
//!
//! pgwire's handlers flush after most replies (ParseComplete, BindComplete,
//! CommandComplete, ...), and on a `TCP_NODELAY` socket every flush is a
//! `sendto`: three per point SELECT through the extended protocol, where
//! PostgreSQL sends one. PostgreSQL buffers its replies and sends them at
//! ReadyForQuery, at a Flush message, or when it is about to wait for the
//! client. [`serve`] does the same: it runs the loop of
//! `pgwire::tokio::process_socket` (TLS negotiation, startup timeout,
//! Terminate, cancel requests, errors skipping to Sync) over a [`Corked`]
//! socket, whose `flush` does not reach the network. The loop pushes the held
//! replies out
//!
//! - after a message that ends a round: Query and Sync (answered with
//!   ReadyForQuery), Flush (which asks for exactly this), CopyDone and
//!   CopyFail;
//! - before it waits for the client's next message, whatever the last one
//!   was (a COPY's CopyInResponse, a suspended portal, an authentication
//!   step), so a client never waits for a reply held here;
//! - when more than [`CORK_LIMIT_BYTES`] are held, and when the connection
//!   closes.
//!
//! Only the unit of writing changes: the bytes and their order are pgwire's.
//! pgwire's `client_certificates` finds no certificates behind the wrapper;
//! the server asks for none (`with_no_client_auth`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::ErrorInfo;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{
    MaybeTls, PgWireMessageServerCodec, negotiate_tls, process_error, process_message,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

/// Replies held past this are written at once, whatever the round.
pub const CORK_LIMIT_BYTES: usize = 64 * 1024;

/// How long a client has to finish TLS negotiation and startup (pgwire's).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A socket whose writes are held until [`Corked::poll_push`] (or until
/// [`CORK_LIMIT_BYTES`] are held, or shutdown); its `poll_flush` holds too,
/// so pgwire's flushes after each reply cost no system call.
#[derive(Debug)]
pub struct Corked<S> {
    io: S,
    /// Bytes written and not yet sent; at most [`CORK_LIMIT_BYTES`].
    held: Vec<u8>,
    /// How many of `held` are already sent.
    sent: usize,
}

impl<S: AsyncWrite + Unpin> Corked<S> {
    pub fn new(io: S) -> Corked<S> {
        Corked { io, held: Vec::new(), sent: 0 }
    }

    /// Sends everything held, then flushes the socket beneath.
    pub fn poll_push(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        self.sent = 0;
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Corked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() >= CORK_LIMIT_BYTES {
            ready!(this.poll_push(cx))?;
        }
        let n = buf.len().min(CORK_LIMIT_BYTES - this.held.len());
        this.held.extend_from_slice(&buf[..n]);
        debug_assert!(this.held.len() <= CORK_LIMIT_BYTES);
        Poll::Ready(Ok(n))
    }

    /// Holds: the message loop decides when replies go out.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_push(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Corked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

/// A negotiated client connection, as the handlers see it.
type Socket<St> = Framed<Corked<MaybeTls>, PgWireMessageServerCodec<St>>;

/// Serves one client with `handlers` until it leaves, as
/// `pgwire::tokio::process_socket` does, sending replies in batches.
pub async fn serve<H: PgWireServerHandlers>(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: H,
) -> io::Result<()> {
    let extended = handlers.extended_query_handler();
    serve_with(tcp, tls, &handlers, extended).await
}

/// [`serve`], with the extended-query handler's type named: it decides the
/// codec's statement type.
async fn serve_with<H, EQ>(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: &H,
    extended: Arc<EQ>,
) -> io::Result<()>
where
    H: PgWireServerHandlers,
    EQ: ExtendedQueryHandler,
{
    let startup_timeout = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        negotiated = negotiate_tls::<EQ::Statement>(tcp, tls) => negotiated?,
    };
    // None: a direct TLS handshake without a certificate configured.
    let Some(plain) = negotiated else { return Ok(()) };
    let plain = plain.into_parts();
    let mut parts = FramedParts::new::<PgWireBackendMessage>(Corked::new(plain.io), plain.codec);
    parts.read_buf = plain.read_buf;
    parts.write_buf = plain.write_buf;
    let mut socket: Socket<EQ::Statement> = Framed::from_parts(parts);

    let served = message_loop(&mut socket, startup_timeout, handlers, extended).await;
    // Replies to the last messages (before a Terminate or end of input) go
    // out before the socket closes; the client may be gone already.
    let _ = push(&mut socket).await;
    served
}

/// pgwire's `process_socket_messages`, with the pushes described in the
/// module documentation.
async fn message_loop<H, EQ>(
    socket: &mut Socket<EQ::Statement>,
    mut startup_timeout: Pin<&mut tokio::time::Sleep>,
    handlers: &H,
    extended: Arc<EQ>,
) -> io::Result<()>
where
    H: PgWireServerHandlers,
    EQ: ExtendedQueryHandler,
{
    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        // A message already received is processed at once, its replies held
        // with those before it; otherwise everything held goes out first.
        let message = match next_message(socket).now_or_never() {
            Some(message) => message,
            None => {
                push(socket).await?;
                if matches!(
                    socket.state(),
                    PgWireConnectionState::AwaitingStartup
                        | PgWireConnectionState::AuthenticationInProgress
                ) {
                    tokio::select! {
                        _ = &mut startup_timeout => Incoming::End,
                        message = next_message(socket) => message,
                    }
                } else {
                    next_message(socket).await
                }
            }
        };
        let message = match message {
            Incoming::Message(message) => message,
            Incoming::End => break,
            // As PostgreSQL: FATAL 08P01, then hang up; nothing else of the
            // client's input can be trusted to be framed right.
            Incoming::Malformed(why) => {
                let info = ErrorInfo::new("FATAL".into(), "08P01".into(), why);
                let _ = socket.feed(PgWireBackendMessage::ErrorResponse(info.into())).await;
                break;
            }
        };
        // The client is leaving (asyncpg waits for the socket to close).
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let is_extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(is_extended_query) => is_extended_query,
            _ => message.is_extended_query(),
        };
        // `process_message` closes a cancel request's own connection.
        let is_cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        let ends_round = matches!(
            message,
            PgWireFrontendMessage::Query(_)
                | PgWireFrontendMessage::Sync(_)
                | PgWireFrontendMessage::Flush(_)
                | PgWireFrontendMessage::CopyDone(_)
                | PgWireFrontendMessage::CopyFail(_)
        );
        let processed = process_message(
            message,
            socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        if let Err(mut e) = processed {
            errors.on_error(socket, &mut e);
            // A FATAL error ends the session; process_error has closed the
            // socket (sending what was held), so stop rather than wait for
            // the client to hang up.
            let is_fatal = e.is_fatal();
            process_error(socket, e, is_extended_query).await?;
            if is_fatal {
                break;
            }
        }
        if is_cancel_request {
            break;
        }
        if ends_round {
            push(socket).await?;
        }
    }
    Ok(())
}

/// What the client sent next.
enum Incoming {
    Message(PgWireFrontendMessage),
    /// End of input (or of the startup time).
    End,
    /// A frame that does not decode, with the reason.
    Malformed(String),
}

/// Reads the next message. pgwire's decoder rejects some malformed frames
/// (a count larger than the message holds) by panicking; that panic stops
/// here and counts as a malformed message, so the client hears why its
/// connection ends. (The server's panic hook logs it in one line.)
async fn next_message<St>(socket: &mut Socket<St>) -> Incoming {
    match std::panic::AssertUnwindSafe(socket.next()).catch_unwind().await {
        Ok(Some(Ok(message))) => Incoming::Message(message),
        Ok(None) => Incoming::End,
        Ok(Some(Err(e))) => Incoming::Malformed(format!("invalid frontend message: {e}")),
        Err(_) => Incoming::Malformed("invalid frontend message: malformed message".into()),
    }
}

/// Sends every reply held: pgwire's write buffer into the [`Corked`]
/// socket, then the socket's bytes onto the network.
async fn push<St>(socket: &mut Socket<St>) -> io::Result<()> {
    SinkExt::<PgWireBackendMessage>::flush(socket).await?;
    std::future::poll_fn(|cx| socket.get_mut().poll_push(cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that records each write it receives.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl AsyncWrite for Writes {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn write(corked: &mut Corked<Writes>, bytes: &[u8]) {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut rest = bytes;
        while !rest.is_empty() {
            match Pin::new(&mut *corked).poll_write(&mut cx, rest) {
                Poll::Ready(Ok(n)) => rest = &rest[n..],
                other => panic!("write: {other:?}"),
            }
            assert!(Pin::new(&mut *corked).poll_flush(&mut cx).is_ready());
        }
    }

    fn push_now(corked: &mut Corked<Writes>) {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(corked.poll_push(&mut cx), Poll::Ready(Ok(()))));
    }

    #[test]
    fn writes_and_flushes_are_held_until_a_push() {
        let mut corked = Corked::new(Writes::default());
        write(&mut corked, b"2\0\0\0\x04"); // BindComplete
        write(&mut corked, b"C\0\0\0\x0dSELECT 1\0"); // CommandComplete
        write(&mut corked, b"Z\0\0\0\x05I"); // ReadyForQuery
        assert!(corked.io.0.is_empty(), "nothing is sent before the push");
        push_now(&mut corked);
        assert_eq!(corked.io.0, [b"2\0\0\0\x04C\0\0\0\x0dSELECT 1\0Z\0\0\0\x05I".to_vec()]);
        push_now(&mut corked);
        assert_eq!(corked.io.0.len(), 1, "a push with nothing held sends nothing");
    }

    #[test]
    fn more_than_the_limit_goes_out_early_in_order() {
        let mut corked = Corked::new(Writes::default());
        let big: Vec<u8> = (0..CORK_LIMIT_BYTES * 2 + 10).map(|i| i as u8).collect();
        write(&mut corked, &big);
        assert_eq!(corked.io.0.len(), 2, "two full batches sent");
        assert!(corked.io.0.iter().all(|w| w.len() == CORK_LIMIT_BYTES));
        assert_eq!(corked.held.len(), 10, "the rest is held");
        push_now(&mut corked);
        assert_eq!(corked.io.0.concat(), big);
    }
}
