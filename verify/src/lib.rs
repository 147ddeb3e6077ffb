//! Server-side verification of CAC Bridge authentication tokens (`cacbridge:1`).
//!
//! A portal issues a nonce ([`NonceStore`]), the person's card signs `H(origin) || H(nonce)`
//! through the extension and host, and the portal checks the token with [`Verifier`]:
//! format, certificate validity and usage, the path to its trust anchors (rustls-webpki), an
//! optional allow-list of certificate policies, revocation ([`RevocationSettings`]: OCSP and
//! CRLs), and the signature. The result is the
//! [`Identity`] to register or log in. Every rejection is its own [`VerifyError`] variant.

pub mod cli;
mod nonce;
mod revocation;
mod token;
mod trust;

use std::time::{SystemTime, UNIX_EPOCH};

use ring::signature::{self, UnparsedPublicKey};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use cacbridge_cert::{CertificateInfo, NotAuthentication};

pub use cacbridge_cert::token::{authentication_message, Algorithm, AuthToken, TOKEN_FORMAT};
pub use nonce::{NonceStore, NonceTicket, NONCE_LIFETIME};
pub use revocation::{
    Revocation, RevocationArgs, RevocationPolicy, RevocationSettings, RevocationSource,
};
pub use token::Token;
pub use trust::TrustStore;

/// Why a token or a certificate was rejected, by what was wrong: the token itself, the
/// certificate, the nonce, or its revocation status (nested as rustls nests its errors, so a
/// caller matches a whole kind at once). Every variant has a stable [`VerifyError::code`].
/// Non-exhaustive for portals outside this workspace; its own matchers name every variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error(transparent)]
    Nonce(#[from] NonceError),
    #[error(transparent)]
    Revocation(#[from] RevocationError),
}

/// The token's own faults: its JSON, its fields, its algorithm, its signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("the token is {0} characters; a token is 100 to 10000")]
    TokenLength(usize),
    #[error("the token is not a JSON object")]
    TokenNotJson,
    #[error("the token lacks \"{0}\"")]
    MissingField(&'static str),
    #[error("the token's \"{0}\" is not a string")]
    FieldNotString(&'static str),
    #[error("the token's \"{0}\" is not base64")]
    FieldNotBase64(&'static str),
    #[error("unsupported token format {0:?}")]
    UnsupportedFormat(String),
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("algorithm {algorithm} does not fit a {key} key")]
    AlgorithmMismatch { algorithm: String, key: String },
    #[error("the signature has the wrong length for {0}")]
    SignatureLength(String),
    #[error("the signature does not match this origin and nonce")]
    BadSignature,
}

/// The certificate's faults: parsing, dates, profile, chain, the allow-lists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    #[error("the certificate cannot be parsed: {0}")]
    BadCertificate(String),
    #[error("the certificate is not valid before {0}")]
    CertificateNotYetValid(String),
    #[error("the certificate expired at {0}")]
    CertificateExpired(String),
    #[error("the certificate's key usage lacks digitalSignature")]
    MissingDigitalSignature,
    #[error("a Card Authentication certificate does not prove who holds the card")]
    CardAuthenticationCertificate,
    #[error("the certificate's extended key usage lacks clientAuth")]
    MissingClientAuth,
    #[error("a document-signing certificate (nonRepudiation) is never a login")]
    SigningCertificate,
    #[error("an e-mail certificate (emailProtection) is never a login")]
    EmailCertificate,
    #[error("the certificate's issuing CA is not one of the accepted CA families")]
    IssuerNotAllowed,
    #[error("the certificate was not issued by a trusted CA")]
    UntrustedIssuer,
    #[error("the certificate chain is invalid: {0}")]
    InvalidChain(String),
    #[error("the certificate has none of the accepted certificate policies")]
    PolicyNotAllowed,
}

/// The challenge's faults.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceError {
    #[error("this nonce was not issued here")]
    NonceUnknown,
    #[error("this nonce was already used")]
    NonceReused,
    #[error("this nonce expired")]
    NonceExpired,
}

