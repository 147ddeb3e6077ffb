//! Is a certificate revoked? OCSP (RFC 6960) first, then the CRL from the certificate's
//! distribution point, each answer checked (signature, freshness, that it is about this
//! certificate) and cached until it expires.
//!
//! Outcomes, and what each policy does with them:
//! - good or revoked: a definitive answer from a valid OCSP response or CRL. Revocation is
//!   final, so a revoked status counts even from a response past its nextUpdate.
//! - unavailable: nobody gave a current answer (no responder or distribution point, a
//!   responder down, slow or answering tryLater, an expired response or CRL). `require`
//!   refuses the certificate; `prefer` accepts it and logs a warning.
//! - invalid or unknown: an answer that cannot be trusted (wrong signer, not about this
//!   certificate, malformed) or a responder that does not know the certificate. Refused under
//!   `require` and `prefer` alike: failing open on them would let whoever tampers with the
//!   traffic decide.
//!
//! OCSP and CRLs travel over plain HTTP, as RFC 5019 and DoD's responders and CRL servers do
//! (the answers are signed; HTTPS would need revocation checking of its own).

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::asn1::{Null, ObjectIdentifier, OctetString};
use der::{Any, Decode as _, Encode as _};
use ring::signature::{self, UnparsedPublicKey};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest,
};
mod args;
mod ocsp;

pub use args::{RevocationArgs, RevocationSource};
use ocsp::*;

use x509_parser::prelude::{
    DistributionPointName, FromDer, GeneralName, ParsedExtension, X509Certificate,
};

/// What a verifier does when it cannot learn a certificate's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationPolicy {
    /// Fail closed: no current answer, no login.
    Require,
    /// Fail open when no responder answers (logged); a revoked, unknown or forged answer still
    /// refuses.
    Prefer,
    /// No checking.
    Off,
}

/// How a verifier checks revocation. `Default` is off.
#[derive(Debug, Clone)]
pub struct RevocationSettings {
    pub policy: RevocationPolicy,
    /// Ask OCSP responders.
    pub ocsp: bool,
    /// Fetch CRLs when OCSP gave no answer.
    pub crl: bool,
    /// Ask this OCSP responder (http://) instead of the one the certificate names (its
    /// authorityInfoAccess), as DoD relying parties configure theirs.
    pub ocsp_responder: Option<String>,
    /// Responder certificates (DER) trusted to sign OCSP answers for any issuer: DoD's
    /// responders sign with certificates of their own, not delegated by each issuing CA.
    /// Answers signed by the issuing CA, or by a certificate it issued for OCSP signing
    /// (id-kp-OCSPSigning), are accepted without configuration.
    pub ocsp_signers: Vec<Vec<u8>>,
    /// Each HTTP exchange, from connecting to the last byte.
    pub timeout: Duration,
}

