//! ESO's own template functions (external-secrets `runtime/template/v2`: pkcs12.go, pem.go,
//! pem_chain.go, jwk.go, decrypt.go): PKCS#12, PEM filtering, certificate chains, JWK and RSA-OAEP.
//! Pure; error messages name what failed, never key material or other values.

use base64::Engine as _;
use pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use zeroize::Zeroizing;

use super::funcs::{FnError, R};
use super::value::{ElemTy, Value, go_str};

fn fail<T>(m: impl Into<String>) -> Result<T, FnError> {
    Err(FnError::Msg(m.into()))
}

fn count(args: &[Value], n: usize) -> Result<(), FnError> {
    if args.len() != n {
        return fail(format!("wrong number of args: want {n} got {}", args.len()));
    }
    Ok(())
}

/// A `string` parameter.
fn s(v: &Value) -> Result<&[u8], FnError> {
    match v {
        Value::Str(b) => Ok(b),
        other => fail(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

fn text(v: Vec<u8>) -> R {
    Ok(Value::Str(go_str(v)))
}

/// Go passes a template string to these functions as it is; a password is Go text.
fn password(v: &Value) -> Result<String, FnError> {
    Ok(String::from_utf8_lossy(s(v)?).into_owned())
}

// ---- Go's encoding/pem ----

/// A PEM block as Go's encoding/pem sees it. `bytes` may be a private key: wiped on drop.
pub(crate) struct Block {
    pub(crate) kind: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) bytes: Zeroizing<Vec<u8>>,
}

/// Go's getLine: up to the next `\n` (a `\r` before it dropped), trailing spaces and tabs trimmed.
fn get_line(data: &[u8]) -> (&[u8], &[u8]) {
    let (mut line, rest) = match data.iter().position(|&c| c == b'\n') {
        Some(i) => {
            let end = if i > 0 && data[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            (&data[..end], &data[i + 1..])
        }
        None => (data, &data[data.len()..]),
    };
    while let [head @ .., b' ' | b'\t'] = line {
        line = head;
    }
    (line, rest)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim_ascii_space(s: &[u8]) -> &[u8] {
    let is = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = s.iter().position(|c| !is(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !is(c)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// Go's pem.Decode: the first well-formed block and what follows it, or None (rest = input).
/// A likely-looking but malformed block is skipped and the search goes on after its BEGIN line.
pub(crate) fn pem_decode(data: &[u8]) -> Option<(Block, &[u8])> {
    const START: &[u8] = b"\n-----BEGIN ";
    const END: &[u8] = b"\n-----END ";
    const EOL: &[u8] = b"-----";
    let mut rest = data;
    loop {
        if rest.starts_with(&START[1..]) {
            rest = &rest[START.len() - 1..];
        } else if let Some(i) = find(rest, START) {
            rest = &rest[i + START.len()..];
        } else {
            return None;
        }
        let (type_line, after) = get_line(rest);
        rest = after;
        let Some(kind) = type_line.strip_suffix(EOL) else {
            continue;
        };
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        loop {
            if rest.is_empty() {
                return None;
            }
            let (line, next) = get_line(rest);
            let Some(i) = line.iter().position(|&c| c == b':') else {
                break;
            };
            let (k, v) = (
                trim_ascii_space(&line[..i]),
                trim_ascii_space(&line[i + 1..]),
            );
            // A Go map: a repeated key keeps its last value.
            headers.retain(|(hk, _)| hk != k);
            headers.push((k.to_vec(), v.to_vec()));
            rest = next;
        }
        let (end_index, trailer_index) = if headers.is_empty() && rest.starts_with(&END[1..]) {
            (0, END.len() - 1)
        } else {
            match find(rest, END) {
                Some(i) => (i, i + END.len()),
                None => continue,
            }
        };
        let trailer = &rest[trailer_index..];
        let trailer_len = kind.len() + EOL.len();
        if trailer.len() < trailer_len {
            continue;
        }
        let (end_line, rest_of_end_line) = trailer.split_at(trailer_len);
        if !end_line.starts_with(kind) || !end_line.ends_with(EOL) {
            continue;
        }
        if !get_line(rest_of_end_line).0.is_empty() {
            continue;
        }
        let b64: Vec<u8> = rest[..end_index]
            .iter()
            .copied()
            .filter(|c| !matches!(c, b' ' | b'\t'))
            .collect();
        let Ok(bytes) = super::funcs::b64_decode(&b64) else {
            continue;
        };
        let (_, after_end) = get_line(&rest[end_index + END.len() - 1..]);
        return Some((
            Block {
                kind: kind.to_vec(),
                headers,
                bytes: Zeroizing::new(bytes),
            },
            after_end,
        ));
    }
}

/// Go's pem.Encode: headers (Proc-Type first, the rest sorted), base64 in 64-column lines.
pub(crate) fn pem_encode(
    out: &mut Vec<u8>,
    kind: &[u8],
    headers: &[(Vec<u8>, Vec<u8>)],
    der: &[u8],
) {
    out.extend_from_slice(b"-----BEGIN ");
    out.extend_from_slice(kind);
    out.extend_from_slice(b"-----\n");
    if !headers.is_empty() {
        let mut sorted: Vec<&(Vec<u8>, Vec<u8>)> = headers.iter().collect();
        sorted.sort_by(|a, b| (a.0 != b"Proc-Type", &a.0).cmp(&(b.0 != b"Proc-Type", &b.0)));
        for (k, v) in sorted {
            out.extend_from_slice(k);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END ");
    out.extend_from_slice(kind);
    out.extend_from_slice(b"-----\n");
}

fn pem_of(kind: &[u8], der: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    pem_encode(&mut out, kind, &[], der);
    out
}

/// ESO's trimJunk: what precedes the first `-----BEGIN` is dropped (as Go's pem.Decode did
/// before Go 1.26).
fn trim_junk(input: &[u8]) -> &[u8] {
    match find(input, b"-----BEGIN") {
        Some(i) => &input[i..],
        None => input,
    }
}

/// Go's strings.EqualFold for the block types (Unicode simple folding).
fn equal_fold(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    a.chars().count() == b.chars().count()
        && a.chars().zip(b.chars()).all(|(x, y)| {
            x == y || x.to_lowercase().eq(y.to_lowercase()) || x.to_uppercase().eq(y.to_uppercase())
        })
}

/// `filterPEM TYPE INPUT`: the blocks of INPUT whose type is TYPE (case-insensitively),
/// re-encoded as Go does. Junk and no match is an error; no match in clean PEM is "".
fn filter_pem(kind: &[u8], input: &[u8]) -> R {
    let mut data = trim_junk(input);
    let mut out = Vec::new();
    while let Some((block, rest)) = pem_decode(data) {
        data = rest;
        if equal_fold(&block.kind, kind) {
            pem_encode(&mut out, &block.kind, &block.headers, &block.bytes);
        }
    }
    if out.is_empty() && !data.is_empty() {
        return fail("error filtering pem: found junk");
    }
    text(out)
}

// ---- certificates ----

/// The parts of an X.509 certificate that ESO's chain ordering looks at.
struct Cert {
    der: Vec<u8>,
    /// Go's AuthorityKeyId: nil when the extension or its key identifier is absent.
    aki: Option<Vec<u8>>,
    ski: Vec<u8>,
}

fn parse_cert(der: &[u8]) -> Result<Cert, FnError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| FnError::Msg("x509: malformed certificate".into()))?;
    if !rest.is_empty() {
        return fail("x509: trailing data");
    }
    let (mut aki, mut ski) = (None, Vec::new());
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            ParsedExtension::SubjectKeyIdentifier(k) => ski = k.0.to_vec(),
            _ => {}
        }
    }
    Ok(Cert {
        der: der.to_vec(),
        aki,
        ski,
    })
}

/// Every PEM block of `data` parsed as a certificate (pem_chain.go's pemToNodes).
fn certs_in(mut data: &[u8]) -> Result<Vec<Cert>, FnError> {
    let mut certs = Vec::new();
    while let Some((block, rest)) = pem_decode(data) {
        data = rest;
        certs.push(parse_cert(&block.bytes)?);
    }
    Ok(certs)
}

/// ESO's chain ordering (pem_chain.go): leaf, intermediates, root, linked by authority and
/// subject key identifiers (Go's bytes.Equal: an absent identifier equals an empty one).
/// Not a trust check: signatures are not verified.
fn order_chain(certs: Vec<Cert>) -> Result<Vec<Cert>, FnError> {
    let n = certs.len();
    let mut parent: Vec<Option<usize>> = vec![None; n];
    let mut is_parent = vec![false; n];
    for i in 0..n {
        let aki = certs[i].aki.as_deref().unwrap_or_default();
        if let Some(j) = (0..n).find(|&j| j != i && aki == certs[j].ski.as_slice()) {
            is_parent[j] = true;
            parent[i] = Some(j);
        }
    }
    let mut leaves = (0..n).filter(|&i| !is_parent[i]);
    let Some(leaf) = leaves.next() else {
        return fail("no leaf certificate found");
    };
    if leaves.next().is_some() {
        return fail("found multiple leaf or disjunct certificates");
    }
    let mut order = Vec::new();
    let mut at = Some(leaf);
    while let Some(i) = at {
        if order.len() >= n {
            return fail("constructing chain resulted in cycle");
        }
        order.push(i);
        at = parent[i];
    }
    let mut slots: Vec<Option<Cert>> = certs.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

fn is_root(c: &Cert) -> bool {
    c.aki.as_ref().is_none_or(|a| *a == c.ski)
}

/// `filterCertChain leaf|intermediate|root PEM`: that part of the ordered chain, or "".
fn filter_cert_chain(which: &[u8], input: &[u8]) -> R {
    let ordered = order_chain(certs_in(input)?)?;
    let mut out = Vec::new();
    match which {
        b"leaf" => {
            if let Some(c) = ordered.first()
                && c.aki.as_ref().is_some_and(|a| *a != c.ski)
            {
                out = pem_of(b"CERTIFICATE", &c.der);
            }
        }
        b"intermediate" => {
            for c in ordered.iter().skip(1).take_while(|c| !is_root(c)) {
                pem_encode(&mut out, b"CERTIFICATE", &[], &c.der);
            }
        }
        b"root" => {
            if let Some(c) = ordered.last()
                && is_root(c)
            {
                out = pem_of(b"CERTIFICATE", &c.der);
            }
        }
        _ => {}
    }
    text(out)
}

/// Go's net.IP.String for a SAN address: IPv4 (also IPv4-mapped IPv6) dotted, IPv6 RFC 5952.
fn ip_string(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            let v6 = std::net::Ipv6Addr::from(a);
            match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            }
        }
        _ => {
            // Go prints an IP of another length as "?" followed by its hex digits.
            let mut s = String::from("?");
            for x in b {
                s.push_str(&format!("{x:02x}"));
            }
            s
        }
    }
}

/// `certSANs PEM`: the first certificate's DNS names, IP addresses, e-mails and URIs, in that order.
fn cert_sans(input: &[u8]) -> R {
    let Some((block, _)) = pem_decode(trim_junk(input)) else {
        return fail("failed to decode PEM block");
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&block.bytes)
        .map_err(|_| FnError::Msg("failed to parse certificate".into()))?;
    let (mut dns, mut ips, mut emails, mut uris) = (vec![], vec![], vec![], vec![]);
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    GeneralName::IPAddress(ip) => ips.push(ip_string(ip)),
                    GeneralName::RFC822Name(e) => emails.push(e.to_string()),
                    GeneralName::URI(u) => uris.push(u.to_string()),
                    _ => {}
                }
            }
        }
    }
    let all: Vec<Value> = dns
        .into_iter()
        .chain(ips)
        .chain(emails)
        .chain(uris)
        .map(Value::str)
        .collect();
    Ok(Value::List(std::rc::Rc::new(all), ElemTy::Str))
}