/// Refusals on revocation grounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    #[error("the certificate is revoked (according to {0})")]
    Revoked(String),
    #[error("the OCSP responder {0} does not know the certificate")]
    RevocationUnknown(String),
    #[error("a revocation answer cannot be trusted: {0}")]
    RevocationInvalid(String),
    #[error("the certificate's revocation status cannot be checked: {0}")]
    RevocationUnavailable(String),
}

impl VerifyError {
    /// A stable code for logs and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Token(e) => e.code(),
            VerifyError::Certificate(e) => e.code(),
            VerifyError::Nonce(e) => e.code(),
            VerifyError::Revocation(e) => e.code(),
        }
    }
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        use TokenError as E;
        match self {
            E::TokenLength(_) => "token-length",
            E::TokenNotJson => "token-not-json",
            E::MissingField(_) => "token-missing-field",
            E::FieldNotString(_) => "token-field-type",
            E::FieldNotBase64(_) => "token-field-base64",
            E::UnsupportedFormat(_) => "unsupported-format",
            E::UnsupportedAlgorithm(_) => "unsupported-algorithm",
            E::AlgorithmMismatch { .. } => "algorithm-mismatch",
            E::SignatureLength(_) => "signature-length",
            E::BadSignature => "bad-signature",
        }
    }
}

impl CertificateError {
    pub fn code(&self) -> &'static str {
        use CertificateError as E;
        match self {
            E::BadCertificate(_) => "bad-certificate",
            E::CertificateNotYetValid(_) => "certificate-not-yet-valid",
            E::CertificateExpired(_) => "certificate-expired",
            E::MissingDigitalSignature => "missing-digital-signature",
            E::CardAuthenticationCertificate => "card-authentication-certificate",
            E::MissingClientAuth => "missing-client-auth",
            E::SigningCertificate => "signing-certificate",
            E::EmailCertificate => "email-certificate",
            E::IssuerNotAllowed => "issuer-not-allowed",
            E::UntrustedIssuer => "untrusted-issuer",
            E::InvalidChain(_) => "invalid-chain",
            E::PolicyNotAllowed => "policy-not-allowed",
        }
    }
}

impl NonceError {
    pub fn code(&self) -> &'static str {
        match self {
            NonceError::NonceUnknown => "nonce-unknown",
            NonceError::NonceReused => "nonce-reused",
            NonceError::NonceExpired => "nonce-expired",
        }
    }
}

impl RevocationError {
    pub fn code(&self) -> &'static str {
        match self {
            RevocationError::Revoked(_) => "certificate-revoked",
            RevocationError::RevocationUnknown(_) => "revocation-unknown",
            RevocationError::RevocationInvalid(_) => "revocation-invalid",
            RevocationError::RevocationUnavailable(_) => "revocation-unavailable",
        }
    }
}

/// Who signed: what a portal registers and looks up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub subject: String,
    pub issuer: String,
    pub common_name: Option<String>,
    /// Hex, upper case.
    pub serial_number: String,
    /// Hex SHA-256 of the certificate DER (the host's certificate id).
    pub fingerprint_sha256: String,
    pub edipi: Option<String>,
    pub upn: Option<String>,
    pub email: Option<String>,
    /// The FASC-N of the certificate's SAN: on a CAC its person identifier is the EDIPI, and
    /// some relying parties key on it.
    #[serde(default)]
    pub fasc_n: Option<cacbridge_cert::fascn::FascN>,
    /// The card's UUID (the SAN's `urn:uuid:`).
    #[serde(default)]
    pub card_uuid: Option<String>,
    /// RFC 3339.
    pub not_after: String,
    /// What revocation checking found.
    #[serde(default)]
    pub revocation: Revocation,
}