impl Default for RevocationSettings {
    fn default() -> Self {
        Self {
            policy: RevocationPolicy::Off,
            ocsp: true,
            crl: true,
            ocsp_responder: None,
            ocsp_signers: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// What the verifier learnt of a certificate's revocation, reported with its identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum Revocation {
    /// Checking is off.
    #[default]
    NotChecked,
    /// Not revoked, according to `source` (an OCSP responder's or a CRL's URL).
    Good { source: String },
    /// Nobody answered; accepted under the `prefer` policy.
    Unavailable { reason: String },
}

/// A refusal on revocation grounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationFailure {
    Revoked { source: String },
    Unknown { source: String },
    Invalid(String),
    Unavailable(String),
}

/// An HTTP body is never read beyond these: a CRL of a large CA runs to megabytes.
const MAX_OCSP_RESPONSE: u64 = 1 << 20;
const MAX_CRL: u64 = 64 << 20;
/// Clocks differ: an answer produced up to this far in the future is current.
const CLOCK_SKEW: u64 = 300;
/// An OCSP answer with no nextUpdate is current for this long after its thisUpdate (and never
/// cached).
const MAX_AGE_WITHOUT_NEXT_UPDATE: u64 = 3600;
/// A verified CRL is kept at most this long, whatever its nextUpdate says (DoD CRLs run a week):
/// a CA's emergency reissue is seen within hours.
const MAX_CRL_CACHE: u64 = 6 * 3600;
/// Revocation fetches in flight at once, and how long a check waits for its turn: slow
/// responders tie up this many threads, never the whole blocking pool.
const MAX_FETCHES_IN_FLIGHT: usize = 8;
const FETCH_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

const OCSP_ACCESS: &str = "1.3.6.1.5.5.7.48.1";

/// The issuer of the certificate being checked, from the verified path.
pub(crate) struct Issuer {
    /// The issuer as a trust anchor of its own: the certificate checked against it alone.
    pub anchor: rustls_pki_types::TrustAnchor<'static>,
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
}

/// One answer, before the policy.
enum Answer {
    Good,
    Revoked,
    Unknown,
    Invalid(String),
    Unavailable(String),
}

struct CachedOcsp {
    revoked: Option<bool>, // Some(false) good, Some(true) revoked, None unknown
    until: u64,
}

/// A cached CRL's key: its URL and the issuer key it verified under.
type CrlKey = (String, Vec<u8>);

pub(crate) struct RevocationChecker {
    settings: RevocationSettings,
    agent: ureq::Agent,
    ocsp_cache: Mutex<HashMap<Vec<u8>, CachedOcsp>>,
    /// Parsed once, shared by the checks that use it: a DoD CRL runs to megabytes. Keyed by URL
    /// and the issuer's key, and only after the CRL verified under that key: a forged CRL is
    /// never kept (the second security review's M2).
    crl_cache: Mutex<HashMap<CrlKey, (Arc<webpki::CertRevocationList<'static>>, u64)>>,
    /// Fetches in flight (at most [`MAX_FETCHES_IN_FLIGHT`]).
    in_flight: (Mutex<usize>, std::sync::Condvar),
    /// HTTP exchanges made (tests and diagnostics: the cache's effect).
    fetches: std::sync::atomic::AtomicU64,
}

impl RevocationChecker {
    pub fn new(settings: RevocationSettings) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(true)
            // A responder's redirect could point anywhere (an internal address): none followed.
            .max_redirects(0)
            .build()
            .new_agent();
        Self {
            settings,
            agent,
            ocsp_cache: Mutex::new(HashMap::new()),
            crl_cache: Mutex::new(HashMap::new()),
            in_flight: (Mutex::new(0), std::sync::Condvar::new()),
            fetches: Default::default(),
        }
    }

    /// Run `fetch` when one of the fetch slots is free, waiting at most
    /// [`FETCH_QUEUE_TIMEOUT`] for it.
    fn gated<T>(&self, fetch: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        let (count, freed) = &self.in_flight;
        {
            let guard = count.lock().unwrap_or_else(|p| p.into_inner());
            let (mut guard, waited) = freed
                .wait_timeout_while(guard, FETCH_QUEUE_TIMEOUT, |n| *n >= MAX_FETCHES_IN_FLIGHT)
                .unwrap_or_else(|p| p.into_inner());
            if waited.timed_out() && *guard >= MAX_FETCHES_IN_FLIGHT {
                return Err("too many revocation checks in progress".into());
            }
            *guard += 1;
        }
        let result = fetch();
        *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        freed.notify_one();
        result
    }

