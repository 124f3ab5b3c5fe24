//! MQTT over WebSocket (`ws` and `wss` listeners, MQTT 5 section 6): the HTTP upgrade, and an
//! adapter that turns the WebSocket's binary messages back into the byte stream MQTT is framed
//! on, so the connection's state machine (`client::serve`) is the same as over TCP. MQTT packets
//! split across WebSocket messages, or several in one, need nothing more: the MQTT framing reads
//! bytes, wherever the message boundaries fall.
//!
//! tokio-tungstenite does the handshake and the framing: it answers pings and the peer's close
//! itself, bounds the upgrade request (64 KiB) and, with the configuration below, every frame
//! and message. TLS (`wss`) is the listener's rustls stream below it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// The WebSocket subprotocols MQTT clients offer: `mqtt` (MQTT 3.1.1 and 5, MQTT-6.0.0-3) and
/// `mqttv3.1`, which older clients (paho's 3.1 mode) send. The first one offered is answered.
pub(crate) const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Bytes the framing reads from the socket at a time. tungstenite allocates it per connection
/// up front (128 KiB by default): small, because idle connections decide memory per pod and
/// MQTT packets are small; a larger message is still read whole, in more reads.
const READ_BUFFER: usize = 1024;

/// Answers the HTTP upgrade on `stream`: the request's path must be `path` (404 otherwise) and
/// it must offer an MQTT subprotocol (400 otherwise: MQTT-6.0.0-3 has the server speak `mqtt`,
/// and a client that offers none may not be an MQTT client at all). Frames and messages are
/// bounded by `max_message` (the listener's `limits.maxPacketSize`). The error is tungstenite's:
/// the HTTP refusal it answered, a malformed request, or the socket's failure.
pub(crate) async fn accept<S>(stream: S, path: &str, max_message: usize) -> Result<WsStream<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = READ_BUFFER;
    // Each MQTT flush is one message, written at once: the connection already batches packets.
    config.write_buffer_size = 0;
    config.max_message_size = Some(max_message);
    config.max_frame_size = Some(max_message);
    // The response types are tungstenite's callback signature.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| answer(request, response, path);
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    Ok(WsStream { ws, pending: Bytes::new(), refusing: Refusing::No })
}

/// The upgrade's answer: checks the path and picks the subprotocol.
// The response types are tungstenite's callback signature.
#[allow(clippy::result_large_err)]
fn answer(request: &Request, mut response: Response, path: &str) -> Result<Response, ErrorResponse> {
    if request.uri().path() != path {
        return Err(refusal(StatusCode::NOT_FOUND, "no MQTT WebSocket endpoint at this path"));
    }
    let offered = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| SUBPROTOCOLS.iter().copied().find(|known| *known == p.trim()));
    let Some(chosen) = offered else {
        return Err(refusal(StatusCode::BAD_REQUEST, "the Sec-WebSocket-Protocol header must offer mqtt"));
    };
    response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(chosen));
    Ok(response)
}

fn refusal(status: StatusCode, why: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(why.to_owned()));
    *response.status_mut() = status;
    response
}

/// Where the adapter is in refusing a text message (MQTT-6.0.0-1: MQTT is carried in binary
/// messages only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusing {
    No,
    /// The close frame (1003, unsupported data) is still to be queued.
    Queue,
    /// Queued; flushing it before the read fails.
    Flush,
}

/// A WebSocket connection as a byte stream: reads are the payloads of binary messages in order,
/// each write is sent as one binary message.
#[derive(Debug)]
pub(crate) struct WsStream<S> {
    ws: WebSocketStream<S>,
    /// The unread rest of the last binary message (at most one message: the framing's bound).
    pending: Bytes,
    refusing: Refusing,
}