impl Identity {
    /// The identity a checked certificate gives, with what revocation checking found.
    pub fn of(info: cacbridge_cert::CertificateInfo, revocation: Revocation) -> Self {
        Identity {
            subject: info.subject,
            issuer: info.issuer,
            common_name: info.common_name,
            serial_number: info.serial_number,
            fingerprint_sha256: info.id,
            edipi: info.edipi,
            upn: info.upn,
            email: info.email,
            fasc_n: info.fasc_n,
            card_uuid: info.card_uuid,
            not_after: info.not_after,
            revocation,
        }
    }
}

/// What else a portal requires of a certificate, beyond the authentication profile
/// A certificate that passed every check but revocation, with what revocation needs.
struct Checked {
    info: cacbridge_cert::CertificateInfo,
    issuer: revocation::Issuer,
}

/// ([`cacbridge_cert::check_authentication_profile`]), which is always enforced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Accept only certificates asserting at least one of these policy OIDs (dotted), e.g.
    /// DoD medium hardware 2.16.840.1.101.2.1.11.42. `None` accepts any.
    pub allowed_policy_oids: Option<Vec<String>>,
    /// Accept only certificates whose issuer's common name starts with one of these CA
    /// family names, e.g. `DOD ID CA-` (which issues PIV Authentication certificates; `DOD
    /// EMAIL CA-` issues the e-mail ones). `None` accepts any CA the trust store chains to.
    pub allowed_issuer_families: Option<Vec<String>>,
}

impl VerifyPolicy {
    /// From command-line style lists, where an empty list means "any".
    pub fn from_lists(policy_oids: Vec<String>, issuer_families: Vec<String>) -> Self {
        Self {
            allowed_policy_oids: (!policy_oids.is_empty()).then_some(policy_oids),
            allowed_issuer_families: (!issuer_families.is_empty()).then_some(issuer_families),
        }
    }
}

pub struct Verifier {
    trust: TrustStore,
    policy: VerifyPolicy,
    revocation: revocation::RevocationChecker,
}

impl Verifier {
    /// A verifier that does not check revocation; see [`Verifier::with_revocation`].
    pub fn new(trust: TrustStore, policy: VerifyPolicy) -> Self {
        Self {
            trust,
            policy,
            revocation: revocation::RevocationChecker::new(RevocationSettings::default()),
        }
    }

    /// Check revocation as `settings` say (OCSP, then CRLs; answers cached until they
    /// expire). Checks run in the calling thread and may wait on the network up to
    /// `settings.timeout` a request: async servers call the verifier from a blocking pool.
    pub fn with_revocation(mut self, settings: RevocationSettings) -> Self {
        self.revocation = revocation::RevocationChecker::new(settings);
        self
    }

    pub fn revocation_policy(&self) -> RevocationPolicy {
        self.revocation.policy()
    }

    /// HTTP exchanges made for revocation so far (OCSP requests and CRL downloads).
    pub fn revocation_fetches(&self) -> u64 {
        self.revocation.fetches()
    }

    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    /// Consume `nonce` from `store` (so a rejected token burns it too), then verify.
    pub fn verify_with_store(
        &self,
        store: &NonceStore,
        token_json: &str,
        expected_origin: &str,
        nonce: &str,
        now: SystemTime,
    ) -> Result<Identity, VerifyError> {
        self.verify_with_bound_store(store, b"", token_json, expected_origin, nonce, now)
    }

    /// As [`Verifier::verify_with_store`], for a nonce issued with
    /// [`NonceStore::issue_bound`] to `binding` (the session that presents it).
    pub fn verify_with_bound_store(
        &self,
        store: &NonceStore,
        binding: &[u8],
        token_json: &str,
        expected_origin: &str,
        nonce: &str,
        now: SystemTime,
    ) -> Result<Identity, VerifyError> {
        store.consume_bound(binding, nonce, now)?;
        self.verify(token_json, expected_origin, nonce, now)
    }