// ---- private keys ----

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

/// Go's PKCS#8 DER of an Ed25519 key: fixed prefix and the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn bad_key<T>() -> Result<T, FnError> {
    fail("unable to parse private key type")
}

/// A private key as Go's `x509.MarshalPKCS8PrivateKey` writes it (after Go parsed it): RSA
/// two-prime PKCS#1 inside, EC with the curve in the algorithm and the public point inside,
/// Ed25519 as its seed. From PKCS#8 DER.
fn normalise_pkcs8(der: &[u8]) -> Result<Zeroizing<Vec<u8>>, FnError> {
    let info = pkcs8::PrivateKeyInfo::try_from(der).or_else(|_| bad_key())?;
    let oid = info.algorithm.oid.to_string();
    let out = match oid.as_str() {
        OID_RSA => {
            let k = rsa::RsaPrivateKey::from_pkcs8_der(der).or_else(|_| bad_key())?;
            k.validate().or_else(|_| bad_key())?;
            k.to_pkcs8_der().or_else(|_| bad_key())?
        }
        OID_EC => {
            let curve = info
                .algorithm
                .parameters_oid()
                .map(|o| o.to_string())
                .or_else(|_| fail("x509: unknown elliptic curve"))?;
            match curve.as_str() {
                OID_P256 => p256::SecretKey::from_pkcs8_der(der)
                    .or_else(|_| bad_key())?
                    .to_pkcs8_der(),
                OID_P384 => p384::SecretKey::from_pkcs8_der(der)
                    .or_else(|_| bad_key())?
                    .to_pkcs8_der(),
                OID_P521 => p521::SecretKey::from_pkcs8_der(der)
                    .or_else(|_| bad_key())?
                    .to_pkcs8_der(),
                _ => return fail("x509: unknown elliptic curve"),
            }
            .or_else(|_| bad_key())?
        }
        OID_ED25519 => {
            // The key is an OCTET STRING holding the 32-byte seed.
            let inner = info.private_key;
            if inner.len() != 34 || inner[0] != 0x04 || inner[1] != 0x20 {
                return bad_key();
            }
            let mut v = Zeroizing::new(ED25519_PKCS8_PREFIX.to_vec());
            v.extend_from_slice(&inner[2..]);
            return Ok(v);
        }
        _ => return fail("x509: PKCS#8 wrapping contained private key with unknown algorithm"),
    };
    Ok(Zeroizing::new(out.as_bytes().to_vec()))
}

