//! PEM encoding of DER that was parsed and validated: every byte certstore hands out as PEM is
//! produced here from the DER the validator accepted, never copied from the file.

use zeroize::Zeroizing;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends one PEM block (`-----BEGIN {label}-----`, base64 in 64-column lines, `-----END
/// {label}-----`, each line ending in `\n`) to `out`. `out` should be pre-sized: a key's PEM
/// must not be left behind in a reallocated buffer.
pub(crate) fn encode_into(out: &mut Vec<u8>, label: &str, der: &[u8]) {
    out.extend_from_slice(b"-----BEGIN ");
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(b"-----\n");
    for line in der.chunks(48) {
        for group in line.chunks(3) {
            let b = [
                group[0],
                group.get(1).copied().unwrap_or(0),
                group.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let sextet = |shift: u32| ALPHABET[((n >> shift) & 63) as usize];
            out.push(sextet(18));
            out.push(sextet(12));
            out.push(if group.len() > 1 { sextet(6) } else { b'=' });
            out.push(if group.len() > 2 { sextet(0) } else { b'=' });
        }
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END ");
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(b"-----\n");
}

/// The PEM length of `der` under `label`, for pre-sizing.
pub(crate) fn encoded_len(label: &str, der_len: usize) -> usize {
    let body = der_len.div_ceil(3) * 4;
    let lines = der_len.div_ceil(48);
    // "-----BEGIN " + label + "-----\n" and the same for END ("-----END " is two shorter).
    (11 + label.len() + 6) + body + lines + (9 + label.len() + 6)
}

/// PEM of a sequence of DER certificates, each a CERTIFICATE block, in order.
pub(crate) fn certificates<'a>(ders: impl Iterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    let len = ders
        .clone()
        .map(|d| encoded_len("CERTIFICATE", d.len()))
        .sum();
    let mut out = Vec::with_capacity(len);
    for der in ders {
        encode_into(&mut out, "CERTIFICATE", der);
    }
    out
}

/// PEM of a private key DER under its label, in a buffer that is zeroized when dropped.
pub(crate) fn private_key(label: &str, der: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(encoded_len(label, der.len())));
    encode_into(&mut out, label, der);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc4648_vectors_and_line_length() {
        let mut out = Vec::new();
        encode_into(&mut out, "X", b"foobar");
        assert_eq!(out, b"-----BEGIN X-----\nZm9vYmFy\n-----END X-----\n");
        for (input, body) in [(&b"f"[..], "Zg=="), (b"fo", "Zm8="), (b"foo", "Zm9v")] {
            let mut out = Vec::new();
            encode_into(&mut out, "X", input);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("-----BEGIN X-----\n{body}\n-----END X-----\n")
            );
        }
        let der = vec![0xA5u8; 100];
        let mut out = Vec::new();
        encode_into(&mut out, "CERTIFICATE", &der);
        assert_eq!(out.len(), encoded_len("CERTIFICATE", der.len()));
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 64);
        assert_eq!(lines[3].len(), 8);
    }
}
