//! A `skab` serving HTTPS with a fresh self-signed certificate (for `localhost` and
//! 127.0.0.1) given in `[tls]` of its config, and the certificate for clients to trust.

use rustls::pki_types::CertificateDer;

use super::{Opts, Server, PASSWORD, TENANT, USER};

pub struct TlsServer {
    pub server: Server,
    pub cert_der: CertificateDer<'static>,
}

/// Starts the server with `extra_config` (TOML) after the `[tls]` section.
pub fn start(extra_config: &str) -> TlsServer {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let cert = keys.path().join("cert.pem");
    let key = keys.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let mut opts = Opts::default()
        .user(TENANT, USER, PASSWORD)
        .config(&format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n{extra_config}",
            cert.to_str().unwrap(),
            key.to_str().unwrap()
        ));
    opts.tls = true;
    let server = Server::start_opts(opts);
    // The key files may go once the server has read them.
    drop(keys);
    TlsServer {
        server,
        cert_der: certified.cert.der().clone(),
    }
}