/// tungstenite's errors as I/O errors, which is what the MQTT framing handles: a clean close is
/// the end of the stream, the rest end the connection.
fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let refused = || io::Error::new(io::ErrorKind::InvalidData, "text WebSocket message (MQTT needs binary)");
        if self.refusing == Refusing::Queue {
            ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io_error)?;
            let frame = CloseFrame { code: CloseCode::Unsupported, reason: "MQTT needs binary messages".into() };
            Pin::new(&mut self.ws).start_send(Message::Close(Some(frame))).map_err(io_error)?;
            self.refusing = Refusing::Flush;
        }
        // Best effort: the connection ends with the error whether or not the close got out.
        let _ = ready!(Pin::new(&mut self.ws).poll_flush(cx));
        Poll::Ready(Err(refused()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.refusing != Refusing::No {
                return this.poll_refuse(cx);
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(payload))) => this.pending = payload,
                Some(Ok(Message::Text(_))) => this.refusing = Refusing::Queue,
                // Pings are answered by tungstenite on the next poll; a close is answered the
                // same way, and then the stream ends (`None`).
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_))) => {}
                None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Ready once the previous message is out: at most one message is buffered.
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(io_error)?;
        Pin::new(&mut this.ws).start_send(Message::Binary(Bytes::copy_from_slice(buf))).map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws).poll_flush(cx).map_err(io_error)
    }

    /// Sends a close frame and shuts the socket down.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws).poll_close(cx).map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    const PATH: &str = "/mqtt";

    /// A client handshake against [`accept`] over an in-memory pipe, offering `protocols`.
    async fn connect(
        path: &str,
        protocols: Option<&str>,
        max: usize,
    ) -> (Result<(WebSocketStream<DuplexStream>, Option<HeaderValue>), WsError>, Result<WsStream<DuplexStream>, WsError>)
    {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut request = format!("ws://localhost{path}").into_client_request().unwrap_or_else(|e| panic!("{e}"));
        if let Some(p) = protocols {
            request
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(p).unwrap_or_else(|e| panic!("{e}")));
        }
        let (c, s) = tokio::join!(tokio_tungstenite::client_async(request, client), accept(server, PATH, max));
        (c.map(|(ws, response)| (ws, response.headers().get(header::SEC_WEBSOCKET_PROTOCOL).cloned())), s)
    }

    async fn pair() -> (WebSocketStream<DuplexStream>, WsStream<DuplexStream>) {
        match connect(PATH, Some("mqtt"), 1024).await {
            (Ok((c, _)), Ok(s)) => (c, s),
            (c, s) => panic!("handshake: {:?} {:?}", c.err(), s.err()),
        }
    }

    #[tokio::test]
    async fn handshake_answers_the_offered_mqtt_subprotocol() {
        for (offered, answered) in [("mqtt", "mqtt"), ("mqttv3.1", "mqttv3.1"), ("foo, mqtt", "mqtt")] {
            let (c, s) = connect(PATH, Some(offered), 1024).await;
            let (_, protocol) = c.unwrap_or_else(|e| panic!("{offered}: {e}"));
            assert!(s.is_ok(), "{offered}");
            assert_eq!(protocol.as_ref().and_then(|v| v.to_str().ok()), Some(answered), "{offered}");
        }
    }

    #[tokio::test]
    async fn handshake_refuses_other_paths_and_protocols() {
        let status = |r: Result<_, WsError>| match r {
            Err(WsError::Http(response)) => response.status(),
            other => panic!("expected an HTTP refusal, got {:?}", other.map(|_| ())),
        };
        let (c, s) = connect("/other", Some("mqtt"), 1024).await;
        assert_eq!(status(c), StatusCode::NOT_FOUND);
        assert!(s.is_err());
        let (c, s) = connect(PATH, None, 1024).await;
        assert_eq!(status(c), StatusCode::BAD_REQUEST);
        assert!(s.is_err());
        let (c, s) = connect(PATH, Some("wamp"), 1024).await;
        assert_eq!(status(c), StatusCode::BAD_REQUEST);
        assert!(s.is_err());
    }

    #[tokio::test]
    async fn binary_messages_read_as_one_byte_stream_and_writes_are_messages() {
        let (mut client, mut server) = pair().await;
        // One packet split over two messages, then two packets in one message.
        client.send(Message::Binary(Bytes::from_static(&[0xC0]))).await.unwrap_or_else(|e| panic!("{e}"));
        client
            .send(Message::Binary(Bytes::from_static(&[0x00, 0xC0, 0x00, 0xE0, 0x00])))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut got = [0u8; 6];
        server.read_exact(&mut got).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, [0xC0, 0x00, 0xC0, 0x00, 0xE0, 0x00]);

        server.write_all(&[0xD0, 0x00]).await.unwrap_or_else(|e| panic!("{e}"));
        server.flush().await.unwrap_or_else(|e| panic!("{e}"));
        let got = client.next().await.and_then(Result::ok);
        assert_eq!(got, Some(Message::Binary(Bytes::from_static(&[0xD0, 0x00]))));
    }

    #[tokio::test]
    async fn pings_are_answered_and_a_close_ends_the_stream() {
        let (mut client, mut server) = pair().await;
        client.send(Message::Ping(Bytes::from_static(b"hi"))).await.unwrap_or_else(|e| panic!("{e}"));
        client.send(Message::Binary(Bytes::from_static(&[0xC0, 0x00]))).await.unwrap_or_else(|e| panic!("{e}"));
        let mut got = [0u8; 2];
        server.read_exact(&mut got).await.unwrap_or_else(|e| panic!("{e}"));
        // The server answers while it reads; the client sees the pong.
        let reader = tokio::spawn(async move {
            let mut rest = Vec::new();
            let n = server.read_to_end(&mut rest).await;
            (n.ok(), rest)
        });
        assert_eq!(client.next().await.and_then(Result::ok), Some(Message::Pong(Bytes::from_static(b"hi"))));
        client.close(None).await.unwrap_or_else(|e| panic!("{e}"));
        let (n, rest) = reader.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((n, rest), (Some(0), Vec::new()), "a close is the end of the byte stream");
    }

    #[tokio::test]
    async fn a_text_message_closes_with_unsupported_data() {
        let (mut client, mut server) = pair().await;
        client.send(Message::Text("CONNECT".into())).await.unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 8];
        let err = server.read(&mut buf).await.expect_err("a text message is a protocol error");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        match client.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Unsupported),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn messages_over_the_limit_end_the_connection() {
        let (c, s) = connect(PATH, Some("mqtt"), 16).await;
        let (mut client, mut server) = (c.unwrap_or_else(|e| panic!("{e}")).0, s.unwrap_or_else(|e| panic!("{e}")));
        client.send(Message::Binary(Bytes::from(vec![0u8; 17]))).await.unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 32];
        assert!(server.read(&mut buf).await.is_err(), "a 17-byte frame read past a 16-byte limit");
    }
}