/// ESO's parsePrivateKey: PKCS#1 RSA, then PKCS#8, then SEC1 EC; returned as Go's PKCS#8.
fn any_private_key(der: &[u8]) -> Result<Zeroizing<Vec<u8>>, FnError> {
    if let Ok(k) = rsa::RsaPrivateKey::from_pkcs1_der(der) {
        return Ok(Zeroizing::new(
            k.to_pkcs8_der().or_else(|_| bad_key())?.as_bytes().to_vec(),
        ));
    }
    if let Ok(k) = normalise_pkcs8(der) {
        return Ok(k);
    }
    let ec = sec1::EcPrivateKey::try_from(der).or_else(|_| bad_key())?;
    let curve = ec
        .parameters
        .and_then(|p| p.named_curve())
        .map(|o| o.to_string())
        .unwrap_or_default();
    let out = match curve.as_str() {
        OID_P256 => p256::SecretKey::from_sec1_der(der)
            .or_else(|_| bad_key())?
            .to_pkcs8_der(),
        OID_P384 => p384::SecretKey::from_sec1_der(der)
            .or_else(|_| bad_key())?
            .to_pkcs8_der(),
        OID_P521 => p521::SecretKey::from_sec1_der(der)
            .or_else(|_| bad_key())?
            .to_pkcs8_der(),
        _ => return bad_key(),
    }
    .or_else(|_| bad_key())?;
    Ok(Zeroizing::new(out.as_bytes().to_vec()))
}

