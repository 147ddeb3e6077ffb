//! Compressed certificates: current CACs store PIV certificates gzip'd, some cards use zlib.

use std::io::Read;

use flate2::read::{GzDecoder, ZlibDecoder};

use crate::error::CardError;

/// No certificate is this large; a larger output is a decompression bomb.
const MAX_INFLATED: u64 = 64 * 1024;

pub fn inflate(data: &[u8]) -> Result<Vec<u8>, CardError> {
    let mut out = Vec::new();
    let result = if data.starts_with(&[0x1F, 0x8B]) {
        GzDecoder::new(data)
            .take(MAX_INFLATED + 1)
            .read_to_end(&mut out)
    } else {
        ZlibDecoder::new(data)
            .take(MAX_INFLATED + 1)
            .read_to_end(&mut out)
    };
    result.map_err(|e| CardError::Malformed(format!("compressed certificate: {e}")))?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(CardError::Malformed(
            "compressed certificate inflates past 64 KiB".into(),
        ));
    }
    Ok(out)
}

/// Interpret a certificate object body: the certificate bytes and its CertInfo byte.
/// A CertInfo with bit 0x01 (or 0x80, which OpenSC also honours) means compressed; a body that
/// starts with a gzip header is inflated whatever CertInfo says.
pub fn certificate_bytes(stored: &[u8], cert_info: u8) -> Result<Vec<u8>, CardError> {
    let flagged = cert_info & 0x01 != 0 || cert_info & 0x80 != 0;
    if flagged || stored.starts_with(&[0x1F, 0x8B]) {
        inflate(stored)
    } else {
        Ok(stored.to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use flate2::write::{GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn inflates_gzip_and_zlib() {
        let der = vec![0x30u8; 1500];
        assert_eq!(inflate(&gzip(&der)).unwrap(), der);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&der).unwrap();
        assert_eq!(inflate(&z.finish().unwrap()).unwrap(), der);
    }

    #[test]
    fn refuses_a_decompression_bomb() {
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 20_000);
        assert!(inflate(&bomb).is_err());
    }

    #[test]
    fn refuses_garbage() {
        assert!(inflate(&[0x1F, 0x8B, 1, 2, 3]).is_err());
        assert!(certificate_bytes(&[1, 2, 3], 0x01).is_err());
    }

    #[test]
    fn plain_certificates_pass_through() {
        assert_eq!(
            certificate_bytes(&[0x30, 0x03], 0x00).unwrap(),
            vec![0x30, 0x03]
        );
    }
}
