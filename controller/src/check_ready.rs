//! `weft-controller --check-ready URL`: one HTTP GET of a controller's `/ready`, for the
//! chart's `helm test` Pod (the image has no curl). Exit 0 on 200, else one line saying what
//! answered.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

/// Asks `url` (http only) and succeeds on 200.
pub async fn check_ready(url: &str) -> anyhow::Result<()> {
    let uri: http::Uri = url
        .parse()
        .map_err(|err| anyhow::anyhow!("--check-ready {url}: {err}"))?;
    if uri.scheme_str() != Some("http") {
        anyhow::bail!("--check-ready {url}: expected an http:// URL");
    }
    let host = uri
        .host()
        .ok_or_else(|| anyhow::anyhow!("--check-ready {url}: no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let asked = async {
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = http::Request::get(uri.path())
            .header(http::header::HOST, format!("{host}:{port}"))
            .body(Empty::<Bytes>::new())?;
        anyhow::Ok(sender.send_request(request).await?.status())
    };
    match tokio::time::timeout(Duration::from_secs(10), asked).await {
        Ok(Ok(status)) if status == http::StatusCode::OK => {
            println!("{url}: ready");
            Ok(())
        }
        Ok(Ok(status)) => anyhow::bail!("{url}: not ready ({status})"),
        Ok(Err(err)) => anyhow::bail!("{url}: {err}"),
        Err(_) => anyhow::bail!("{url}: no answer within 10s"),
    }
}