    /// Verify a token for the origin the server expects and the nonce it issued, at `now`.
    pub fn verify(
        &self,
        token_json: &str,
        expected_origin: &str,
        nonce: &str,
        now: SystemTime,
    ) -> Result<Identity, VerifyError> {
        let token = Token::parse(token_json)?;
        let info = cacbridge_cert::inspect(&token.certificate)
            .map_err(|e| VerifyError::Certificate(CertificateError::BadCertificate(e.0)))?;
        let key = info.key_algorithm;
        if !token.algorithm.fits(key) {
            return Err(VerifyError::Token(TokenError::AlgorithmMismatch {
                algorithm: token.algorithm.name().into(),
                key: key.name(),
            }));
        }
        // The certificate's own checks, then the signature, and only then revocation: a
        // token whose signature fails never makes this verifier ask a responder (anyone with a
        // public certificate and a zero signature could otherwise learn whether it is revoked
        // and have the server fetch on demand: the second security review's M3).
        let checked = self.check_certificate(&token.certificate, now)?;
        check_signature(&token, expected_origin, nonce)?;
        self.check_revocation(&token.certificate, checked, now)
    }

    /// Verify a certificate whose key the holder has already proved to hold some other way (a
    /// TLS handshake with client authentication): validity, the authentication-certificate
    /// profile, the chain to the trust store (with its intermediates), the issuer family and
    /// policy allow-lists. The same rules as a token's certificate.
    pub fn verify_certificate(&self, der: &[u8], now: SystemTime) -> Result<Identity, VerifyError> {
        let checked = self.check_certificate(der, now)?;
        self.check_revocation(der, checked, now)
    }

    /// Everything about a certificate that needs no network: dates, profile, chain, issuer
    /// family, policies.
    fn check_certificate(&self, der: &[u8], now: SystemTime) -> Result<Checked, VerifyError> {
        let info = cacbridge_cert::inspect(der)
            .map_err(|e| VerifyError::Certificate(CertificateError::BadCertificate(e.0)))?;
        let seconds = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if seconds < info.not_before_unix {
            return Err(VerifyError::Certificate(
                CertificateError::CertificateNotYetValid(info.not_before.clone()),
            ));
        }
        if seconds > info.not_after_unix {
            return Err(VerifyError::Certificate(
                CertificateError::CertificateExpired(info.not_after.clone()),
            ));
        }
        cacbridge_cert::check_authentication_profile(&info).map_err(|reason| match reason {
            NotAuthentication::MissingDigitalSignature => {
                VerifyError::Certificate(CertificateError::MissingDigitalSignature)
            }
            NotAuthentication::NonRepudiation => {
                VerifyError::Certificate(CertificateError::SigningCertificate)
            }
            NotAuthentication::EmailProtection => {
                VerifyError::Certificate(CertificateError::EmailCertificate)
            }
            NotAuthentication::CardAuthentication => {
                VerifyError::Certificate(CertificateError::CardAuthenticationCertificate)
            }
            NotAuthentication::MissingClientAuth => {
                VerifyError::Certificate(CertificateError::MissingClientAuth)
            }
        })?;
        let issuer = self.check_chain(der, now)?;
        self.check_issuer_family(&info)?;
        self.check_policies(der)?;
        Ok(Checked { info, issuer })
    }

    /// Revocation, for a certificate [`Verifier::check_certificate`] passed; its identity.
    fn check_revocation(
        &self,
        der: &[u8],
        checked: Checked,
        now: SystemTime,
    ) -> Result<Identity, VerifyError> {
        let Checked { info, issuer } = checked;
        let revocation = self
            .revocation
            .check(der, &issuer, now)
            .map_err(|failure| {
                use revocation::RevocationFailure as F;
                match failure {
                    F::Revoked { source } => {
                        VerifyError::Revocation(RevocationError::Revoked(source))
                    }
                    F::Unknown { source } => {
                        VerifyError::Revocation(RevocationError::RevocationUnknown(source))
                    }
                    F::Invalid(why) => {
                        VerifyError::Revocation(RevocationError::RevocationInvalid(why))
                    }
                    F::Unavailable(why) => {
                        VerifyError::Revocation(RevocationError::RevocationUnavailable(why))
                    }
                }
            })?;
        Ok(Identity::of(info, revocation))
    }

