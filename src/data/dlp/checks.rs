//! Checksums and structural validators that turn a regex candidate into a finding
//! (Luhn, IBAN mod-97, Steuer-ID, SSN ranges, IP address forms, JWT headers, ...).

use serde::Deserialize;

/// Named validators a rule can ask for in its `validator` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    /// Payment card: Luhn checksum; known issuer ranges keep the score, other ranges lower it.
    Card,
    /// IBAN: country length and BBAN shape, ISO 7064 mod-97 check.
    Iban,
    /// German Steuer-Identifikationsnummer (11 digits, ISO 7064 MOD 11,10, digit-repeat rule).
    SteuerId,
    /// US social security number: area/group/serial ranges and well-known fake numbers.
    Ssn,
    /// IPv4 address outside private, loopback and link-local ranges.
    Ipv4Public,
    /// IPv4 address inside private, loopback, link-local or unspecified ranges.
    Ipv4Private,
    /// IPv6 address (full, compressed, with embedded IPv4, zone and prefix).
    Ipv6,
    /// Phone number: 7 to 15 digits in total.
    Phone,
    /// JSON Web Token: the first segment must decode to a JSON object header.
    Jwt,
    /// PEM private key block: the body must carry real key material.
    PrivateKeyBody,
    /// Calendar date (day 1-31, month 1-12, plausible year).
    Date,
}

/// What a validator concluded about a candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Not an instance of the entity: drop it.
    Reject,
    /// An instance; add this (possibly negative) amount to the rule's score.
    Accept(f32),
}

/// Score lowered for Luhn-valid numbers outside every known issuer range.
const CARD_UNKNOWN_ISSUER_PENALTY: f32 = -0.35;
/// Shortest body (base64 characters) a real PEM private key has.
const MIN_PRIVATE_KEY_BODY: usize = 64;

impl Validator {
    /// Judge `candidate` (the matched secret text) on its own.
    pub fn check(self, candidate: &str) -> Verdict {
        let ok = |b: bool| {
            if b {
                Verdict::Accept(0.0)
            } else {
                Verdict::Reject
            }
        };
        match self {
            Validator::Card => card(candidate),
            Validator::Iban => ok(iban(candidate)),
            Validator::SteuerId => ok(steuer_id(candidate)),
            Validator::Ssn => ok(ssn(candidate)),
            Validator::Ipv4Public => {
                ok(parse_ipv4(strip_prefix_len(candidate)).is_some_and(|o| !is_private_v4(o)))
            }
            Validator::Ipv4Private => {
                ok(parse_ipv4(strip_prefix_len(candidate)).is_some_and(is_private_v4))
            }
            Validator::Ipv6 => ok(ipv6(candidate)),
            Validator::Phone => {
                let n = digits(candidate).len();
                ok((7..=15).contains(&n))
            }
            Validator::Jwt => ok(jwt(candidate)),
            Validator::PrivateKeyBody => private_key_body(candidate),
            Validator::Date => ok(date(candidate)),
        }
    }
}

fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// Luhn (mod 10) checksum over the decimal digits of `s`.
pub fn luhn(s: &str) -> bool {
    let d = digits(s);
    if d.is_empty() {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum % 10 == 0
}

/// Whether a digit string falls in a known card issuer range with a valid length.
pub fn card_issuer(d: &str) -> Option<&'static str> {
    let len = d.len();
    let p = |n: usize| d.get(..n).and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
    let in_len = |lens: &[usize]| lens.contains(&len);
    if d.starts_with('4') && in_len(&[13, 16, 19]) {
        return Some("visa");
    }
    if ((51..=55).contains(&p(2)) || (2221..=2720).contains(&p(4))) && len == 16 {
        return Some("mastercard");
    }
    if (p(2) == 34 || p(2) == 37) && len == 15 {
        return Some("amex");
    }
    if (p(4) == 6011
        || (644..=649).contains(&p(3))
        || p(2) == 65
        || (622126..=622925).contains(&p(6)))
        && (16..=19).contains(&len)
    {
        return Some("discover");
    }
    if (3528..=3589).contains(&p(4)) && (16..=19).contains(&len) {
        return Some("jcb");
    }
    if ((300..=305).contains(&p(3)) || p(2) == 36 || p(2) == 38 || p(2) == 39)
        && (14..=19).contains(&len)
    {
        return Some("diners");
    }
    if p(2) == 62 && (16..=19).contains(&len) {
        return Some("unionpay");
    }
    if (2200..=2204).contains(&p(4)) && (16..=19).contains(&len) {
        return Some("mir");
    }
    if (p(2) == 50 || (56..=69).contains(&p(2))) && (12..=19).contains(&len) {
        return Some("maestro");
    }
    if d.starts_with('1') && len == 15 {
        return Some("uatp");
    }
    None
}

