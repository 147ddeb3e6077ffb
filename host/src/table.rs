//! `cacbridge-host list`: what `status` and `list-certificates` return, for a person (a table)
//! or a script (JSON).

use std::fmt::Write as _;

use cacbridge_card::{CardCertificate, PinStatus, ReaderStatus};

use crate::views::{self, CertificateView, ReaderView};

pub fn json(readers: &[ReaderStatus], certificates: &[CardCertificate]) -> String {
    let view = serde_json::json!({
        "readers": readers.iter().map(ReaderView::from).collect::<Vec<_>>(),
        "certificates": certificates.iter().map(CertificateView::from).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&view).unwrap_or_default()
}

pub fn table(readers: &[ReaderStatus], certificates: &[CardCertificate]) -> String {
    let mut out = String::new();
    if readers.is_empty() {
        out.push_str(
            "No smart card reader found. Connect a reader and check that pcscd is running.\n",
        );
    }
    for reader in readers {
        let Some(card) = &reader.card else {
            let _ = writeln!(out, "{}: no card", reader.name);
            continue;
        };
        let pin = match card.pin {
            Some(pin) if pin.blocked => {
                "PIN blocked (a DoD ID card office can unblock it)".to_owned()
            }
            Some(PinStatus {
                retries_left: Some(n),
                ..
            }) => format!("PIN: {n} tries left"),
            _ => "PIN: tries left unknown".to_owned(),
        };
        let kind = if card.dual_cac {
            "Dual CAC/PIV card"
        } else {
            views::card_type_name(card.card_type)
        };
        let _ = writeln!(out, "{}: {kind}, {pin}", reader.name);
        if let Some(err) = &card.error {
            let _ = writeln!(out, "  cannot read the card: {err}");
        }
        let rows: Vec<_> = certificates
            .iter()
            .filter(|c| c.reader == reader.name)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let slot_width = rows
            .iter()
            .map(|c| views::slot_label(c.slot).len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "  {:<slot_width$} {:<22} {:<32} {:<10} {:<9} {:<10} ISSUER",
            "SLOT", "ROLE", "NAME", "EDIPI", "KEY", "EXPIRES"
        );
        for cert in rows {
            let info = &cert.info;
            let _ = writeln!(
                out,
                "  {:<slot_width$} {:<22} {:<32} {:<10} {:<9} {:<10} {}",
                views::slot_label(cert.slot),
                views::slot_role(cert.slot),
                info.common_name.as_deref().unwrap_or("-"),
                info.edipi.as_deref().unwrap_or("-"),
                info.key_algorithm.name(),
                info.not_after.get(..10).unwrap_or("-"),
                issuer_name(&info.issuer),
            );
        }
    }
    out
}

/// The CN of an issuer DN, or the whole DN.
fn issuer_name(issuer: &str) -> &str {
    issuer
        .split(", ")
        .find_map(|part| part.strip_prefix("CN="))
        .unwrap_or(issuer)
}
