//! A pass-through body that counts gRPC messages and reports how the stream ended. gRPC
//! frames each message with a 5-byte prefix (1 flag byte, 4-byte big-endian length); a
//! message may straddle DATA frames and one DATA frame may hold several, so the counter walks
//! prefixes and skips payloads without copying them. The report ([`StreamEnd`]) fires exactly
//! once: at end of stream (after trailers), on a body error, or when the body is dropped
//! early (the client or upstream went away).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::body::BoxError;
use super::grpc;

/// How a counted stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamEnd {
    /// Complete gRPC messages that passed.
    pub messages: u64,
    /// `grpc-status` from the trailers, if the stream ended with trailers carrying one.
    pub grpc_status: Option<u32>,
    /// The body failed, or was dropped before its end.
    pub error: bool,
}

/// The callback type of a `CountingBody<B>` named without its second parameter.
pub type OnEnd = Box<dyn FnOnce(StreamEnd) + Send>;

pin_project! {
    /// Counts the gRPC messages of `inner` and calls `on_end` once when it ends.
    pub struct CountingBody<B, F = OnEnd>
    where
        B: Body,
        F: FnOnce(StreamEnd),
    {
        #[pin]
        inner: B,
        counter: MessageCounter,
        on_end: Option<F>,
    }

    impl<B, F> PinnedDrop for CountingBody<B, F>
    where
        B: Body,
        F: FnOnce(StreamEnd),
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // A body dropped at its end (a Trailers-Only response is never polled) ended
            // cleanly; anything else was cut off.
            let error = !this.inner.is_end_stream();
            fire(this.on_end, this.counter.messages, None, error);
        }
    }
}

impl<B, F> CountingBody<B, F>
where
    B: Body,
    F: FnOnce(StreamEnd) + Send + 'static,
{
    pub fn new(inner: B, on_end: F) -> Self {
        Self {
            inner,
            counter: MessageCounter::default(),
            on_end: Some(on_end),
        }
    }
}

fn fire<F: FnOnce(StreamEnd)>(
    on_end: &mut Option<F>,
    messages: u64,
    grpc_status: Option<u32>,
    error: bool,
) {
    if let Some(on_end) = on_end.take() {
        on_end(StreamEnd {
            messages,
            grpc_status,
            error,
        });
    }
}

impl<B, F> Body for CountingBody<B, F>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    F: FnOnce(StreamEnd),
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match ready!(this.inner.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.counter.feed(data);
                    // The consumer may stop polling once the inner body says it is done.
                    if this.inner.is_end_stream() {
                        fire(this.on_end, this.counter.messages, None, false);
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    let status = grpc::status_of(trailers);
                    fire(this.on_end, this.counter.messages, status, false);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => {
                fire(this.on_end, this.counter.messages, None, true);
                Poll::Ready(Some(Err(err.into())))
            }
            None => {
                fire(this.on_end, this.counter.messages, None, false);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Walks gRPC length-prefixed messages across DATA frames.
#[derive(Debug, Default)]
struct MessageCounter {
    messages: u64,
    /// Bytes of the current message's 5-byte prefix seen so far.
    prefix: u8,
    /// The current message's length, accumulated from its prefix.
    length: u32,
    /// Payload bytes of the current message still to come (once the prefix is complete).
    remaining: u64,
}

impl MessageCounter {
    fn feed(&mut self, mut data: &[u8]) {
        while let Some((&byte, rest)) = data.split_first() {
            if self.prefix < 5 {
                data = rest;
                if self.prefix > 0 {
                    self.length = self.length << 8 | u32::from(byte);
                }
                self.prefix += 1;
                if self.prefix == 5 {
                    self.remaining = u64::from(self.length);
                    if self.remaining == 0 {
                        self.complete();
                    }
                }
            } else {
                let skip =
                    usize::try_from(self.remaining).map_or(data.len(), |r| r.min(data.len()));
                data = &data[skip..];
                self.remaining -= skip as u64;
                if self.remaining == 0 {
                    self.complete();
                }
            }
        }
    }

    fn complete(&mut self) {
        self.messages += 1;
        self.prefix = 0;
        self.length = 0;
    }
}

#[cfg(test)]
#[path = "counting_tests.rs"]
mod tests;
