//! The TLS side of serving: a rustls acceptor from PEM certificate chain and key files, with
//! session resumption (stateless tickets, and a session-ID cache for TLS 1.2), whose
//! certificate can be replaced while serving (`SIGHUP`): new handshakes get the new one, open
//! connections keep theirs. Choices and their measurements: docs/configuration.md, "TLS".

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;

use crate::limits::{TLS13_TICKETS_PER_HANDSHAKE, TLS_SESSION_CACHE_ENTRIES};

/// The certificate in use, swapped whole on reload.
#[derive(Debug)]
pub struct Reloadable {
    current: RwLock<Arc<CertifiedKey>>,
    cert: PathBuf,
    key: PathBuf,
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

impl Reloadable {
    /// Reads the files again; on any error the certificate in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = load(&self.cert, &self.key)?;
        *self.current.write() = Arc::new(fresh);
        Ok(())
    }
}

/// The cryptography behind every handshake, with TLS 1.3's AES-128-GCM-SHA256 first: the
/// server picks by its own order (`ignore_client_order`), and SHA-256 runs on the CPU's
/// SHA instructions where SHA-384 (of the AES-256 suite OpenSSL clients ask for first) has
/// none. Both choices measured: docs/configuration.md, "TLS".
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(p)
}

fn load(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(cert)?))
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in {}", cert.display());
    }
    let key_der =
        rustls_pemfile::private_key(&mut std::io::BufReader::new(std::fs::File::open(key)?))?
            .ok_or_else(|| anyhow::anyhow!("no private key in {}", key.display()))?;
    let signing = provider().key_provider.load_private_key(key_der)?;
    let ck = CertifiedKey::new(certs, signing);
    // The key must belong to the certificate: a mismatched pair is refused here, not at
    // the next handshake.
    ck.keys_match()?;
    Ok(ck)
}

/// The server configuration for `cert` and `key`, and the handle that reloads them.
pub fn config(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Arc<rustls::ServerConfig>, Arc<Reloadable>)> {
    let resolver = Arc::new(Reloadable {
        current: RwLock::new(Arc::new(load(cert, key)?)),
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    // After the handshake the keys go to Skab's own record layer (http/tls_records.rs), and
    // rustls's session is dropped: an idle connection then holds a few hundred bytes of keys.
    config.enable_secret_extraction = true;
    // Resumption: a returning client skips the certificate and its signature (with a
    // P-256 key about a tenth of the handshake's CPU; TLS 1.3 keeps the X25519 exchange).
    // Tickets are encrypted with keys that rotate every 6 hours and live only in this
    // process: a restart means one full handshake per client.
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    config.send_tls13_tickets = TLS13_TICKETS_PER_HANDSHAKE;
    config.session_storage = ServerSessionMemoryCache::new(TLS_SESSION_CACHE_ENTRIES);
    Ok((Arc::new(config), resolver))
}
