//! Ends a streamed response when the RPC's deadline passes: the client gets
//! `DEADLINE_EXCEEDED` in trailers and the upstream stream is dropped (reset), so a response
//! that is still streaming can never outlive the deadline the proxy promised to enforce.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::body::{BoxError, ProxyBody};
use super::grpc;

/// A response body that ends with `DEADLINE_EXCEEDED` trailers at `deadline`.
pub struct DeadlineBody {
    /// `None` once the deadline has fired (the upstream stream is dropped then).
    inner: Option<ProxyBody>,
    sleep: Pin<Box<Sleep>>,
    message: &'static str,
}

impl DeadlineBody {
    pub fn new(inner: ProxyBody, deadline: Instant, message: &'static str) -> Self {
        Self {
            inner: Some(inner),
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            message,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(frame) = Pin::new(inner).poll_frame(cx) {
            if frame.is_none() {
                this.inner = None;
            }
            return Poll::Ready(frame);
        }
        ready!(this.sleep.as_mut().poll(cx));
        this.inner = None;
        Poll::Ready(Some(Ok(Frame::trailers(deadline_trailers(this.message)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

fn deadline_trailers(message: &'static str) -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(2);
    trailers.insert(
        "grpc-status",
        HeaderValue::from(grpc::code::DEADLINE_EXCEEDED),
    );
    trailers.insert("grpc-message", HeaderValue::from_static(message));
    trailers
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::{BodyExt, StreamBody};

    use super::*;
    use crate::proxy::body::boxed;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_stream_ends_with_deadline_exceeded() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        tx.send(Ok(Frame::data(Bytes::from_static(b"hello"))))
            .await
            .unwrap();
        let inner = boxed(StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        let deadline = Instant::now() + Duration::from_millis(50);
        let mut body = DeadlineBody::new(inner, deadline, "deadline exceeded in weft-proxy");
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"hello"));
        let trailers = body
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_trailers()
            .unwrap();
        assert_eq!(trailers["grpc-status"], "4");
        assert_eq!(trailers["grpc-message"], "deadline exceeded in weft-proxy");
        assert!(body.frame().await.is_none());
        assert!(
            tx.is_closed(),
            "the upstream stream is dropped at the deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_ends_in_time_is_untouched() {
        let inner = boxed(http_body_util::Full::new(Bytes::from_static(b"x")));
        let deadline = Instant::now() + Duration::from_secs(1);
        let body = DeadlineBody::new(inner, deadline, "late");
        let collected = body.collect().await.unwrap();
        assert!(collected.trailers().is_none());
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"x"));
    }
}
