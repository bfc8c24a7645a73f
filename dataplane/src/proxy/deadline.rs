//! An RPC's deadline: whose it is (the client's `grpc-timeout` or the route's timeout, the
//! shorter one binds), which cause a timed-out RPC is counted under, and the body that ends a
//! streamed response when the deadline passes: the client gets `DEADLINE_EXCEEDED` in
//! trailers and the upstream stream is dropped (reset), so a response that is still
//! streaming can never outlive the deadline the proxy promised to enforce.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::body::{BoxError, ProxyBody};
use super::grpc;

/// Whose deadline or timeout ended an RPC: the `cause` label of
/// `weft_proxy_rpc_timeouts_total`, so a dashboard can tell a client in a hurry from a route
/// timeout set too short or an app that gave up on its own.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum TimeoutCause {
    /// The client's `grpc-timeout` was the binding deadline.
    ClientDeadline,
    /// The route's timeout, shorter than the client's deadline (or the only one).
    RouteTimeout,
    /// The last attempt hit the route's per-try timeout (answered `UNAVAILABLE`, as Envoy
    /// answers its per-try timeout).
    PerTryTimeout,
    /// The app answered `DEADLINE_EXCEEDED` before any deadline the proxy enforces passed.
    Upstream,
}

impl TimeoutCause {
    pub const ALL: [TimeoutCause; 4] = [
        Self::ClientDeadline,
        Self::RouteTimeout,
        Self::PerTryTimeout,
        Self::Upstream,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientDeadline => "client_deadline",
            Self::RouteTimeout => "route_timeout",
            Self::PerTryTimeout => "per_try_timeout",
            Self::Upstream => "upstream",
        }
    }
}

/// The RPC's deadline, as a duration from its arrival, and whose it is: the shorter of the
/// client's and the route's (the route's when they are equal: it is the configured cap).
pub fn binding_timeout(
    client: Option<Duration>,
    route: Option<Duration>,
) -> Option<(Duration, TimeoutCause)> {
    match (client, route) {
        (Some(client), Some(route)) if client < route => {
            Some((client, TimeoutCause::ClientDeadline))
        }
        (_, Some(route)) => Some((route, TimeoutCause::RouteTimeout)),
        (Some(client), None) => Some((client, TimeoutCause::ClientDeadline)),
        (None, None) => None,
    }
}

/// Which timeout, if any, an RPC that ended with `code` after `elapsed` is counted under.
/// A `DEADLINE_EXCEEDED` at (or within 2% before) the binding deadline is that deadline's;
/// one well before it, or with no deadline, is the app's own. A failure after the last
/// attempt timed out is the per-try timeout's.
pub fn timeout_cause(
    code: u32,
    elapsed: Duration,
    deadline: Option<(Duration, TimeoutCause)>,
    per_try_timed_out: bool,
) -> Option<TimeoutCause> {
    if code == grpc::code::DEADLINE_EXCEEDED {
        return Some(match deadline {
            Some((timeout, cause)) if elapsed + timeout / 50 >= timeout => cause,
            _ => TimeoutCause::Upstream,
        });
    }
    (per_try_timed_out && code != grpc::code::OK).then_some(TimeoutCause::PerTryTimeout)
}

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

#[cfg(test)]
mod cause_tests {
    use super::TimeoutCause::*;
    use super::*;
    use crate::proxy::grpc::code;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_shorter_timeout_binds_and_the_route_wins_a_tie() {
        assert_eq!(binding_timeout(None, None), None);
        assert_eq!(binding_timeout(Some(MS), None), Some((MS, ClientDeadline)));
        assert_eq!(binding_timeout(None, Some(MS)), Some((MS, RouteTimeout)));
        assert_eq!(
            binding_timeout(Some(100 * MS), Some(200 * MS)),
            Some((100 * MS, ClientDeadline))
        );
        assert_eq!(
            binding_timeout(Some(300 * MS), Some(200 * MS)),
            Some((200 * MS, RouteTimeout))
        );
        assert_eq!(
            binding_timeout(Some(200 * MS), Some(200 * MS)),
            Some((200 * MS, RouteTimeout))
        );
        assert_eq!(
            binding_timeout(Some(Duration::ZERO), Some(200 * MS)),
            Some((Duration::ZERO, ClientDeadline))
        );
    }

    #[test]
    fn a_timed_out_rpc_is_counted_under_whose_deadline_passed() {
        let route = Some((200 * MS, RouteTimeout));
        let dx = code::DEADLINE_EXCEEDED;
        assert_eq!(
            timeout_cause(dx, 201 * MS, route, false),
            Some(RouteTimeout)
        );
        // The app, given the deadline, may give up a moment before the proxy does.
        assert_eq!(
            timeout_cause(dx, 197 * MS, route, false),
            Some(RouteTimeout)
        );
        assert_eq!(timeout_cause(dx, 50 * MS, route, false), Some(Upstream));
        assert_eq!(timeout_cause(dx, 50 * MS, None, false), Some(Upstream));
        let client = Some((100 * MS, ClientDeadline));
        assert_eq!(
            timeout_cause(dx, 100 * MS, client, false),
            Some(ClientDeadline)
        );
        assert_eq!(
            timeout_cause(code::UNAVAILABLE, 90 * MS, client, true),
            Some(PerTryTimeout)
        );
        assert_eq!(timeout_cause(code::OK, 90 * MS, client, true), None);
        assert_eq!(
            timeout_cause(code::UNAVAILABLE, 90 * MS, client, false),
            None
        );
    }
}