// ---- PKCS#12 ----

/// A private key (as Go's PKCS#8) and certificates (DER, in bag order).
struct Decoded {
    key: Zeroizing<Vec<u8>>,
    certs: Vec<Vec<u8>>,
}

/// What go-pkcs12's DecodeChain gives: the one private key (as Go's PKCS#8) and the
/// certificates in bag order (the first is the leaf).
fn decode_p12(data: &[u8], pass: &str) -> Result<Decoded, &'static str> {
    use der08::Decode as _;
    // go-pkcs12 insists on a MAC and on one or two items in the authenticated safe.
    let pfx = pkcs12::pfx::Pfx::from_der(data).map_err(|_| "pkcs12: error reading P12 data")?;
    if pfx.mac_data.is_none() {
        return Err("pkcs12: no MAC in data");
    }
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(data, pass)
        .map_err(|_| "pkcs12: decryption password incorrect or data malformed")?;
    let key = match archive.keys.as_slice() {
        [one] => {
            normalise_pkcs8(one.key.as_der()).map_err(|_| "pkcs12: unsupported private key")?
        }
        [] => return Err("pkcs12: private key missing"),
        _ => return Err("pkcs12: expected exactly one key bag"),
    };
    if archive.certs.is_empty() {
        return Err("pkcs12: certificate missing");
    }
    let certs = archive
        .certs
        .iter()
        .map(|c| c.cert.as_der().to_vec())
        .collect();
    Ok(Decoded { key, certs })
}

