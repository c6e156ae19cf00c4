//! `HttpClient` over HTTPS to a server whose certificate comes from a private CA, as PBXs
//! often have: a TLS front (certificate in `tests/data`, valid until 2126) passes
//! connections on to the embedded test server.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tower_bearer_auth::{
    BearerAuthLayer,
    client::HttpClient,
    provider::{
        TokenProvider,
        oauth2::{OAuth2Error, OAuth2ErrorKind},
        portsip::PortSip,
    },
    test_server::{TestServer, TestServerConfig},
};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Listens for TLS on 127.0.0.1 and forwards each decrypted connection to `backend`.
async fn tls_front(backend: SocketAddr) -> SocketAddr {
    tls_front_recording(backend, Arc::default()).await
}

/// [`tls_front`], recording the key exchange group of each handshake in `groups`.
async fn tls_front_recording(
    backend: SocketAddr,
    groups: Arc<Mutex<Vec<rustls::NamedGroup>>>,
) -> SocketAddr {
    let certs = CertificateDer::pem_file_iter(data("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(data("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let groups = groups.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                if let Some(group) = tls.get_ref().1.negotiated_key_exchange_group() {
                    groups.lock().unwrap().push(group.name());
                }
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn trusts_a_private_ca_from_a_pem_file() {
    let server = TestServer::start(TestServerConfig::new("admin", "pw"))
        .await
        .unwrap();
    let front = tls_front(server.addr()).await;
    let base_url = format!("https://localhost:{}", front.port());

    let client = HttpClient::builder()
        .add_ca_pem_file(data("ca.pem"))
        .build()
        .unwrap();
    let provider = PortSip::new(&base_url, "admin", "pw")
        .build_with(client.clone())
        .unwrap();
    let layer = BearerAuthLayer::new(provider);
    let pbx = tower::Layer::layer(&layer, client);
    let request = Request::get(format!("{base_url}/api/account/extensions"))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = pbx.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.counts().password_grants, 1);

    // Revocation goes over HTTPS too.
    layer.cache().revoke().await.unwrap();
    assert_eq!(server.counts().revocations, 1);
}

#[tokio::test]
async fn refuses_a_certificate_from_an_unknown_ca() {
    let server = TestServer::start(TestServerConfig::new("admin", "pw"))
        .await
        .unwrap();
    let front = tls_front(server.addr()).await;
    let provider = PortSip::new(format!("https://localhost:{}", front.port()), "admin", "pw")
        .build()
        .unwrap();
    let err = provider.login().await.unwrap_err();
    let err = err.downcast_ref::<OAuth2Error>().expect("an OAuth2Error");
    assert_eq!(err.kind(), &OAuth2ErrorKind::Transport);
    assert!(err.is_transient());
    assert_eq!(server.counts().token_requests, 0);
}

/// The client uses rustls's default provider, aws-lc-rs, whose first key exchange is the
/// post-quantum hybrid `X25519MLKEM768` (the server offers it too).
#[tokio::test]
async fn negotiates_the_post_quantum_key_exchange() {
    let server = TestServer::start(TestServerConfig::new("admin", "pw"))
        .await
        .unwrap();
    let groups = Arc::default();
    let front = tls_front_recording(server.addr(), Arc::clone(&groups)).await;
    let client = HttpClient::builder()
        .add_ca_pem_file(data("ca.pem"))
        .build()
        .unwrap();
    let provider = PortSip::new(format!("https://localhost:{}", front.port()), "admin", "pw")
        .build_with(client)
        .unwrap();
    provider.login().await.unwrap();
    assert_eq!(
        *groups.lock().unwrap(),
        [rustls::NamedGroup::X25519MLKEM768]
    );
}
