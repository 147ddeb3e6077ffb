//! Several backends as one [`Backend`], in the policy's order: the PC/SC applet code first,
//! then PKCS#11 modules for the cards it cannot read (vendor quirks, tokens behind vendor
//! middleware). A reader served by an earlier backend is not asked of a later one, so a card
//! both could read is listed once, and read once; a signature goes to the backend that listed
//! the certificate.

use std::collections::{HashMap, HashSet};

use crate::error::CardError;
use crate::model::{CardCertificate, CardInsertion, Purpose, ReaderStatus};
use crate::pin::Pin;
use crate::session::SignatureInput;
use crate::Backend;

pub struct Chain {
    backends: Vec<Box<dyn Backend>>,
    /// Which backend serves each reader with a readable card, from the last listing.
    serving: HashMap<String, usize>,
}

impl Chain {
    /// `backends` in order of preference; at least one.
    pub fn new(backends: Vec<Box<dyn Backend>>) -> Self {
        assert!(!backends.is_empty(), "a chain of no backend");
        Self {
            backends,
            serving: HashMap::new(),
        }
    }

    /// The backends' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.backends.iter().map(|b| b.name()).collect()
    }

    /// The certificates each reader's first able backend lists, `read` doing the reading.
    fn collect(
        &mut self,
        reader: Option<&str>,
        mut read: impl FnMut(&mut dyn Backend, &str) -> Result<Vec<CardCertificate>, CardError>,
    ) -> Result<Vec<CardCertificate>, CardError> {
        let mut certificates = Vec::new();
        let mut ids = HashSet::new();
        let mut served = HashSet::new();
        let mut first_error = None;
        for (index, backend) in self.backends.iter_mut().enumerate() {
            let present = match backend.presence() {
                Ok(present) => present,
                Err(err) => {
                    tracing::debug!(backend = backend.name(), %err, "backend unavailable");
                    first_error.get_or_insert(err);
                    continue;
                }
            };
            for (name, _) in present.into_iter().filter(|(_, card)| *card) {
                if served.contains(&name) || reader.is_some_and(|r| r != name) {
                    continue;
                }
                match read(backend.as_mut(), &name) {
                    Ok(list) => {
                        self.serving.insert(name.clone(), index);
                        served.insert(name);
                        certificates
                            .extend(list.into_iter().filter(|c| ids.insert(c.info.id.clone())));
                    }
                    // This backend cannot read the card: perhaps a later one can.
                    Err(err) => {
                        tracing::debug!(backend = backend.name(), reader = %name, %err, "not served here");
                        first_error.get_or_insert(err);
                    }
                }
            }
        }
        if served.is_empty() {
            return Err(first_error.unwrap_or(match reader {
                Some(reader) => CardError::UnknownReader(reader.to_owned()),
                None => CardError::NoCard,
            }));
        }
        Ok(certificates)
    }

    /// The backend serving `reader`: the one that listed its card, else the first.
    fn backend_for(&mut self, reader: &str) -> &mut dyn Backend {
        let index = self.serving.get(reader).copied().unwrap_or(0);
        self.backends[index].as_mut()
    }
}

