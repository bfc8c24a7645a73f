use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use weft_common::ca_api::CertificateResponse;
use weft_common::ca_api::certificate_service_server::{
    CertificateService, CertificateServiceServer,
};

use super::*;
use crate::tls::testca::{HOUR, ID_A, ID_C, TestCa};

/// A controller's certificate service in miniature: signs for `ID_A` when the token is
/// `good-token`, refuses otherwise, and remembers the validity asked for.
struct FakeCa {
    ca: TestCa,
    asked_validity: Mutex<Vec<i64>>,
}

#[tonic::async_trait]
impl CertificateService for FakeCa {
    async fn create_certificate(
        &self,
        request: Request<CertificateRequest>,
    ) -> Result<Response<CertificateResponse>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap());
        if authorization != Some("Bearer good-token") {
            return Err(Status::permission_denied("the token is not valid"));
        }
        self.asked_validity
            .lock()
            .unwrap()
            .push(request.get_ref().validity_seconds);
        let now = SystemTime::now();
        let leaf = self
            .ca
            .sign_csr(&request.get_ref().csr, &[ID_A], now - HOUR, now + HOUR);
        Ok(Response::new(self.ca.response_with(leaf, ID_A)))
    }
}

async fn serve(fake: Arc<FakeCa>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CertificateServiceServer::from_arc(fake))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy()
}

#[tokio::test]
async fn requests_with_the_token_and_checks_the_answer() {
    let fake = Arc::new(FakeCa {
        ca: TestCa::new("root"),
        asked_validity: Mutex::default(),
    });
    let addr = serve(fake.clone()).await;
    let key = WorkloadKey::generate().unwrap();

    let credentials = request_certificate(channel(addr), "good-token\n", None, &key, Some(HOUR))
        .await
        .unwrap();
    assert_eq!(credentials.spiffe_id.to_string(), ID_A);
    request_certificate(channel(addr), "good-token", None, &key, None)
        .await
        .unwrap();
    assert_eq!(*fake.asked_validity.lock().unwrap(), [3600, 0]);

    let err = request_certificate(channel(addr), "bad-token", None, &key, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the controller refused the certificate request: PERMISSION_DENIED: the token is not valid"
    );
    let err = request_certificate(channel(addr), "bad\u{1}token", None, &key, None)
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::TokenNotAscii), "{err}");
}

#[tokio::test]
async fn an_unreachable_controller_says_so() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let key = WorkloadKey::generate().unwrap();
    let err = request_certificate(channel(addr), "good-token", None, &key, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Unreachable {
                code: "UNAVAILABLE",
                ..
            }
        ),
        "{err}"
    );
}

/// A fetch that plays `script` in order, then never answers again.
fn scripted(
    script: Vec<Result<Credentials, TlsError>>,
) -> (
    impl FnMut() -> futures::future::BoxFuture<'static, Result<Credentials, TlsError>>,
    Arc<Mutex<usize>>,
) {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let fetch = move || {
        *counter.lock().unwrap() += 1;
        let next = script.lock().unwrap().pop_front();
        let answer: futures::future::BoxFuture<'static, _> = match next {
            Some(answer) => Box::pin(std::future::ready(answer)),
            None => Box::pin(std::future::pending()),
        };
        answer
    };
    (fetch, calls)
}

/// Credentials that expire in two seconds, so the loop renews them about a second after
/// receiving them (half the remaining lifetime; the backdated `not_before` does not count).
fn short_lived(ca: &TestCa, id: &str) -> Credentials {
    let key = WorkloadKey::generate().unwrap();
    let now = SystemTime::now();
    let leaf = ca.sign_valid(&key, &[id], now - 2 * HOUR, now + Duration::from_secs(2));
    Credentials::from_response(&key, &ca.response_with(leaf, id)).unwrap()
}

fn fast_retry(_: u32) -> Duration {
    Duration::from_millis(10)
}

fn identity(configs: &Option<Arc<TlsConfigs>>) -> Option<String> {
    configs.as_ref().map(|tls| tls.identity.to_string())
}

#[tokio::test]
async fn retries_a_failure_then_publishes_and_renews_when_due() {
    let ca = TestCa::new("root");
    let (fetch, calls) = scripted(vec![
        Err(TlsError::Token("not mounted yet".into())),
        Ok(short_lived(&ca, ID_A)),
        Ok(ca.credentials(ID_C)),
    ]);
    let (tx, mut rx) = watch::channel(None);
    let task = tokio::spawn(rotate(fetch, tx, fast_retry));
    let seen = tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|configs| identity(configs).as_deref() == Some(ID_C)),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert_eq!(identity(&seen).as_deref(), Some(ID_C));
    // The fresh certificate is not due yet: the loop sleeps instead of fetching again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(*calls.lock().unwrap(), 3);
    task.abort();
}

#[tokio::test]
async fn a_failed_renewal_keeps_the_current_certificate() {
    let ca = TestCa::new("root");
    let (fetch, calls) = scripted(vec![
        Ok(short_lived(&ca, ID_A)),
        Err(TlsError::Refused {
            code: "UNAVAILABLE",
            message: "down".into(),
        }),
    ]);
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(rotate(fetch, tx, fast_retry));
    // After the failure the loop retries (the third call, which never answers).
    tokio::time::timeout(Duration::from_secs(10), async {
        while *calls.lock().unwrap() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(identity(&rx.borrow()).as_deref(), Some(ID_A));
    task.abort();
}

#[tokio::test]
async fn stops_when_nobody_listens() {
    let ca = TestCa::new("root");
    let script = (0..20).map(|_| Ok(short_lived(&ca, ID_A))).collect();
    let (fetch, _) = scripted(script);
    let (tx, mut rx) = watch::channel(None);
    let task = tokio::spawn(rotate(fetch, tx, fast_retry));
    rx.wait_for(Option::is_some).await.unwrap();
    drop(rx);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}
