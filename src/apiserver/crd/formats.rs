//! The string `format`s a CRD schema can ask for, checked as upstream checks them.
//!
//! Why a table of our own: upstream validates custom resources with kube-openapi's `strfmt.Default`
//! registry, but only for the formats apiextensions lists as supported (`supportedVersionedFormats`);
//! any other format name is stripped from the schema and never checked, so a CRD written for a newer
//! server still works. Names are compared without dashes (`date-time` is `datetime`), as go-openapi
//! normalizes them. Each check follows the Go function upstream calls (`net.ParseIP`,
//! `url.ParseRequestURI`, govalidator's regular expressions and checksums).
//!
//! Not checked: `password` (any string, as upstream) and `quantity` (listed by newer apiextensions
//! releases only; accepted here rather than refusing what a 1.33 server accepts).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

/// Whether `value` is valid for `format`; `None` when the format is not one upstream checks.
pub fn check(format: &str, value: &str) -> Option<bool> {
    let normalized = format.replace('-', "");
    let ok = match normalized.as_str() {
        "bsonobjectid" => value.len() == 24 && value.bytes().all(|b| b.is_ascii_hexdigit()),
        "uri" => is_request_uri(value),
        "email" => is_email(value),
        "hostname" => is_hostname(value),
        "ipv4" => value.parse::<IpAddr>().is_ok() && value.contains('.'),
        "ipv6" => value.parse::<IpAddr>().is_ok() && value.contains(':'),
        "cidr" => is_cidr(value),
        "mac" => is_mac(value),
        "uuid" => UUID.is_match(value),
        "uuid3" => UUID3.is_match(value),
        "uuid4" => UUID4.is_match(value),
        "uuid5" => UUID5.is_match(value),
        "isbn" => is_isbn10(value) || is_isbn13(value),
        "isbn10" => is_isbn10(value),
        "isbn13" => is_isbn13(value),
        "creditcard" => is_credit_card(value),
        "ssn" => value.len() == 11 && SSN.is_match(value),
        "hexcolor" => HEX_COLOR.is_match(value),
        "rgbcolor" => RGB_COLOR.is_match(value),
        "byte" => BASE64.is_match(value),
        "password" => true,
        "date" => is_date(value),
        "datetime" => is_date_time(value),
        "duration" => is_duration(value),
        _ => return None,
    };
    Some(ok)
}

fn regex(p: &str) -> Regex {
    // The patterns are constants of this file, tested below; a typo is a bug caught by the tests.
    Regex::new(p).unwrap_or_else(|e| panic!("format pattern {p}: {e}"))
}