/// `pkcs12keyPass PASS P12` / `pkcs12key P12`: the private key of a binary PKCS#12 archive, as a
/// PKCS#8 "PRIVATE KEY" PEM block.
fn pkcs12_key(pass: &str, input: &[u8]) -> R {
    let Decoded { key, .. } = decode_p12(input, pass)
        .map_err(|e| FnError::Msg(format!("unable to decode pkcs12 with password: {e}")))?;
    text(pem_of(b"PRIVATE KEY", &key))
}

/// `pkcs12certPass PASS P12` / `pkcs12cert P12`: the certificates as "CERTIFICATE" PEM blocks,
/// leaf first then up the chain when ESO's ordering finds one chain; in bag order otherwise.
fn pkcs12_cert(pass: &str, input: &[u8]) -> R {
    let Decoded { certs, .. } = decode_p12(input, pass).map_err(|e| {
        FnError::Msg(format!(
            "unable to decode pkcs12 certificate with password: {e}"
        ))
    })?;
    let mut unordered = Vec::new();
    let mut parsed = Vec::new();
    for der in &certs {
        pem_encode(&mut unordered, b"CERTIFICATE", &[], der);
        match parse_cert(der) {
            Ok(c) => parsed.push(c),
            Err(_) => return text(unordered),
        }
    }
    match order_chain(parsed) {
        Ok(ordered) => {
            let mut out = Vec::new();
            for c in ordered {
                pem_encode(&mut out, b"CERTIFICATE", &[], &c.der);
            }
            text(out)
        }
        Err(_) => text(unordered),
    }
}

/// Every PEM block of `data` as a certificate; what is left must be a block (ESO's parseCaCerts).
fn ca_certs(mut data: &[u8]) -> Result<Vec<Vec<u8>>, FnError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some((block, rest)) = pem_decode(data) else {
            return fail("no PEM block in the certificate input");
        };
        data = rest;
        parse_cert(&block.bytes)?;
        out.push(block.bytes.to_vec());
    }
    Ok(out)
}

/// The iteration counts of go-pkcs12's `Modern` encoder, which ESO uses: PBES2 with
/// PBKDF2-HMAC-SHA-256 and AES-256-CBC, and an HMAC-SHA-256 MAC.
const P12_ITERATIONS: u32 = 2048;

fn write_p12(store: &p12_keystore::KeyStore, pass: &str) -> R {
    let der = store
        .writer(pass)
        .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(P12_ITERATIONS)
        .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha256)
        .mac_iterations(P12_ITERATIONS)
        .write()
        .map_err(|_| FnError::Msg("pkcs12: encoding failed".into()))?;
    let der = Zeroizing::new(der);
    text(
        base64::engine::general_purpose::STANDARD
            .encode(&der[..])
            .into_bytes(),
    )
}

