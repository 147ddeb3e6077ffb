//! The card layer's view of readers, cards, key slots and certificates.

use crate::certificate::CertificateInfo;
use crate::error::CardError;

/// Where a key and its certificate live on a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// PIV 9A: the certificate to register and log in with.
    PivAuthentication,
    /// PIV 9C: signatures; PIN Always.
    DigitalSignature,
    /// PIV 9D: encryption.
    KeyManagement,
    /// PIV 9E: card authentication, no PIN; never proof of the holder.
    CardAuthentication,
    /// PIV 82-95: retired key management keys 1-20.
    RetiredKeyManagement(u8),
    /// Legacy CAC PKI applets.
    CacId,
    CacEmailSignature,
    CacEmailEncryption,
}

/// Which certificates a caller needs. On a real card each certificate costs a second or more
/// to read, so a login reads only the authentication certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Purpose {
    /// PIV Authentication (9A) or the legacy CAC ID certificate.
    Authentication,
    /// PIV Digital Signature (9C) or the legacy CAC e-mail signature certificate.
    Signature,
    /// Every certificate on the card.
    #[default]
    All,
}

impl Purpose {
    pub fn includes(self, slot: Slot) -> bool {
        match self {
            Purpose::Authentication => slot.is_authentication(),
            Purpose::Signature => slot.is_signature(),
            Purpose::All => true,
        }
    }

    /// The narrowest purpose whose certificates include `slot`'s.
    pub fn of(slot: Slot) -> Purpose {
        if slot.is_authentication() {
            Purpose::Authentication
        } else if slot.is_signature() {
            Purpose::Signature
        } else {
            Purpose::All
        }
    }
}

impl Slot {
    pub const PIV_CURRENT: [Slot; 4] = [
        Slot::PivAuthentication,
        Slot::DigitalSignature,
        Slot::KeyManagement,
        Slot::CardAuthentication,
    ];
    pub const CAC: [Slot; 3] = [
        Slot::CacId,
        Slot::CacEmailSignature,
        Slot::CacEmailEncryption,
    ];

    /// The PIV key reference (P2 of GENERAL AUTHENTICATE).
    pub fn piv_key_reference(self) -> Option<u8> {
        Some(match self {
            Slot::PivAuthentication => 0x9A,
            Slot::DigitalSignature => 0x9C,
            Slot::KeyManagement => 0x9D,
            Slot::CardAuthentication => 0x9E,
            Slot::RetiredKeyManagement(n @ 1..=20) => 0x81 + n,
            _ => return None,
        })
    }

    /// The PIV data object holding this slot's certificate.
    pub fn piv_object(self) -> Option<u32> {
        Some(match self {
            Slot::PivAuthentication => 0x5FC105,
            Slot::DigitalSignature => 0x5FC10A,
            Slot::KeyManagement => 0x5FC10B,
            Slot::CardAuthentication => 0x5FC101,
            Slot::RetiredKeyManagement(n @ 1..=20) => 0x5FC10C + u32::from(n),
            _ => return None,
        })
    }

    pub fn pin_required(self) -> bool {
        self != Slot::CardAuthentication
    }

    /// Where a listing puts this slot's certificate, whichever backend read it: current PIV
    /// keys, retired ones, then CAC applets.
    pub fn listing_rank(self) -> u16 {
        match self {
            Slot::PivAuthentication => 0,
            Slot::DigitalSignature => 1,
            Slot::KeyManagement => 2,
            Slot::CardAuthentication => 3,
            Slot::RetiredKeyManagement(n) => 10 + u16::from(n),
            Slot::CacId => 40,
            Slot::CacEmailSignature => 41,
            Slot::CacEmailEncryption => 42,
        }
    }

    /// The card wants the PIN verified right before each use of this key.
    pub fn pin_always(self) -> bool {
        self == Slot::DigitalSignature
    }

    /// Keys that prove the holder to a relying party (login, registration).
    pub fn is_authentication(self) -> bool {
        matches!(self, Slot::PivAuthentication | Slot::CacId)
    }

    /// Keys for digital signatures on documents.
    pub fn is_signature(self) -> bool {
        matches!(self, Slot::DigitalSignature | Slot::CacEmailSignature)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardType {
    /// A card with the PIV applet (every current CAC is a Dual CAC/PIV card).
    Piv,
    /// A card with only the legacy GSC-IS CAC applets.
    Cac,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardCertificate {
    pub reader: String,
    pub slot: Slot,
    pub der: Vec<u8>,
    pub info: CertificateInfo,
}

/// One insertion of a card in a reader ([`crate::Backend::insertion`]): equal values mean the
/// same card has stayed in the same reader since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardInsertion {
    reader: String,
    event_count: u32,
    atr: Vec<u8>,
}

impl CardInsertion {
    /// `event_count` is the reader's card event counter (pcsc-lite's, which moves on every
    /// insertion and removal).
    pub fn new(reader: &str, event_count: u32, atr: &[u8]) -> Self {
        Self {
            reader: reader.to_owned(),
            event_count,
            atr: atr.to_vec(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinStatus {
    /// Tries left before the PIN blocks; `None` when the card does not say.
    pub retries_left: Option<u8>,
    pub blocked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardStatus {
    pub atr: Vec<u8>,
    pub card_type: CardType,
    /// The CCC says this PIV card is a DoD Dual CAC.
    pub dual_cac: bool,
    pub pin: Option<PinStatus>,
    /// Set when the card is present but could not be read.
    pub error: Option<CardError>,
    /// The backend that serves this card ([`crate::Backend::name`]: "pcsc", "pkcs11").
    pub backend: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderStatus {
    pub name: String,
    pub card: Option<CardStatus>,
}

/// A reader or card change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderEvent {
    ReaderAdded { reader: String },
    ReaderRemoved { reader: String },
    CardInserted { reader: String, atr: Vec<u8> },
    CardRemoved { reader: String },
}
