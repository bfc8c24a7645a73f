//! The two bodies of a gRPC-Web call. [`WebRequestBody`] decodes a text-mode request as it
//! streams in. [`WebResponseBody`] passes the upstream's messages on as they arrive (in
//! base64 for text mode, each chunk padded on its own) and turns its trailers — or the
//! status a Trailers-Only answer carried in its headers — into the final trailer frame.
//! Neither buffers more than one chunk.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use pin_project_lite::pin_project;

use super::text::{self, TextDecoder};
use super::{Encoding, trailer_frame};
use crate::proxy::body::{BoxError, ProxyBody};

pin_project! {
    /// A grpc-web-text request body, decoded to the binary gRPC stream.
    pub struct WebRequestBody<B> {
        #[pin]
        inner: B,
        decoder: TextDecoder,
    }
}

impl<B> WebRequestBody<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            decoder: TextDecoder::default(),
        }
    }
}

impl<B> Body for WebRequestBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            let frame = match ready!(this.inner.as_mut().poll_frame(cx)) {
                None => return Poll::Ready(this.decoder.finish().err().map(|e| Err(e.into()))),
                Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                Some(Ok(frame)) => frame,
            };
            match frame.into_data() {
                Ok(chunk) => match this.decoder.decode(&chunk) {
                    // A chunk that only started a quantum yields nothing yet.
                    Ok(decoded) if decoded.is_empty() => continue,
                    Ok(decoded) => return Poll::Ready(Some(Ok(Frame::data(decoded)))),
                    Err(err) => return Poll::Ready(Some(Err(err.into()))),
                },
                // Browsers send no request trailers; any other frame is dropped.
                Err(_) => continue,
            }
        }
    }
}

pin_project! {
    /// A gRPC response body in gRPC-Web form.
    pub struct WebResponseBody {
        #[pin]
        inner: ProxyBody,
        encoding: Encoding,
        // The status a Trailers-Only response carried in its headers: the trailer frame
        // once the (empty) body ends.
        status_in_headers: Option<HeaderMap>,
        // The trailer frame has been sent: the body is over.
        done: bool,
    }
}

impl WebResponseBody {
    pub fn new(inner: ProxyBody, encoding: Encoding, status_in_headers: Option<HeaderMap>) -> Self {
        Self {
            inner,
            encoding,
            status_in_headers,
            done: false,
        }
    }
}

impl Body for WebResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let encode = |bytes: Bytes| match this.encoding {
            Encoding::Binary => bytes,
            Encoding::Text => text::encode(&bytes),
        };
        let trailers = match ready!(this.inner.poll_frame(cx)) {
            Some(Err(err)) => return Poll::Ready(Some(Err(err))),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => return Poll::Ready(Some(Ok(Frame::data(encode(data))))),
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => trailers,
                    Err(_) => return Poll::Ready(Some(Ok(Frame::data(Bytes::new())))),
                },
            },
            // Ended without trailers: only a Trailers-Only answer has its status to send.
            None => match this.status_in_headers.take() {
                Some(status) => status,
                None => return Poll::Ready(None),
            },
        };
        *this.done = true;
        Poll::Ready(Some(Ok(Frame::data(encode(trailer_frame(&trailers))))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}
