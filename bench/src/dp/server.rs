//! The benchmark server: the tests' `weft.test.Echo` service (tests/proto/echo.proto)
//! answering Unary and BidiStream by echoing the message, on a single-threaded runtime
//! with TCP_NODELAY on every accepted connection. (The tests' own backend accepts through
//! `serve_with_incoming`, which leaves Nagle on: its multi-frame replies then wait ~40 ms
//! for the client's delayed ACK, which would swamp every latency figure here.)

use std::net::SocketAddr;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use weft_tests::backend::pb::echo_server::{Echo, EchoServer};
use weft_tests::backend::pb::{EchoReply, EchoRequest};

/// The name the server gives in replies.
const INSTANCE: &str = "bench";

type Replies = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

fn reply(request: EchoRequest, received: u32) -> EchoReply {
    EchoReply {
        message: request.message,
        instance: INSTANCE.into(),
        received,
        padding: Vec::new(),
    }
}

struct BenchEcho;

#[tonic::async_trait]
impl Echo for BenchEcho {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        Ok(Response::new(reply(request.into_inner(), 1)))
    }

    type ServerStreamStream = Replies;

    async fn server_stream(
        &self,
        _: Request<EchoRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        Err(Status::unimplemented(
            "the benchmark server answers Unary and BidiStream",
        ))
    }

    async fn client_stream(
        &self,
        _: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented(
            "the benchmark server answers Unary and BidiStream",
        ))
    }

    type BidiStreamStream = Replies;

    async fn bidi_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<Self::BidiStreamStream>, Status> {
        let replies = request
            .into_inner()
            .enumerate()
            .map(|(i, message)| message.map(|m| reply(m, i as u32 + 1)));
        Ok(Response::new(Box::pin(replies)))
    }
}

/// Serves on `addr` until SIGTERM or SIGINT.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    eprintln!("weft-bench serve: weft.test.Echo on {addr}");
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(EchoServer::new(BenchEcho))
        .serve_with_shutdown(addr, async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    Ok(())
}