/// `pemToPkcs12[Pass] CERT KEY [PASS]` and `fullPemToPkcs12[Pass]`: a base64 PKCS#12 archive
/// of the key and the first certificate (`full`: and the certificates after it).
fn pem_to_p12(cert: &[u8], key: &[u8], pass: &str, full: bool) -> R {
    let Some((leaf, rest)) = pem_decode(cert) else {
        return fail("no PEM block in the certificate");
    };
    parse_cert(&leaf.bytes)?;
    let mut chain = vec![leaf.bytes.to_vec()];
    if full {
        chain.extend(ca_certs(rest)?);
    }
    let Some((key_block, _)) = pem_decode(key) else {
        return fail("no PEM block in the private key");
    };
    let pkcs8 = any_private_key(&key_block.bytes)?;
    let key = p12_keystore::PrivateKey::from_der(&pkcs8).or_else(|_| bad_key())?;
    let certs = chain
        .iter()
        .map(|d| p12_keystore::Certificate::from_der(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| FnError::Msg("x509: malformed certificate".into()))?;
    // go-pkcs12 names the key by the SHA-1 of the leaf certificate.
    let id: Vec<u8> = <sha1::Sha1 as sha1::Digest>::digest(&chain[0][..]).to_vec();
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "1",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            id, key, certs,
        )),
    );
    write_p12(&store, pass)
}

/// `pemTruststoreToPKCS12[Pass] CERTS [PASS]`: a base64 PKCS#12 trust store (every certificate
/// marked trusted, as Java reads it).
fn pem_truststore(cert: &[u8], pass: &str) -> R {
    let mut store = p12_keystore::KeyStore::new();
    for (i, der) in ca_certs(cert)?.iter().enumerate() {
        let c = p12_keystore::Certificate::from_der(der)
            .map_err(|_| FnError::Msg("x509: malformed certificate".into()))?;
        store.add_entry(&i.to_string(), p12_keystore::KeyStoreEntry::Certificate(c));
    }
    write_p12(&store, pass)
}

// ---- JWK (RFC 7517/7518) ----

