//! The body type every hop of the data path speaks: a boxed stream of HTTP/2 DATA frames and
//! trailers, so a request or response can pass through unbuffered whatever produced it.

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

/// Errors inside bodies cross task boundaries, so they are boxed and `Send + Sync`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body anywhere in the proxy.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Boxes any body into a [`ProxyBody`].
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A body with no frames (Trailers-Only responses carry everything in headers).
pub fn empty() -> ProxyBody {
    boxed(http_body_util::Empty::<Bytes>::new())
}