    pub fn policy(&self) -> RevocationPolicy {
        self.settings.policy
    }

    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The status of `der` (already path-validated up to `issuer`), under the policy.
    pub fn check(
        &self,
        der: &[u8],
        issuer: &Issuer,
        now: SystemTime,
    ) -> Result<Revocation, RevocationFailure> {
        if self.settings.policy == RevocationPolicy::Off {
            return Ok(Revocation::NotChecked);
        }
        let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| RevocationFailure::Invalid(format!("certificate: {e}")))?;
        let mut worst: Option<(Answer, String)> = None;
        let mut consider = |answer: Answer, source: String| -> Option<Result<_, _>> {
            match answer {
                Answer::Good => Some(Ok(Revocation::Good { source })),
                Answer::Revoked => Some(Err(RevocationFailure::Revoked { source })),
                other => {
                    // Keep the gravest: an untrustworthy answer outranks a missing one.
                    let rank = |a: &Answer| match a {
                        Answer::Unavailable(_) => 0,
                        _ => 1,
                    };
                    if worst.as_ref().is_none_or(|(w, _)| rank(&other) > rank(w)) {
                        worst = Some((other, source));
                    }
                    None
                }
            }
        };
        if self.settings.ocsp {
            match self.ocsp_url(&cert) {
                Some(url) => {
                    let answer = self.ocsp(&cert, issuer, &url, now, now_s);
                    if let Some(done) = consider(answer, url) {
                        return done;
                    }
                }
                None => {
                    consider(
                        Answer::Unavailable("the certificate names no OCSP responder".into()),
                        String::new(),
                    );
                }
            }
        }
        if self.settings.crl {
            let urls = crl_urls(&cert);
            if urls.is_empty() {
                consider(
                    Answer::Unavailable("the certificate names no http:// CRL".into()),
                    String::new(),
                );
            }
            for url in urls {
                let answer = self.crl(der, issuer, &url, now_s);
                if let Some(done) = consider(answer, url) {
                    return done;
                }
            }
        }
        let (answer, source) = worst.unwrap_or((
            Answer::Unavailable("neither OCSP nor CRLs are enabled".into()),
            String::new(),
        ));
        match answer {
            Answer::Unknown => Err(RevocationFailure::Unknown { source }),
            Answer::Invalid(why) => Err(RevocationFailure::Invalid(format!("{source}: {why}"))),
            Answer::Unavailable(why) => {
                let reason = if source.is_empty() {
                    why
                } else {
                    format!("{source}: {why}")
                };
                if self.settings.policy == RevocationPolicy::Prefer {
                    tracing::warn!(%reason, "revocation status unavailable; accepted (policy prefer)");
                    Ok(Revocation::Unavailable { reason })
                } else {
                    Err(RevocationFailure::Unavailable(reason))
                }
            }
            Answer::Good | Answer::Revoked => unreachable!("definitive answers returned above"),
        }
    }

