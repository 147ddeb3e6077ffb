//! The FASC-N (Federal Agency Smart Credential Number) that PIV and CAC certificates carry in
//! their subject alternative name (otherName 2.16.840.1.101.3.6.6, an OCTET STRING of 25
//! bytes), as TIG SCEPACS defines it: 40 characters of 5 bits, each four data bits least
//! significant first and an odd parity bit, from a start sentinel to an end sentinel and a
//! longitudinal redundancy check. On a CAC the person identifier is the EDIPI; some relying
//! parties key on it rather than on the certificate's name.

use serde::{Deserialize, Serialize};

pub const OID_FASC_N: &str = "2.16.840.1.101.3.6.6";

const START: u8 = 0x0B;
const FIELD: u8 = 0x0D;
const END: u8 = 0x0F;

/// A FASC-N's fields, as digit strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FascN {
    /// Agency code (4 digits; DoD is 0097).
    pub agency: String,
    /// System code (4).
    pub system: String,
    /// Credential number (6).
    pub credential: String,
    /// Credential series (1).
    pub series: String,
    /// Individual credential issue (1).
    pub issue: String,
    /// Person identifier (10): the EDIPI on a CAC.
    pub person: String,
    /// Organizational category (1): 1 federal, 2 state, 3 commercial, 4 foreign.
    pub organizational_category: String,
    /// Organizational identifier (4).
    pub organization: String,
    /// Person/organization association category (1): 1 employee, 2 civil, 3 executive staff,
    /// 4 uniformed service, 5 contractor, ...
    pub association: String,
}

/// The characters of a 25-byte FASC-N, each checked for odd parity.
fn characters(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() != 25 {
        return None;
    }
    let bit = |i: usize| (bytes[i / 8] >> (7 - i % 8)) & 1;
    (0..40)
        .map(|c| {
            let bits: Vec<u8> = (0..5).map(|b| bit(c * 5 + b)).collect();
            let ones: u8 = bits.iter().sum();
            (ones % 2 == 1).then(|| bits[0] | bits[1] << 1 | bits[2] << 2 | bits[3] << 3)
        })
        .collect()
}

/// Decode a FASC-N; `None` for anything that is not one (wrong size, parity, sentinels,
/// separators or LRC): a hostile card's bytes never become fields.
pub fn decode(bytes: &[u8]) -> Option<FascN> {
    let chars = characters(bytes)?;
    // SS AAAA FS SSSS FS CCCCCC FS S FS I FS PPPPPPPPPP O OOOO A ES LRC, one letter each:
    // s f e the sentinels and separators, l the LRC, the rest the fields "ASCEIPOQR" name.
    const LAYOUT: &[u8; 40] = b"sAAAAfSSSSfCCCCCCfEfIfPPPPPPPPPPOQQQQRel";
    const FIELDS: &[u8; 9] = b"ASCEIPOQR";
    let mut fields: [String; 9] = Default::default();
    for (&kind, &c) in LAYOUT.iter().zip(&chars) {
        let wanted = match kind {
            b's' => Some(START),
            b'f' => Some(FIELD),
            b'e' => Some(END),
            _ => None,
        };
        match (wanted, kind) {
            (Some(wanted), _) if c != wanted => return None,
            (Some(_), _) | (None, b'l') => {}
            (None, _) => {
                let field = FIELDS.iter().position(|&k| k == kind)?;
                if c > 9 {
                    return None;
                }
                fields[field].push(char::from(b'0' + c));
            }
        }
    }
    let lrc = chars[..39].iter().fold(0, |acc, c| acc ^ c);
    if lrc != chars[39] {
        return None;
    }
    let [agency, system, credential, series, issue, person, organizational_category, organization, association] =
        fields;
    Some(FascN {
        agency,
        system,
        credential,
        series,
        issue,
        person,
        organizational_category,
        organization,
        association,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Encode digits and sentinels as TIG SCEPACS does (for tests: the encoder is not the
    /// code under test's mirror, it follows the spec's table).
    pub(crate) fn encode(fascn: &str) -> Vec<u8> {
        // "S" start, "F" field separator, "E" end; digits otherwise.
        let mut chars: Vec<u8> = fascn
            .bytes()
            .map(|b| match b {
                b'S' => START,
                b'F' => FIELD,
                b'E' => END,
                d => d - b'0',
            })
            .collect();
        chars.push(chars.iter().fold(0, |acc, c| acc ^ c));
        let mut bits = Vec::new();
        for c in chars {
            let data: Vec<u8> = (0..4).map(|b| (c >> b) & 1).collect();
            let parity = 1 - data.iter().sum::<u8>() % 2;
            bits.extend(data);
            bits.push(parity);
        }
        bits.chunks(8)
            .map(|byte| byte.iter().fold(0, |acc, b| acc << 1 | b))
            .collect()
    }

    /// DoD (0097), system 0101, credential 012345, series 0, issue 1, EDIPI 1234567890, federal
    /// (1), organization 0097, uniformed service (4).
    pub(crate) const DOE: &str = "S0097F0101F012345F0F1F1234567890100974E";

    #[test]
    fn the_spec_table_decodes_to_its_fields() {
        // The table's own characters: 0 is 00001, 1 is 10000, SS 11010, FS 10110, ES 11111.
        let bytes = encode(DOE);
        assert_eq!(bytes.len(), 25);
        assert_eq!(bytes[0] >> 3, 0b11010, "the start sentinel first");
        let fascn = decode(&bytes).unwrap();
        assert_eq!(fascn.agency, "0097");
        assert_eq!(fascn.system, "0101");
        assert_eq!(fascn.credential, "012345");
        assert_eq!(fascn.series, "0");
        assert_eq!(fascn.issue, "1");
        assert_eq!(fascn.person, "1234567890");
        assert_eq!(fascn.organizational_category, "1");
        assert_eq!(fascn.organization, "0097");
        assert_eq!(fascn.association, "4");
    }

    #[test]
    fn anything_else_is_no_fasc_n() {
        let good = encode(DOE);
        assert!(decode(&good[..24]).is_none(), "short");
        for i in 0..200 {
            let mut flipped = good.clone();
            flipped[i / 8] ^= 0x80 >> (i % 8);
            assert!(decode(&flipped).is_none(), "bit {i} flipped");
        }
        assert!(
            decode(&encode("S0097F0101F012345F0F1F12345678901009740")).is_none(),
            "no end sentinel"
        );
    }
}