/// A JWK member in base64url (padded or not; jwx also reads standard base64).
fn jwk_bytes(
    jwk: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, FnError> {
    let Some(v) = jwk.get(name) else {
        return Ok(None);
    };
    let Some(t) = v.as_str() else {
        return fail(format!("failed to parse key: {name:?} is not a string"));
    };
    let t = t.trim_end_matches('=');
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let std = base64::engine::general_purpose::STANDARD_NO_PAD;
    let bytes = e
        .decode(t)
        .or_else(|_| std.decode(t))
        .map_err(|_| FnError::Msg(format!("failed to parse key: {name:?} is not base64")))?;
    Ok(Some(Zeroizing::new(bytes)))
}

fn need(
    jwk: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Zeroizing<Vec<u8>>, FnError> {
    jwk_bytes(jwk, name)?
        .ok_or_else(|| FnError::Msg(format!("failed to parse key: missing {name:?}")))
}

fn pad(b: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, FnError> {
    if b.len() > len {
        return fail("failed to parse key: coordinate too long for the curve");
    }
    let mut v = Zeroizing::new(vec![0u8; len - b.len()]);
    v.extend_from_slice(b);
    Ok(v)
}

fn big(b: &[u8]) -> rsa::BigUint {
    rsa::BigUint::from_bytes_be(b)
}

/// `jwkPublicKeyPem JWK` / `jwkPrivateKeyPem JWK`: a JWK (RSA, EC P-256/P-384/P-521, OKP
/// Ed25519) as a "PUBLIC KEY" (PKIX) or "PRIVATE KEY" (PKCS#8) PEM block. As in ESO, the public
/// form of a private JWK and the private form of a public JWK are errors.
fn jwk_pem(input: &[u8], private: bool) -> R {
    let jwk: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(input)
        .map_err(|_| FnError::Msg("failed to parse key: not a JSON object".into()))?;
    let kty = jwk.get("kty").and_then(|k| k.as_str()).unwrap_or_default();
    let has_d = jwk.contains_key("d");
    if has_d != private {
        return fail(if private {
            "x509: unknown key type while marshaling PKCS#8: a public key"
        } else {
            "x509: unsupported public key type: a private key"
        });
    }
    let der: Zeroizing<Vec<u8>> = match kty {
        "RSA" => {
            let (n, e) = (big(&need(&jwk, "n")?), big(&need(&jwk, "e")?));
            if private {
                let primes = vec![big(&need(&jwk, "p")?), big(&need(&jwk, "q")?)];
                let k = rsa::RsaPrivateKey::from_components(n, e, big(&need(&jwk, "d")?), primes)
                    .or_else(|_| fail("failed to parse key: invalid RSA key"))?;
                Zeroizing::new(k.to_pkcs8_der().or_else(|_| bad_key())?.as_bytes().to_vec())
            } else {
                let k = rsa::RsaPublicKey::new_with_max_size(n, e, 16384)
                    .or_else(|_| fail("failed to parse key: invalid RSA key"))?;
                Zeroizing::new(
                    k.to_public_key_der()
                        .or_else(|_| fail("invalid RSA key"))?
                        .into_vec(),
                )
            }
        }
        "EC" => {
            let crv = jwk.get("crv").and_then(|c| c.as_str()).unwrap_or_default();
            let size = match crv {
                "P-256" => 32,
                "P-384" => 48,
                "P-521" => 66,
                _ => return fail("failed to parse key: unsupported elliptic curve"),
            };
            if private {
                let d = pad(&need(&jwk, "d")?, size)?;
                let bad = |_| FnError::Msg("failed to parse key: invalid EC private key".into());
                let doc = match crv {
                    "P-256" => p256::SecretKey::from_slice(&d).map_err(bad)?.to_pkcs8_der(),
                    "P-384" => p384::SecretKey::from_slice(&d).map_err(bad)?.to_pkcs8_der(),
                    _ => p521::SecretKey::from_slice(&d).map_err(bad)?.to_pkcs8_der(),
                }
                .or_else(|_| bad_key())?;
                Zeroizing::new(doc.as_bytes().to_vec())
            } else {
                let mut point = vec![0x04];
                point.extend_from_slice(&pad(&need(&jwk, "x")?, size)?);
                point.extend_from_slice(&pad(&need(&jwk, "y")?, size)?);
                let bad = |_| FnError::Msg("failed to parse key: invalid EC public key".into());
                let doc = match crv {
                    "P-256" => p256::PublicKey::from_sec1_bytes(&point)
                        .map_err(bad)?
                        .to_public_key_der(),
                    "P-384" => p384::PublicKey::from_sec1_bytes(&point)
                        .map_err(bad)?
                        .to_public_key_der(),
                    _ => p521::PublicKey::from_sec1_bytes(&point)
                        .map_err(bad)?
                        .to_public_key_der(),
                }
                .or_else(|_| fail("invalid EC public key"))?;
                Zeroizing::new(doc.into_vec())
            }
        }
        "OKP" if jwk.get("crv").and_then(|c| c.as_str()) == Some("Ed25519") => {
            let (prefix, field): (&[u8], &str) = if private {
                (&ED25519_PKCS8_PREFIX, "d")
            } else {
                (&ED25519_SPKI_PREFIX, "x")
            };
            let raw = need(&jwk, field)?;
            if raw.len() != 32 {
                return fail("failed to parse key: invalid Ed25519 key length");
            }
            let mut v = Zeroizing::new(prefix.to_vec());
            v.extend_from_slice(&raw);
            v
        }
        _ => return fail("failed to parse key: unsupported key type"),
    };
    let kind: &[u8] = if private {
        b"PRIVATE KEY"
    } else {
        b"PUBLIC KEY"
    };
    text(pem_of(kind, &der))
}

// ---- RSA-OAEP ----

/// `rsaDecrypt SCHEME HASH CIPHERTEXT KEY`: scheme "None" returns the input; "RSA-OAEP" decrypts
/// with the PEM private key (PKCS#1 or PKCS#8 RSA), hash SHA1, SHA256 or SHA512 (anything else:
/// SHA256), empty label.
fn rsa_decrypt(scheme: &[u8], hash: &[u8], input: &[u8], key: &[u8]) -> R {
    match scheme {
        b"None" => text(input.to_vec()),
        b"RSA-OAEP" => {
            let Some((block, _)) = pem_decode(key) else {
                return fail("failed to decode PEM block");
            };
            let pkcs8 = any_private_key(&block.bytes)
                .map_err(|_| FnError::Msg("could not parse private key".into()))?;
            let k = rsa::RsaPrivateKey::from_pkcs8_der(&pkcs8)
                .map_err(|_| FnError::Msg("could not parse RSA private key".into()))?;
            let padding = match hash {
                b"SHA1" => rsa::Oaep::new::<sha1::Sha1>(),
                b"SHA512" => rsa::Oaep::new::<sha2::Sha512>(),
                _ => rsa::Oaep::new::<sha2::Sha256>(),
            };
            let out = k.decrypt(padding, input).map_err(|_| {
                FnError::Msg("error decrypting data with RSA: crypto/rsa: decryption error".into())
            })?;
            text(out)
        }
        _ => fail("decryption scheme is not supported"),
    }
}

/// Calls one of ESO's functions by name; None if the name is not one.
pub(crate) fn call(name: &str, a: &[Value]) -> Option<R> {
    let r = match name {
        "filterPEM" => count(a, 2).and_then(|()| filter_pem(s(&a[0])?, s(&a[1])?)),
        "filterCertChain" => count(a, 2).and_then(|()| filter_cert_chain(s(&a[0])?, s(&a[1])?)),
        "certSANs" => count(a, 1).and_then(|()| cert_sans(s(&a[0])?)),
        "pkcs12key" => count(a, 1).and_then(|()| pkcs12_key("", s(&a[0])?)),
        "pkcs12keyPass" => count(a, 2).and_then(|()| pkcs12_key(&password(&a[0])?, s(&a[1])?)),
        "pkcs12cert" => count(a, 1).and_then(|()| pkcs12_cert("", s(&a[0])?)),
        "pkcs12certPass" => count(a, 2).and_then(|()| pkcs12_cert(&password(&a[0])?, s(&a[1])?)),
        "pemToPkcs12" => count(a, 2).and_then(|()| pem_to_p12(s(&a[0])?, s(&a[1])?, "", false)),
        "pemToPkcs12Pass" => {
            count(a, 3).and_then(|()| pem_to_p12(s(&a[0])?, s(&a[1])?, &password(&a[2])?, false))
        }
        "fullPemToPkcs12" => count(a, 2).and_then(|()| pem_to_p12(s(&a[0])?, s(&a[1])?, "", true)),
        "fullPemToPkcs12Pass" => {
            count(a, 3).and_then(|()| pem_to_p12(s(&a[0])?, s(&a[1])?, &password(&a[2])?, true))
        }
        "pemTruststoreToPKCS12" => count(a, 1).and_then(|()| pem_truststore(s(&a[0])?, "")),
        "pemTruststoreToPKCS12Pass" => {
            count(a, 2).and_then(|()| pem_truststore(s(&a[0])?, &password(&a[1])?))
        }
        "jwkPublicKeyPem" => count(a, 1).and_then(|()| jwk_pem(s(&a[0])?, false)),
        "jwkPrivateKeyPem" => count(a, 1).and_then(|()| jwk_pem(s(&a[0])?, true)),
        "rsaDecrypt" => {
            count(a, 4).and_then(|()| rsa_decrypt(s(&a[0])?, s(&a[1])?, s(&a[2])?, s(&a[3])?))
        }
        _ => return None,
    };
    Some(r)
}

/// The names [`call`] answers.
pub(crate) const NAMES: &[&str] = &[
    "filterPEM",
    "filterCertChain",
    "certSANs",
    "pkcs12key",
    "pkcs12keyPass",
    "pkcs12cert",
    "pkcs12certPass",
    "pemToPkcs12",
    "pemToPkcs12Pass",
    "fullPemToPkcs12",
    "fullPemToPkcs12Pass",
    "pemTruststoreToPKCS12",
    "pemTruststoreToPKCS12Pass",
    "jwkPublicKeyPem",
    "jwkPrivateKeyPem",
    "rsaDecrypt",
];