impl Backend for Chain {
    fn name(&self) -> &'static str {
        self.backends[0].name()
    }

    /// Every backend's readers, each once: the entry of the first backend that reads its card
    /// (or, where none does, the first that lists the reader).
    fn readers(&mut self) -> Result<Vec<ReaderStatus>, CardError> {
        let mut readers: Vec<ReaderStatus> = Vec::new();
        let mut first_error = None;
        let mut answered = false;
        for (index, backend) in self.backends.iter_mut().enumerate() {
            let listed = match backend.readers() {
                Ok(listed) => listed,
                Err(err) => {
                    first_error.get_or_insert(err);
                    continue;
                }
            };
            answered = true;
            for status in listed {
                let readable = status.card.as_ref().is_some_and(|c| c.error.is_none());
                match readers.iter_mut().find(|r| r.name == status.name) {
                    None => {
                        if readable {
                            self.serving.entry(status.name.clone()).or_insert(index);
                        }
                        readers.push(status);
                    }
                    Some(earlier) => {
                        let earlier_readable =
                            earlier.card.as_ref().is_some_and(|c| c.error.is_none());
                        if readable && !earlier_readable {
                            self.serving.insert(status.name.clone(), index);
                            *earlier = status;
                        }
                    }
                }
            }
        }
        if answered {
            Ok(readers)
        } else {
            Err(first_error.unwrap_or(CardError::NoReader))
        }
    }

    fn presence(&mut self) -> Result<Vec<(String, bool)>, CardError> {
        let mut all: Vec<(String, bool)> = Vec::new();
        let mut first_error = None;
        let mut answered = false;
        for backend in &mut self.backends {
            match backend.presence() {
                Ok(present) => {
                    answered = true;
                    for (name, card) in present {
                        match all.iter_mut().find(|(n, _)| *n == name) {
                            Some((_, seen)) => *seen |= card,
                            None => all.push((name, card)),
                        }
                    }
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        if answered {
            Ok(all)
        } else {
            Err(first_error.unwrap_or(CardError::NoReader))
        }
    }

    fn certificates(&mut self, reader: Option<&str>) -> Result<Vec<CardCertificate>, CardError> {
        self.collect(reader, |backend, name| backend.certificates(Some(name)))
    }

    fn certificates_for(
        &mut self,
        reader: Option<&str>,
        purpose: Purpose,
    ) -> Result<Vec<CardCertificate>, CardError> {
        self.collect(reader, |backend, name| {
            backend.certificates_for(Some(name), purpose)
        })
    }

    fn sign_input(
        &mut self,
        certificate: &CardCertificate,
        input: &SignatureInput,
        pin: Option<&Pin>,
    ) -> Result<Vec<u8>, CardError> {
        self.backend_for(&certificate.reader)
            .sign_input(certificate, input, pin)
    }

    fn insertion(&mut self, reader: &str) -> Result<Option<CardInsertion>, CardError> {
        self.backend_for(reader).insertion(reader)
    }

    fn verify_pin(&mut self, reader: &str, pin: &Pin) -> Result<(), CardError> {
        self.backend_for(reader).verify_pin(reader, pin)
    }

    fn apdu_count(&self) -> u64 {
        self.backends.iter().map(|b| b.apdu_count()).sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::{CardStatus, CardType, Slot};
    use crate::testing::{certificate, FakeBackend};
    use crate::KeyAlgorithm;
    use crate::{ExtendedKeyUsage, KeyUsage};

    fn in_reader(n: u8, reader: &str) -> CardCertificate {
        let mut c = certificate(
            n,
            Slot::PivAuthentication,
            KeyAlgorithm::EcP256,
            &[KeyUsage::DigitalSignature],
            &[ExtendedKeyUsage::ClientAuth],
        );
        c.reader = reader.into();
        c
    }

    fn reader(name: &str, backend: &'static str) -> ReaderStatus {
        ReaderStatus {
            name: name.into(),
            card: Some(CardStatus {
                atr: vec![0x3B],
                card_type: CardType::Piv,
                dual_cac: false,
                pin: None,
                error: None,
                backend,
            }),
        }
    }

    #[test]
    fn a_card_both_backends_see_is_listed_once_and_signs_where_it_was_listed() {
        // The first backend reads reader A; the second sees A too, and B.
        let mut first = FakeBackend::new(vec![in_reader(1, "A")]);
        first.readers = vec![reader("A", "pcsc")];
        first.signature = Ok(vec![0x01]);
        let mut second = FakeBackend::new(vec![in_reader(1, "A"), in_reader(2, "B")]);
        second.readers = vec![reader("A", "pkcs11"), reader("B", "pkcs11")];
        second.signature = Ok(vec![0x02]);
        let mut chain = Chain::new(vec![Box::new(first), Box::new(second)]);

        let listed = chain.certificates(None).unwrap();
        let ids: Vec<_> = listed
            .iter()
            .map(|c| (c.reader.as_str(), c.der[1]))
            .collect();
        assert_eq!(ids, [("A", 1), ("B", 2)]);
        let readers = chain.readers().unwrap();
        let backends: Vec<_> = readers
            .iter()
            .map(|r| (r.name.as_str(), r.card.as_ref().unwrap().backend))
            .collect();
        assert_eq!(backends, [("A", "pcsc"), ("B", "pkcs11")]);

        let input = SignatureInput::EcHash(vec![0; 32]);
        assert_eq!(chain.sign_input(&listed[0], &input, None).unwrap(), [0x01]);
        assert_eq!(chain.sign_input(&listed[1], &input, None).unwrap(), [0x02]);
        assert_eq!(chain.certificates(Some("B")).unwrap().len(), 1);
        assert_eq!(
            chain.certificates(Some("C")).unwrap_err(),
            CardError::UnknownReader("C".into())
        );
    }
}