    fn ocsp_url(&self, cert: &X509Certificate<'_>) -> Option<String> {
        if let Some(url) = &self.settings.ocsp_responder {
            return Some(url.clone());
        }
        cert.extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::AuthorityInfoAccess(aia) => aia.accessdescs.iter().find_map(|d| {
                    match (&d.access_method.to_id_string(), &d.access_location) {
                        (method, GeneralName::URI(uri))
                            if method == OCSP_ACCESS && uri.starts_with("http://") =>
                        {
                            Some((*uri).to_owned())
                        }
                        _ => None,
                    }
                }),
                _ => None,
            })
    }

    fn http(
        &self,
        request: ureq::RequestBuilder<ureq::typestate::WithBody>,
        body: &[u8],
        limit: u64,
    ) -> Result<Vec<u8>, String> {
        self.gated(|| {
            self.fetches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut response = request.send(body).map_err(|e| e.to_string())?;
            read_limited(response.body_mut(), limit)
        })
    }

    fn get(&self, url: &str, limit: u64) -> Result<Vec<u8>, String> {
        self.gated(|| {
            self.fetches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut response = self.agent.get(url).call().map_err(|e| e.to_string())?;
            read_limited(response.body_mut(), limit)
        })
    }

    fn ocsp(
        &self,
        cert: &X509Certificate<'_>,
        issuer: &Issuer,
        url: &str,
        now: SystemTime,
        now_s: u64,
    ) -> Answer {
        let cert_id = match cert_id(cert, issuer) {
            Ok(id) => id,
            Err(why) => return Answer::Invalid(why),
        };
        let key = cert_id.to_der().unwrap_or_default();
        if let Some(cached) = self
            .ocsp_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            if now_s < cached.until {
                return match cached.revoked {
                    Some(false) => Answer::Good,
                    Some(true) => Answer::Revoked,
                    None => Answer::Unknown,
                };
            }
        }
        let request = OcspRequest {
            tbs_request: TbsRequest {
                version: Default::default(),
                requestor_name: None,
                request_list: vec![Request {
                    req_cert: cert_id.clone(),
                    single_request_extensions: None,
                }],
                request_extensions: None,
            },
            optional_signature: None,
        };
        let Ok(body) = request.to_der() else {
            return Answer::Invalid("cannot encode the OCSP request".into());
        };
        let posted = self.http(
            self.agent
                .post(url)
                .header("Content-Type", "application/ocsp-request"),
            &body,
            MAX_OCSP_RESPONSE,
        );
        let bytes = match posted {
            Ok(bytes) => bytes,
            Err(why) => return Answer::Unavailable(format!("OCSP responder: {why}")),
        };
        let (answer, until) =
            check_ocsp_response(&bytes, &cert_id, issuer, &self.settings, now, now_s);
        if let Some(until) = until {
            let revoked = match answer {
                Answer::Good => Some(false),
                Answer::Revoked => Some(true),
                Answer::Unknown => None,
                _ => return answer,
            };
            self.ocsp_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, CachedOcsp { revoked, until });
        }
        answer
    }

    fn crl(&self, der: &[u8], issuer: &Issuer, url: &str, now_s: u64) -> Answer {
        let key = (url.to_owned(), issuer.spki.clone());
        let cached = {
            let cache = self.crl_cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&key)
                .filter(|(_, until)| now_s < *until)
                .map(|(crl, _)| Arc::clone(crl))
        };
        // A CRL fetched now, to be kept once it verified, and until when.
        let mut fetched = None;
        let crl = match cached {
            Some(crl) => crl,
            None => {
                let bytes = match self.get(url, MAX_CRL) {
                    Ok(bytes) => bytes,
                    Err(why) => return Answer::Unavailable(format!("CRL: {why}")),
                };
                // A CRL may be served as DER or PEM.
                let der = pem_or_der(&bytes, "X509 CRL");
                let next_update =
                    x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
                        .ok()
                        .and_then(|(_, crl)| crl.next_update())
                        .map(|t| t.timestamp().max(0) as u64);
                let crl = match webpki::OwnedCertRevocationList::from_der(&der) {
                    Ok(crl) => Arc::new(webpki::CertRevocationList::Owned(crl)),
                    Err(e) => return Answer::Invalid(format!("CRL: {e:?}")),
                };
                fetched = next_update
                    .filter(|until| now_s < *until)
                    .map(|until| until.min(now_s + MAX_CRL_CACHE));
                crl
            }
        };
        let crls = [&*crl];
        let Ok(builder) = webpki::RevocationOptionsBuilder::new(&crls) else {
            return Answer::Invalid("no CRL".into());
        };
        let options = builder
            .with_depth(webpki::RevocationCheckDepth::EndEntity)
            .with_status_policy(webpki::UnknownStatusPolicy::Deny)
            .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
            .build();
        let der = CertificateDer::from(der);
        let Ok(end_entity) = webpki::EndEntityCert::try_from(&der) else {
            return Answer::Invalid("certificate".into());
        };
        let time = UnixTime::since_unix_epoch(Duration::from_secs(now_s));
        // The certificate against its issuer alone, now with the CRL: webpki checks the CRL's
        // signature by that issuer, its scope and its dates.
        let verdict = end_entity.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            std::slice::from_ref(&issuer.anchor),
            &[],
            time,
            webpki::KeyUsage::client_auth(),
            Some(options),
            None,
        );
        // Kept only when webpki accepted the CRL (its signature by this issuer, its scope and
        // dates): the certificate is good or revoked under it.
        if let (Some(until), Ok(_) | Err(webpki::Error::CertRevoked)) = (fetched, &verdict) {
            self.crl_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, (Arc::clone(&crl), until));
        }
        match verdict {
            Ok(_) => Answer::Good,
            Err(webpki::Error::CertRevoked) => Answer::Revoked,
            Err(webpki::Error::CrlExpired { .. }) => {
                Answer::Unavailable("the CRL is past its nextUpdate".into())
            }
            Err(webpki::Error::UnknownRevocationStatus) => {
                Answer::Invalid("the CRL does not cover this certificate".into())
            }
            Err(e) => Answer::Invalid(format!("CRL: {e:?}")),
        }
    }
}

fn read_limited(body: &mut ureq::Body, limit: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    body.as_reader()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(format!("the answer is larger than {limit} bytes"));
    }
    Ok(bytes)
}

fn pem_or_der(bytes: &[u8], label: &str) -> Vec<u8> {
    x509_parser::pem::Pem::iter_from_buffer(bytes)
        .filter_map(Result::ok)
        .find(|p| p.label == label)
        .map(|p| p.contents)
        .unwrap_or_else(|| bytes.to_vec())
}

/// The http:// URIs of the certificate's CRL distribution points (DoD's also name LDAP ones).
fn crl_urls(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.extensions()
        .iter()
        .filter_map(|ext| match ext.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(points) => Some(
                points
                    .iter()
                    .filter_map(|p| match &p.distribution_point {
                        Some(DistributionPointName::FullName(names)) => Some(names.clone()),
                        _ => None,
                    })
                    .flatten()
                    .filter_map(|name| match name {
                        GeneralName::URI(uri) if uri.starts_with("http://") => Some(uri.to_owned()),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}