fn card(candidate: &str) -> Verdict {
    let d: String = candidate.chars().filter(char::is_ascii_digit).collect();
    if !(12..=19).contains(&d.len()) || !luhn(&d) {
        return Verdict::Reject;
    }
    // All-same digits ("0000 0000 0000 0000") pass Luhn but are filler.
    if d.bytes().all(|b| b == d.as_bytes()[0]) {
        return Verdict::Reject;
    }
    // Mixed separators ("4111-1111 1111.1111") are not how cards are written.
    let seps: Vec<char> = candidate.chars().filter(|c| !c.is_ascii_digit()).collect();
    if seps.windows(2).any(|w| w[0] != w[1]) {
        return Verdict::Reject;
    }
    match card_issuer(&d) {
        Some(_) => Verdict::Accept(0.0),
        None => Verdict::Accept(CARD_UNKNOWN_ISSUER_PENALTY),
    }
}

/// IBAN lengths and BBAN shapes per country (SWIFT IBAN registry). Shape letters:
/// `n` digit, `a` upper-case letter, `c` upper-case letter or digit; each preceded by a count.
const IBAN_FORMATS: &[(&str, &str)] = &[
    ("AD", "4n4n12c"),
    ("AE", "3n16n"),
    ("AL", "8n16c"),
    ("AT", "5n11n"),
    ("AZ", "4a20c"),
    ("BA", "3n3n8n2n"),
    ("BE", "3n7n2n"),
    ("BG", "4a4n2n8c"),
    ("BH", "4a14c"),
    ("BI", "5n5n11n2n"),
    ("BR", "8n5n10n1a1c"),
    ("BY", "4c4n16c"),
    ("CH", "5n12c"),
    ("CR", "4n14n"),
    ("CY", "3n5n16c"),
    ("CZ", "4n6n10n"),
    ("DE", "8n10n"),
    ("DJ", "5n5n11n2n"),
    ("DK", "4n9n1n"),
    ("DO", "4c20n"),
    ("EE", "2n2n11n1n"),
    ("EG", "4n4n17n"),
    ("ES", "4n4n1n1n10n"),
    ("FI", "3n11n"),
    ("FK", "2a12n"),
    ("FO", "4n9n1n"),
    ("FR", "5n5n11c2n"),
    ("GB", "4a6n8n"),
    ("GE", "2a16n"),
    ("GI", "4a15c"),
    ("GL", "4n9n1n"),
    ("GR", "3n4n16c"),
    ("GT", "4c20c"),
    ("HN", "4a20n"),
    ("HR", "7n10n"),
    ("HU", "3n4n1n15n1n"),
    ("IE", "4a6n8n"),
    ("IL", "3n3n13n"),
    ("IQ", "4a3n12n"),
    ("IS", "4n2n6n10n"),
    ("IT", "1a5n5n12c"),
    ("JO", "4a4n18c"),
    ("KW", "4a22c"),
    ("KZ", "3n13c"),
    ("LB", "4n20c"),
    ("LC", "4a24c"),
    ("LI", "5n12c"),
    ("LT", "5n11n"),
    ("LU", "3n13c"),
    ("LV", "4a13c"),
    ("LY", "3n3n15n"),
    ("MC", "5n5n11c2n"),
    ("MD", "2c18c"),
    ("ME", "3n13n2n"),
    ("MK", "3n10c2n"),
    ("MN", "4n12n"),
    ("MR", "5n5n11n2n"),
    ("MT", "4a5n18c"),
    ("MU", "4a2n2n12n3n3a"),
    ("NI", "4a20n"),
    ("NL", "4a10n"),
    ("NO", "4n6n1n"),
    ("OM", "3n16c"),
    ("PK", "4a16c"),
    ("PL", "8n16n"),
    ("PS", "4a21c"),
    ("PT", "4n4n11n2n"),
    ("QA", "4a21c"),
    ("RO", "4a16c"),
    ("RS", "3n13n2n"),
    ("RU", "9n5n15c"),
    ("SA", "2n18c"),
    ("SC", "4a2n2n16n3a"),
    ("SD", "2n12n"),
    ("SE", "3n16n1n"),
    ("SI", "5n8n2n"),
    ("SK", "4n6n10n"),
    ("SM", "1a5n5n12c"),
    ("SO", "4n3n12n"),
    ("ST", "4n4n11n2n"),
    ("SV", "4a20n"),
    ("TL", "3n14n2n"),
    ("TN", "2n3n13n2n"),
    ("TR", "5n1n16c"),
    ("UA", "6n19c"),
    ("VA", "3n15n"),
    ("VG", "4a16n"),
    ("XK", "4n10n2n"),
    ("YE", "4a4n18c"),
];