    /// The path to a trust anchor; the certificate's issuer, for revocation checks.
    fn check_chain(&self, der: &[u8], now: SystemTime) -> Result<revocation::Issuer, VerifyError> {
        let der = CertificateDer::from(der.to_vec());
        let end_entity = webpki::EndEntityCert::try_from(&der).map_err(|e| {
            VerifyError::Certificate(CertificateError::BadCertificate(format!("{e:?}")))
        })?;
        let time = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                self.trust.anchors(),
                self.trust.intermediates(),
                time,
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .map(|path| {
                let anchor = match path.intermediate_certificates().next() {
                    Some(cert) => webpki::anchor_from_trusted_cert(&cert.der())
                        .map(|a| a.to_owned())
                        .unwrap_or_else(|_| path.anchor().to_owned()),
                    None => path.anchor().to_owned(),
                };
                revocation::Issuer {
                    anchor,
                    spki: path.issuer_spki().as_ref().to_vec(),
                }
            })
            .map_err(|e| match e {
                webpki::Error::UnknownIssuer => {
                    VerifyError::Certificate(CertificateError::UntrustedIssuer)
                }
                other => {
                    VerifyError::Certificate(CertificateError::InvalidChain(format!("{other:?}")))
                }
            })
    }

    fn check_issuer_family(&self, info: &CertificateInfo) -> Result<(), VerifyError> {
        let Some(families) = &self.policy.allowed_issuer_families else {
            return Ok(());
        };
        let issuer_cn = info.issuer_common_name.as_deref().unwrap_or_default();
        if families
            .iter()
            .any(|family| !family.is_empty() && issuer_cn.starts_with(family.as_str()))
        {
            Ok(())
        } else {
            Err(VerifyError::Certificate(CertificateError::IssuerNotAllowed))
        }
    }

    fn check_policies(&self, der: &[u8]) -> Result<(), VerifyError> {
        let Some(allowed) = &self.policy.allowed_policy_oids else {
            return Ok(());
        };
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| {
            VerifyError::Certificate(CertificateError::BadCertificate(e.to_string()))
        })?;
        let asserted: Vec<String> = cert
            .extensions()
            .iter()
            .filter_map(|ext| match ext.parsed_extension() {
                ParsedExtension::CertificatePolicies(policies) => Some(
                    policies
                        .iter()
                        .map(|p| p.policy_id.to_id_string())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        if asserted.iter().any(|oid| allowed.contains(oid)) {
            Ok(())
        } else {
            Err(VerifyError::Certificate(CertificateError::PolicyNotAllowed))
        }
    }
}

fn check_signature(token: &Token, origin: &str, nonce: &str) -> Result<(), VerifyError> {
    let (_, cert) = X509Certificate::from_der(&token.certificate)
        .map_err(|e| VerifyError::Certificate(CertificateError::BadCertificate(e.to_string())))?;
    let public_key = cert.public_key().subject_public_key.data.as_ref();
    let algorithm: &dyn signature::VerificationAlgorithm = match token.algorithm {
        Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
    };
    if let Some(width) = token.algorithm.fixed_signature_len() {
        if token.signature.len() != width {
            return Err(VerifyError::Token(TokenError::SignatureLength(
                token.algorithm.name().into(),
            )));
        }
    }
    let message = authentication_message(token.algorithm, origin, nonce);
    UnparsedPublicKey::new(algorithm, public_key)
        .verify(&message, &token.signature)
        .map_err(|_| VerifyError::Token(TokenError::BadSignature))
}