static UUID: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
});
static UUID3: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
});
static UUID4: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static UUID5: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static SSN: LazyLock<Regex> = LazyLock::new(|| regex(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"));
static HEX_COLOR: LazyLock<Regex> = LazyLock::new(|| regex(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGB_COLOR: LazyLock<Regex> = LazyLock::new(|| {
    let c = r"\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*";
    regex(&format!(r"^rgb\({c},{c},{c}\)$"))
});
static BASE64: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$")
});
/// kube-openapi's `HostnamePattern` (RFC 1034 labels, letters and symbols of any script).
static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
    let c = r"a-zA-Z0-9\p{S}\p{L}";
    regex(&format!(
        r"^([{c}]((-?[{c}]{{0,62}})?)|([{c}](([{c}-]{{0,61}}[{c}])?)(\.)){{1,}}([{c}])(-?[{c}]){{1,62}})$"
    ))
});
static CREDIT_CARD: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11})$",
    )
});
/// An RFC 5322 dot-atom, the form `net/mail` accepts for both halves of an address.
static DOT_ATOM: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
});
static GO_DURATION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^[-+]?(0|((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$"));
static LOOSE_DURATION: LazyLock<Regex> = LazyLock::new(|| regex(r"(\d+)\s*([A-Za-zµ]+)"));
static TIME_OF_DAY: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(z|[+-][0-9]{2}:[0-9]{2})$")
});

/// Go's `url.ParseRequestURI`: an absolute URI (`scheme:...`) or an absolute path; no control
/// characters; an authority's host without spaces.
fn is_request_uri(s: &str) -> bool {
    if s.is_empty() || s.chars().any(|c| c.is_control()) {
        return false;
    }
    if s.starts_with('/') {
        return true;
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return false;
    }
    match rest.strip_prefix("//") {
        Some(authority) => {
            let host = authority.split(['/', '?']).next().unwrap_or("");
            !host.contains(' ')
        }
        None => true,
    }
}

/// Go's `net/mail.ParseAddress`: `local@domain`, optionally as `Name <local@domain>`.
fn is_email(s: &str) -> bool {
    let addr = match (s.rfind('<'), s.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        (None, None) => s.trim(),
        _ => return false,
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let local_ok = DOT_ATOM.is_match(local)
        || (local.len() >= 2 && local.starts_with('"') && local.ends_with('"'));
    let domain_ok = DOT_ATOM.is_match(domain)
        || (domain.starts_with('[') && domain.ends_with(']') && domain.len() > 2);
    local_ok && domain_ok
}

/// strfmt's `IsHostname`: the pattern, at most 255 bytes, labels of at most 63.
fn is_hostname(s: &str) -> bool {
    HOSTNAME.is_match(s) && s.len() <= 255 && s.split('.').all(|l| l.len() <= 63)
}

/// Go's `net.ParseCIDR`: an address, a slash and a prefix length within the address's bits.
fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(bits) = bits.parse::<u32>() else {
        return false;
    };
    if ip.parse::<Ipv4Addr>().is_ok() {
        bits <= 32
    } else {
        ip.parse::<Ipv6Addr>().is_ok() && bits <= 128
    }
}

/// Go's `net.ParseMAC`: 6, 8 or 20 octets as `xx:xx:..`/`xx-xx-..`, or as dotted groups of four
/// hex digits (`xxxx.xxxx.xxxx`).
fn is_mac(s: &str) -> bool {
    let hex = |g: &str, n: usize| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit());
    for sep in [':', '-'] {
        if s.contains(sep) {
            let groups: Vec<&str> = s.split(sep).collect();
            return [6, 8, 20].contains(&groups.len()) && groups.iter().all(|g| hex(g, 2));
        }
    }
    let groups: Vec<&str> = s.split('.').collect();
    [3, 4, 10].contains(&groups.len()) && groups.iter().all(|g| hex(g, 4))
}

/// Digits (and `X`) with spaces and dashes removed, as govalidator sanitizes ISBNs.
fn sanitized(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect()
}

fn is_isbn10(s: &str) -> bool {
    let s = sanitized(s);
    let b = s.as_bytes();
    if b.len() != 10
        || !b[..9].iter().all(u8::is_ascii_digit)
        || !(b[9].is_ascii_digit() || b[9] == b'X')
    {
        return false;
    }
    let sum: u32 = b
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let d = if c == b'X' { 10 } else { u32::from(c - b'0') };
            (i as u32 + 1) * d
        })
        .sum();
    sum.is_multiple_of(11)
}

