//! The revocation options of `cacbridge-verify` and the portal (clap), as settings.

use super::*;

/// The revocation options of `cacbridge-verify` and the portal, alike.
#[derive(Debug, Clone, clap::Args)]
pub struct RevocationArgs {
    /// Revocation checking: require (refuse when no current answer), prefer (accept and log
    /// when no responder answers; a revoked, unknown or forged answer still refuses), or off.
    #[arg(long = "revocation", value_name = "POLICY", default_value = "require")]
    pub policy: RevocationPolicy,
    /// Where to look (comma-separated): ocsp, crl. OCSP is asked first; a CRL when OCSP gave
    /// no answer.
    #[arg(
        long = "revocation-sources",
        value_name = "SOURCES",
        value_delimiter = ',',
        default_value = "ocsp,crl"
    )]
    pub sources: Vec<RevocationSource>,
    /// Ask this OCSP responder (http://) for every certificate instead of the one each
    /// certificate names, as DoD relying parties configure theirs.
    #[arg(long = "ocsp-responder", value_name = "URL")]
    pub ocsp_responder: Option<String>,
    /// A PEM file of OCSP responder certificates trusted to sign answers (repeatable): DoD's
    /// responders sign with certificates of their own.
    #[arg(long = "ocsp-signer", value_name = "PEM")]
    pub ocsp_signers: Vec<std::path::PathBuf>,
    /// Seconds to wait for each OCSP responder or CRL server.
    #[arg(
        long = "revocation-timeout",
        value_name = "SECONDS",
        default_value_t = 5
    )]
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RevocationSource {
    Ocsp,
    Crl,
}

impl clap::ValueEnum for RevocationPolicy {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Require, Self::Prefer, Self::Off]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            Self::Require => "require",
            Self::Prefer => "prefer",
            Self::Off => "off",
        }))
    }
}

impl RevocationArgs {
    /// The settings, with the signer files read.
    pub fn settings(&self) -> Result<RevocationSettings, String> {
        let mut ocsp_signers = Vec::new();
        for path in &self.ocsp_signers {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let before = ocsp_signers.len();
            for block in x509_parser::pem::Pem::iter_from_buffer(&pem) {
                let block = block.map_err(|e| format!("{}: {e}", path.display()))?;
                if block.label == "CERTIFICATE" {
                    ocsp_signers.push(block.contents);
                }
            }
            if ocsp_signers.len() == before {
                return Err(format!("{}: no certificate", path.display()));
            }
        }
        if let Some(url) = &self.ocsp_responder {
            if !url.starts_with("http://") {
                return Err(format!(
                    "--ocsp-responder {url}: OCSP is asked over http:// (its answers are signed)"
                ));
            }
        }
        Ok(RevocationSettings {
            policy: self.policy,
            ocsp: self.sources.contains(&RevocationSource::Ocsp),
            crl: self.sources.contains(&RevocationSource::Crl),
            ocsp_responder: self.ocsp_responder.clone(),
            ocsp_signers,
            timeout: Duration::from_secs(self.timeout_seconds.max(1)),
        })
    }
}
