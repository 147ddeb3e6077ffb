//! Trust anchors and intermediates. The DoD PKI bundle (DISA v5.14: Root CA 3-6 and their ID,
//! EMAIL, SW and DERILITY intermediates) ships inside the certificate crate (cacbridge-cert); DoD adds CAs about yearly, so
//! a portal can load a newer bundle instead.

use rustls_pki_types::{CertificateDer, TrustAnchor};
use x509_parser::prelude::{FromDer, X509Certificate};

use cacbridge_cert::DOD_BUNDLE;

pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
}

impl TrustStore {
    /// DISA's DoD bundle v5.14, as shipped in this crate.
    pub fn dod() -> TrustStore {
        TrustStore::from_pem(DOD_BUNDLE).expect("the shipped DoD bundle parses")
    }

    /// The bundle at `path`, or the shipped DoD bundle when there is no path (what a portal's
    /// `--trust-bundle` option means).
    pub fn load(path: Option<&std::path::Path>) -> Result<TrustStore, String> {
        match path {
            None => Ok(TrustStore::dod()),
            Some(path) => std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|pem| TrustStore::from_pem(&pem))
                .map_err(|e| format!("{}: {e}", path.display())),
        }
    }

    /// A PEM bundle: self-signed certificates become trust anchors, the others intermediates.
    pub fn from_pem(pem: &[u8]) -> Result<TrustStore, String> {
        let mut anchors = Vec::new();
        let mut intermediates = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
            let block = block.map_err(|e| format!("PEM: {e}"))?;
            if block.label != "CERTIFICATE" {
                continue;
            }
            let (_, cert) = X509Certificate::from_der(&block.contents)
                .map_err(|e| format!("certificate in bundle: {e}"))?;
            let self_signed = cert.subject() == cert.issuer();
            let der = CertificateDer::from(block.contents.clone());
            if self_signed {
                let anchor = webpki::anchor_from_trusted_cert(&der)
                    .map_err(|e| format!("trust anchor {}: {e:?}", cert.subject()))?;
                anchors.push(anchor.to_owned());
            } else {
                intermediates.push(der);
            }
        }
        if anchors.is_empty() {
            return Err("the bundle holds no self-signed root".into());
        }
        Ok(TrustStore {
            anchors,
            intermediates,
        })
    }

    pub fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }

    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        &self.intermediates
    }
}
