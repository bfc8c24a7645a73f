//! The gRPC-Web bridge: browsers' calls (`application/grpc-web[+proto]`, and the base64
//! `application/grpc-web-text[+proto]`, over HTTP/1.1 or HTTP/2) become gRPC upstream, and
//! gRPC answers go back in gRPC-Web form, the status and trailers as the trailer frame at
//! the end of the body (flag `0x80`, then `name: value\r\n` lines), as the gRPC-Web protocol
//! says. Bodies stream both ways: each message is passed on as it arrives, never buffered
//! whole. An answer the proxy makes itself (no route, a fault, a deadline: Trailers-Only)
//! becomes the same trailer frame, so the browser sees the exact status and message.
//!
//! `text` owns the base64 of the text mode; [`body`] the two body adapters; `cors` the
//! answers to browsers' preflights and which origins may call; this file which requests are
//! gRPC-Web and how headers change on the way in and out.

pub mod body;
pub mod cors;
pub mod text;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TE};
use http::{HeaderMap, HeaderValue, Request, Response, Version};

use super::body::{BoxError, ProxyBody, boxed};
use body::{WebRequestBody, WebResponseBody};

/// The flag byte of the gRPC-Web trailer frame.
const TRAILER_FLAG: u8 = 0x80;

/// How a client speaks gRPC-Web.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/grpc-web…`: the gRPC framing as is.
    Binary,
    /// `application/grpc-web-text…`: the same stream in base64.
    Text,
}

/// A gRPC-Web request's encoding and message format (`+proto`, `+json`, or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebCall {
    pub encoding: Encoding,
    /// What follows the base type, `+proto` for instance (kept for the upstream).
    pub suffix: String,
}

impl WebCall {
    /// The gRPC-Web call a request's `content-type` names, if it names one.
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let lower = value.trim().to_ascii_lowercase();
        let (encoding, rest) = if let Some(rest) = lower.strip_prefix("application/grpc-web-text") {
            (Encoding::Text, rest)
        } else if let Some(rest) = lower.strip_prefix("application/grpc-web") {
            (Encoding::Binary, rest)
        } else {
            return None;
        };
        let suffix = match rest.as_bytes().first() {
            None => "",
            Some(b'+') => rest.split(';').next().unwrap_or_default(),
            Some(b';') => "",
            Some(_) => return None,
        };
        Some(Self {
            encoding,
            suffix: suffix.to_string(),
        })
    }

    /// The content type of the gRPC request sent upstream.
    fn grpc_content_type(&self) -> HeaderValue {
        content_type(&format!("application/grpc{}", self.suffix))
    }

    /// The content type of the gRPC-Web response (the family the client asked in).
    fn web_content_type(&self) -> HeaderValue {
        let base = match self.encoding {
            Encoding::Binary => "application/grpc-web",
            Encoding::Text => "application/grpc-web-text",
        };
        content_type(&format!("{base}{}", self.suffix))
    }
}

fn content_type(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("application/grpc"))
}

/// A gRPC-Web request as the gRPC request the rest of the proxy serves: HTTP/2, `te:
/// trailers`, the gRPC content type, the body decoded (text mode) and of unknown length.
pub fn request_to_grpc<B>(call: &WebCall, request: Request<B>) -> Request<ProxyBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    parts.version = Version::HTTP_2;
    parts.headers.insert(CONTENT_TYPE, call.grpc_content_type());
    parts
        .headers
        .insert(TE, HeaderValue::from_static("trailers"));
    parts.headers.remove(CONTENT_LENGTH);
    let body = match call.encoding {
        Encoding::Binary => boxed(body),
        Encoding::Text => boxed(WebRequestBody::new(body)),
    };
    Request::from_parts(parts, body)
}

/// A gRPC response as the client's gRPC-Web response: the status and trailers move into the
/// body's trailer frame (also when they came in the headers, Trailers-Only).
pub fn response_to_web(call: &WebCall, response: Response<ProxyBody>) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    parts.headers.insert(CONTENT_TYPE, call.web_content_type());
    parts.headers.remove(CONTENT_LENGTH);
    let trailers_only = parts.headers.contains_key("grpc-status");
    let status_in_headers = trailers_only.then(|| take_status(&mut parts.headers));
    let body = WebResponseBody::new(body, call.encoding, status_in_headers);
    Response::from_parts(parts, boxed(body))
}

/// Removes what a Trailers-Only response's headers carry that belongs in trailers.
fn take_status(headers: &mut HeaderMap) -> HeaderMap {
    let mut status = HeaderMap::new();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        if let Some(value) = headers.remove(name) {
            status.insert(name, value);
        }
    }
    status
}

/// The trailer frame for `trailers`: flag `0x80`, the length (big-endian u32), then each
/// trailer as `name: value\r\n` (names are lower case, as HTTP/2 keeps them).
pub fn trailer_frame(trailers: &HeaderMap) -> Bytes {
    let mut block = BytesMut::new();
    for (name, value) in trailers {
        block.put_slice(name.as_str().as_bytes());
        block.put_slice(b": ");
        block.put_slice(value.as_bytes());
        block.put_slice(b"\r\n");
    }
    let mut frame = BytesMut::with_capacity(5 + block.len());
    frame.put_u8(TRAILER_FLAG);
    frame.put_u32(u32::try_from(block.len()).unwrap_or(u32::MAX));
    frame.put_slice(&block);
    frame.freeze()
}

#[cfg(test)]
mod tests;