fn is_isbn13(s: &str) -> bool {
    let s = sanitized(s);
    let b = s.as_bytes();
    if b.len() != 13 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..12]
        .iter()
        .enumerate()
        .map(|(i, &c)| u32::from(c - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    (10 - sum % 10) % 10 == u32::from(b[12] - b'0')
}

/// govalidator's `IsCreditCard`: non-digits dropped, a known issuer's number, the Luhn checksum.
fn is_credit_card(s: &str) -> bool {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if !CREDIT_CARD.is_match(&digits) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// RFC 3339 `full-date` (`2006-01-02`), a real calendar day.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// strfmt's `IsDateTime`: a date, `T` (either case), then `hh:mm:ss[.frac]` and `Z` or an offset.
fn is_date_time(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if parts.next().is_some() || !is_date(date) {
        return false;
    }
    let Some(c) = TIME_OF_DAY.captures(time) else {
        return false;
    };
    let n = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<u32>().ok());
    matches!((n(1), n(2), n(3)), (Some(h), Some(m), Some(s)) if h <= 23 && m <= 59 && s <= 59)
}

/// strfmt's `ParseDuration`: Go's `time.ParseDuration`, else any `<n> <unit>` it finds with a unit
/// spelt as upstream allows (`3 days`, `1 wk`, `2hours`).
fn is_duration(s: &str) -> bool {
    const UNITS: &[&[&str]] = &[
        &["ns", "nano"],
        &["us", "µs", "micro"],
        &["ms", "milli"],
        &["s", "sec"],
        &["m", "min"],
        &["h", "hr", "hour"],
        &["d", "day"],
        &["w", "wk", "week"],
    ];
    if GO_DURATION.is_match(s) {
        return true;
    }
    LOOSE_DURATION.captures_iter(s).any(|c| {
        let unit = c.get(2).map_or("", |m| m.as_str()).to_lowercase();
        UNITS.iter().any(|variants| {
            let last = variants.len() - 1;
            variants
                .iter()
                .enumerate()
                .any(|(i, v)| (i == last && unit.starts_with(v)) || unit == *v)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::check;

    fn ok(format: &str, good: &[&str], bad: &[&str]) {
        for v in good {
            assert_eq!(check(format, v), Some(true), "{format}: {v:?} should pass");
        }
        for v in bad {
            assert_eq!(check(format, v), Some(false), "{format}: {v:?} should fail");
        }
    }

    #[test]
    fn formats_as_upstream() {
        ok(
            "email",
            &["a@b.com", "Jo <jo@example.org>", "a.b+c@d"],
            &["foo", "a@", "@b", "a b@c"],
        );
        ok(
            "hostname",
            &[
                "example.com",
                "a",
                "xn--80ak6aa92e.com",
                "my-host.example.com",
            ],
            &["-a", "a_b", "a..b"],
        );
        ok("ipv4", &["10.0.0.1"], &["10.0.0", "::1", "1.2.3.256"]);
        ok("ipv6", &["::1", "fe80::1"], &["10.0.0.1", "zz::"]);
        ok(
            "cidr",
            &["10.0.0.0/8", "fd00::/64"],
            &["10.0.0.0", "10.0.0.0/33", "x/8"],
        );
        ok(
            "mac",
            &["00:00:5e:00:53:01", "00-00-5e-00-53-01", "0000.5e00.5301"],
            &["00:00:5e", "zz:00:5e:00:53:01"],
        );
        ok(
            "uuid",
            &[
                "123e4567-e89b-12d3-a456-426614174000",
                "123E4567E89B12D3A456426614174000",
            ],
            &["123"],
        );
        ok(
            "uuid4",
            &["123e4567-e89b-42d3-a456-426614174000"],
            &["123e4567-e89b-12d3-a456-426614174000"],
        );
        ok(
            "isbn",
            &["0321751043", "978-0321751041"],
            &["0321751044", "9780321751042"],
        );
        ok(
            "creditcard",
            &["4111 1111 1111 1111", "4111-1111-1111-1111"],
            &["4111 1111 1111 1112", "1234"],
        );
        ok(
            "ssn",
            &["111-11-1111", "111 11 1111"],
            &["111111111", "11-111-1111"],
        );
        ok("hexcolor", &["#fff", "FFFFFF"], &["#ffff", "red"]);
        ok(
            "rgbcolor",
            &["rgb(255, 255, 0)"],
            &["rgb(256,0,0)", "rgb(1,2)"],
        );
        ok("byte", &["aGVsbG8=", "YWJj"], &["aGVsbG8", "!!!!", ""]);
        ok(
            "date",
            &["2024-02-29"],
            &["2023-02-29", "2024-2-1", "24-01-01"],
        );
        ok(
            "date-time",
            &["2014-12-15T19:30:20.000Z", "2014-12-15t19:30:20+01:00"],
            &["2014-12-15", "2014-12-15T25:00:00Z", "2014-12-15T19:30:20"],
        );
        ok("datetime", &["2014-12-15T19:30:20Z"], &["yesterday"]);
        ok(
            "duration",
            &["1h30m", "22 ns", "3 days", "1.5s", "0"],
            &["forever", "h1"],
        );
        ok(
            "uri",
            &["https://example.com/x", "/abs/path", "mailto:a@b"],
            &["relative/path", "http://a b.com/", ""],
        );
        ok(
            "bsonobjectid",
            &["507f1f77bcf86cd799439011"],
            &["507f1f77bcf86cd79943901z"],
        );
        ok("password", &["anything at all"], &[]);
        assert_eq!(check("int32", "1"), None);
        assert_eq!(check("k8s-short-name", "x"), None);
        assert_eq!(check("made-up", "x"), None);
    }
}