fn bban_matches(shape: &str, bban: &[u8]) -> bool {
    let mut pos = 0usize;
    let mut count = 0usize;
    for ch in shape.bytes() {
        if ch.is_ascii_digit() {
            count = count * 10 + usize::from(ch - b'0');
            continue;
        }
        let Some(part) = bban.get(pos..pos + count) else {
            return false;
        };
        let ok = match ch {
            b'n' => part.iter().all(u8::is_ascii_digit),
            b'a' => part.iter().all(u8::is_ascii_uppercase),
            _ => part
                .iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
        };
        if !ok {
            return false;
        }
        pos += count;
        count = 0;
    }
    pos == bban.len()
}

/// IBAN check: separators (single spaces or dashes between groups) removed, country shape,
/// mod-97 == 1.
pub fn iban(candidate: &str) -> bool {
    let compact: Vec<u8> = candidate
        .bytes()
        .filter(|b| *b != b' ' && *b != b'-')
        .collect();
    if compact.len() < 15 || compact.len() > 34 {
        return false;
    }
    let (cc, rest) = compact.split_at(2);
    let Some(&(_, shape)) = IBAN_FORMATS.iter().find(|(c, _)| c.as_bytes() == cc) else {
        return false;
    };
    if !rest[..2].iter().all(u8::is_ascii_digit) || !bban_matches(shape, &rest[2..]) {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in rest[2..].iter().chain(cc.iter()).chain(rest[..2].iter()) {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// German tax id (Steuer-ID): 11 digits, first not 0, at most one digit of the first ten
/// repeated (at most three times, never three adjacent), check digit by ISO 7064 MOD 11,10.
pub fn steuer_id(candidate: &str) -> bool {
    let d = digits(candidate);
    if d.len() != 11 || d[0] == 0 {
        return false;
    }
    let mut counts = [0u8; 10];
    for &x in &d[..10] {
        counts[usize::from(x)] += 1;
    }
    let multi: Vec<usize> = (0..10).filter(|&i| counts[i] > 1).collect();
    // Ids issued before 2016 have ten distinct digits; later ones repeat exactly one digit
    // twice or three times (never three in a row).
    if multi.len() > 1 || multi.iter().any(|&i| counts[i] > 3) {
        return false;
    }
    if d[..10].windows(3).any(|w| w[0] == w[1] && w[1] == w[2]) {
        return false;
    }
    let mut product: u32 = 10;
    for &x in &d[..10] {
        let mut sum = (u32::from(x) + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = (11 - product) % 10;
    check == u32::from(d[10])
}

/// US SSN: 9 digits; area not 000, 666 or 9xx; group not 00; serial not 0000; separators,
/// when both present, equal; well-known published fakes rejected.
pub fn ssn(candidate: &str) -> bool {
    let d: String = candidate.chars().filter(char::is_ascii_digit).collect();
    if d.len() != 9 {
        return false;
    }
    let seps: Vec<char> = candidate.chars().filter(|c| !c.is_ascii_digit()).collect();
    if seps.len() == 2 && seps[0] != seps[1] {
        return false;
    }
    let area = &d[..3];
    if area == "000"
        || area == "666"
        || area.starts_with('9')
        || &d[3..5] == "00"
        || &d[5..] == "0000"
    {
        return false;
    }
    const KNOWN_FAKES: &[&str] = &["078051120", "123456789", "219099999", "457555462"];
    !KNOWN_FAKES.contains(&d.as_str()) && !d.bytes().all(|b| b == d.as_bytes()[0])
}

fn strip_prefix_len(s: &str) -> &str {
    s.split('/').next().unwrap_or(s)
}

/// Parse a dotted-quad IPv4 address; octets 0-255 without leading zeros.
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut n = 0;
    for part in s.split('.') {
        if n == 4 || part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        if part.len() > 1 && part.starts_with('0') {
            return None;
        }
        out[n] = part.parse::<u8>().ok()?;
        n += 1;
    }
    (n == 4).then_some(out)
}

fn is_private_v4(o: [u8; 4]) -> bool {
    o[0] == 10
        || o[0] == 127
        || o[0] == 0
        || (o[0] == 172 && (16..=31).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
        || (o[0] == 169 && o[1] == 254)
        || o == [255, 255, 255, 255]
}

/// IPv6 text form: 8 hex groups, or fewer with exactly one `::`, optional trailing dotted
/// IPv4 (counts as two groups), optional `%zone` and `/prefix`.
pub fn ipv6(s: &str) -> bool {
    let s = s.split('/').next().unwrap_or(s);
    let s = s.split('%').next().unwrap_or(s);
    if s.len() < 2 || s.matches("::").count() > 1 || s.contains(":::") {
        return false;
    }
    let (body, v4_groups) = match s.rfind(':') {
        Some(i) if s[i + 1..].contains('.') => {
            if parse_ipv4(&s[i + 1..]).is_none() {
                return false;
            }
            (&s[..=i], 2usize)
        }
        _ => (s, 0usize),
    };
    let compressed = s.contains("::");
    let groups: Vec<&str> = body.split(':').filter(|g| !g.is_empty()).collect();
    if !groups
        .iter()
        .all(|g| g.len() <= 4 && g.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return false;
    }
    // A lone ':' at either end is only allowed as part of '::'.
    let trimmed_ok = (!body.starts_with(':') || body.starts_with("::"))
        && (!body.ends_with(':') || body.ends_with("::") || v4_groups == 2);
    if !trimmed_ok {
        return false;
    }
    let total = groups.len() + v4_groups;
    if compressed { total <= 7 } else { total == 8 }
}

fn b64url_decode(seg: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(seg.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for b in seg.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A JWT's header segment decodes to a JSON object (`{"alg":...}` or `{"typ":...}`).
pub fn jwt(candidate: &str) -> bool {
    let mut parts = candidate.split('.');
    let Some(header) = parts.next() else {
        return false;
    };
    let Some(payload) = parts.next() else {
        return false;
    };
    let decodes_to_object = |seg: &str| {
        b64url_decode(seg)
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|v| v.is_object())
    };
    decodes_to_object(header) && (payload.is_empty() || b64url_decode(payload).is_some())
}

fn private_key_body(candidate: &str) -> Verdict {
    let body: String = candidate
        .lines()
        .flat_map(|l| l.split("\\n"))
        .filter(|l| !l.contains("-----") && !l.contains(':'))
        .collect::<String>();
    let key_chars = body
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/' || *b == b'=')
        .count();
    let distinct = {
        let mut seen = [false; 256];
        body.bytes().for_each(|b| seen[usize::from(b)] = true);
        seen.iter().filter(|x| **x).count()
    };
    let has_end = candidate.contains("-----END");
    if !has_end {
        // A block cut off after its header still announces a leaked key.
        return Verdict::Accept(-0.1);
    }
    if key_chars >= MIN_PRIVATE_KEY_BODY && distinct > 16 {
        Verdict::Accept(0.0)
    } else {
        Verdict::Reject
    }
}

fn date(candidate: &str) -> bool {
    let nums: Vec<u32> = candidate
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let plausible_year = |y: u32| (1900..=2100).contains(&y) || y < 100;
    match nums.as_slice() {
        [a, b, c] if *a > 31 => plausible_year(*a) && (1..=12).contains(b) && (1..=31).contains(c),
        [a, b, c] => {
            plausible_year(*c)
                && (((1..=31).contains(a) && (1..=12).contains(b))
                    || ((1..=12).contains(a) && (1..=31).contains(b)))
        }
        [d, y] => (1..=31).contains(d) && plausible_year(*y),
        _ => false,
    }
}

/// Shannon entropy of `s` in bits per byte.
pub fn shannon_entropy(s: &str) -> f32 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f32;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f32 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_matches_reference_numbers() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("378282246310005"));
        assert!(!luhn("4111111111111112"));
    }

    #[test]
    fn timestamp_is_luhn_valid_but_not_a_card_issuer() {
        assert!(luhn("1748503543012"));
        assert_eq!(card_issuer("1748503543012"), None);
        assert_eq!(
            Validator::Card.check("1748503543012"),
            Verdict::Accept(CARD_UNKNOWN_ISSUER_PENALTY)
        );
    }

    #[test]
    fn iban_examples() {
        assert!(iban("DE89 3704 0044 0532 0130 00"));
        assert!(iban("GB82WEST12345698765432"));
        assert!(!iban("DE89 3704 0044 0532 0130 01"));
        assert!(!iban("BE71 A961 2345 6769"));
    }

    #[test]
    fn steuer_id_examples() {
        assert!(steuer_id("12345678903"));
        assert!(steuer_id("98765432106"));
        assert!(!steuer_id("12345678901"));
        assert!(!steuer_id("11111111111"));
        assert!(!steuer_id("02345678903"));
    }

    #[test]
    fn ipv6_forms() {
        for ok in [
            "2001:db8::1",
            "::",
            "::1",
            "fe80::1%eth0",
            "::ffff:192.0.2.1",
            "2001:db8::/32",
        ] {
            assert!(ipv6(ok), "{ok}");
        }
        for bad in [
            "2001::db8::1",
            "12345:db8::1",
            "684D:1111:222:3333:4444:5555:77",
            ":::",
        ] {
            assert!(!ipv6(bad), "{bad}");
        }
    }

    #[test]
    fn entropy_of_uniform_alphabet() {
        assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-6);
        assert_eq!(shannon_entropy("aaaa"), 0.0);
    }
}
