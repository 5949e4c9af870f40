//! Resource quantities (`500m`, `1.5`, `128Mi`, `1e3`) as upstream's `resource.Quantity` parses and
//! prints them.
//!
//! Upstream stores a quantity as a number plus the format it was written in, and always serializes it
//! in canonical form: `1.5` comes back as `1500m`, `1000m` as `1`, `1024Mi` as `1Gi`. Clients compare
//! what they read back, so the server canonicalizes on every write, as upstream's decoding does.

use std::fmt;

use serde_json::Value;

use crate::apiserver::registry::schema::{Shape, TypeRef};

/// How a quantity was written, which decides how it is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, ... (powers of 1024).
    BinarySI,
    /// `m`, `k`, `M`, ... or none (powers of 1000).
    DecimalSI,
    /// `1e3`, `5E-3`.
    DecimalExponent,
}

/// A quantity: `mantissa × 10^exponent`, and its format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exponent: i32,
    format: Format,
}

/// Upstream's error text for a string that is not a quantity.
pub const PARSE_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

const DECIMAL_SUFFIXES: &[(&str, i32)] = &[
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];
const BINARY_SUFFIXES: &[(&str, u32)] = &[
    ("Ki", 10),
    ("Mi", 20),
    ("Gi", 30),
    ("Ti", 40),
    ("Pi", 50),
    ("Ei", 60),
];

impl Quantity {
    /// Parses upstream's quantity syntax: a signed decimal number and an optional suffix.
    /// `n` (bytes, say) in upstream's BinarySI form, as `resource.NewQuantity(n, BinarySI)` prints.
    pub fn binary(n: i64) -> Quantity {
        Quantity {
            mantissa: i128::from(n),
            exponent: 0,
            format: Format::BinarySI,
        }
    }

    /// `n` (a count) in upstream's DecimalSI form, as `resource.NewQuantity(n, DecimalSI)` prints.
    pub fn decimal(n: i64) -> Quantity {
        // Written out and read back: the canonical form (`1000` prints `1k`) is parse's.
        Quantity::parse(&n.to_string()).unwrap_or(Quantity {
            mantissa: i128::from(n),
            exponent: 0,
            format: Format::DecimalSI,
        })
    }

    pub fn parse(s: &str) -> Result<Quantity, String> {
        let err = || PARSE_ERROR.to_string();
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let num_len = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        let (number, suffix) = rest.split_at(num_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
            return Err(err());
        }
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 36 {
            return Err("quantity is too large".into());
        }
        let mut mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| err())?
        };
        let mut exponent = -(frac_part.len() as i32);
        let format = if let Some(&(_, shift)) = BINARY_SUFFIXES.iter().find(|(x, _)| *x == suffix) {
            mantissa = mantissa
                .checked_mul(1i128 << shift)
                .ok_or("quantity is too large")?;
            Format::BinarySI
        } else if let Some(&(_, e)) = DECIMAL_SUFFIXES.iter().find(|(x, _)| *x == suffix) {
            exponent += e;
            Format::DecimalSI
        } else if let Some(e) = suffix.strip_prefix(['e', 'E']) {
            let e: i32 = e.parse().map_err(|_| err())?;
            if !(-1000..=1000).contains(&e) {
                return Err("quantity is too large".into());
            }
            exponent += e;
            Format::DecimalExponent
        } else {
            return Err(err());
        };
        if negative {
            mantissa = -mantissa;
        }
        let q = Quantity {
            mantissa,
            exponent,
            format,
        }
        .normalized();
        // The bound holds for the value, not only the literal exponent: `1e16e1000`-like inputs
        // normalize past it and would print as a quantity that no longer parses (found by fuzzing).
        if !(-1000..=1000).contains(&q.exponent) {
            return Err("quantity is too large".into());
        }
        // Upstream keeps nothing finer than nano: more precise values round up (away from zero).
        Ok(q.round_up(-9))
    }

    /// The quantity rounded up (away from zero) to `10^scale` (e.g. -3 for milli-units).
    pub fn round_up(self, scale: i32) -> Quantity {
        if self.exponent >= scale {
            return self;
        }
        let drop = (scale - self.exponent) as u32;
        let Some(div) = 10i128.checked_pow(drop) else {
            let m = self.mantissa.signum();
            return Quantity {
                mantissa: m,
                exponent: scale,
                ..self
            };
        };
        let mut m = self.mantissa / div;
        if self.mantissa % div != 0 {
            m += self.mantissa.signum();
        }
        Quantity {
            mantissa: m,
            exponent: scale,
            ..self
        }
        .normalized()
    }

    /// Rounds up to milli-units (upstream's resource-list defaulting).
    pub fn round_up_milli(self) -> Quantity {
        self.round_up(-3)
    }

    /// The format it prints in (how it was written).
    pub fn format(&self) -> Format {
        self.format
    }

    /// Zero, printing in `format` once something is added (upstream's zero `Quantity`).
    pub fn zero(format: Format) -> Quantity {
        Quantity {
            mantissa: 0,
            exponent: 0,
            format,
        }
    }

    /// `self + other` (saturating), in `self`'s format unless `self` is zero, when it takes
    /// `other`'s (upstream's `Quantity.Add`: sums print as what was summed was written).
    pub fn plus(self, other: Quantity) -> Quantity {
        let format = if self.is_zero() {
            other.format
        } else {
            self.format
        };
        let exponent = self.exponent.min(other.exponent);
        let scaled = |q: Quantity| {
            10i128
                .checked_pow((q.exponent - exponent) as u32)
                .and_then(|p| q.mantissa.checked_mul(p))
                .unwrap_or(if q.mantissa < 0 { i128::MIN } else { i128::MAX })
        };
        Quantity {
            mantissa: scaled(self).saturating_add(scaled(other)),
            exponent,
            format,
        }
        .normalized()
    }

    /// `-self` (saturating), in `self`'s format.
    pub fn negated(self) -> Quantity {
        Quantity {
            mantissa: self.mantissa.checked_neg().unwrap_or(i128::MAX),
            ..self
        }
    }

    /// Whether the quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The value as a whole number, rounded up (upstream's `Quantity.Value()`), saturating.
    pub fn value(&self) -> i64 {
        let milli = self.milli_value();
        let whole = milli / 1000 + i128::from(milli % 1000 > 0);
        whole.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Whether the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// The value in milli-units (saturating), for comparisons.
    pub fn milli_value(&self) -> i128 {
        let e = self.exponent + 3;
        if e >= 0 {
            10i128
                .checked_pow(e as u32)
                .and_then(|p| self.mantissa.checked_mul(p))
                .unwrap_or(if self.mantissa < 0 {
                    i128::MIN
                } else {
                    i128::MAX
                })
        } else {
            let div = 10i128.checked_pow((-e) as u32).unwrap_or(i128::MAX);
            let q = self.mantissa / div;
            if self.mantissa % div != 0 {
                q + self.mantissa.signum()
            } else {
                q
            }
        }
    }

    /// Trailing zeros of the mantissa moved into the exponent.
    fn normalized(mut self) -> Quantity {
        if self.mantissa == 0 {
            self.exponent = 0;
            return self;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exponent += 1;
        }
        self
    }

    /// The integer value if the quantity is a whole number that fits.
    fn as_integer(&self) -> Option<i128> {
        if self.exponent >= 0 {
            10i128
                .checked_pow(self.exponent as u32)
                .and_then(|p| self.mantissa.checked_mul(p))
        } else {
            None
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut format = self.format;
        if format == Format::BinarySI {
            // Small or fractional binary quantities print as decimal, as upstream does.
            match self.as_integer() {
                Some(v) if v.abs() >= 1024 => {
                    let mut v = v;
                    let mut k = 0;
                    while k < BINARY_SUFFIXES.len() && v % 1024 == 0 {
                        v /= 1024;
                        k += 1;
                    }
                    let suffix = if k == 0 { "" } else { BINARY_SUFFIXES[k - 1].0 };
                    return write!(f, "{v}{suffix}");
                }
                _ => format = Format::DecimalSI,
            }
        }
        // Lower the exponent to a multiple of three, growing the mantissa.
        let mut mantissa = self.mantissa;
        let mut exponent = self.exponent;
        while exponent.rem_euclid(3) != 0 {
            mantissa = mantissa.saturating_mul(10);
            exponent -= 1;
        }
        if mantissa == 0 {
            return f.write_str("0");
        }
        if format == Format::DecimalExponent {
            return if exponent == 0 {
                write!(f, "{mantissa}")
            } else {
                write!(f, "{mantissa}e{exponent}")
            };
        }
        match DECIMAL_SUFFIXES.iter().find(|(_, e)| *e == exponent) {
            Some((suffix, _)) => write!(f, "{mantissa}{suffix}"),
            None if exponent > 18 => {
                // Beyond exa: as many zeros as it takes on the largest suffix.
                let extra = 10i128.checked_pow((exponent - 18) as u32);
                match extra.and_then(|p| mantissa.checked_mul(p)) {
                    Some(m) => write!(f, "{m}E"),
                    None => write!(f, "{mantissa}e{exponent}"),
                }
            }
            None => write!(f, "{mantissa}e{exponent}"),
        }
    }
}

/// The fields that hold quantities (alone or as a resource map): the generated schema table knows
/// them only as strings, so they are named here by their owning type.
const QUANTITY_FIELDS: &[(&str, &[&str])] = &[
    (
        "io.k8s.api.core.v1.ResourceRequirements",
        &["limits", "requests"],
    ),
    (
        "io.k8s.api.core.v1.VolumeResourceRequirements",
        &["limits", "requests"],
    ),
    ("io.k8s.api.core.v1.ResourceQuotaSpec", &["hard"]),
    ("io.k8s.api.core.v1.ResourceQuotaStatus", &["hard", "used"]),
    (
        "io.k8s.api.core.v1.LimitRangeItem",
        &[
            "default",
            "defaultRequest",
            "max",
            "maxLimitRequestRatio",
            "min",
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        &["allocatable", "capacity"],
    ),
    ("io.k8s.api.core.v1.PersistentVolumeSpec", &["capacity"]),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        &["allocatedResources", "capacity"],
    ),
    ("io.k8s.api.core.v1.EmptyDirVolumeSource", &["sizeLimit"]),
    ("io.k8s.api.core.v1.PodSpec", &["overhead"]),
    ("io.k8s.api.core.v1.ResourceFieldSelector", &["divisor"]),
];

/// The first quantity of `v` (of schema type `t`) that does not parse: upstream's decoder rejects the
/// whole body for it (a 400), before any validation.
pub fn first_unparsable(t: TypeRef, v: &Value) -> Option<String> {
    fn bad(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Quantity::parse(s).err(),
            Value::Object(m) => m.values().find_map(bad),
            _ => None,
        }
    }
    fn walk(shape: &Shape, v: &Value) -> Option<String> {
        match (shape, v) {
            (Shape::Object(t), Value::Object(m)) => {
                let quantities = QUANTITY_FIELDS
                    .iter()
                    .find(|(ty, _)| *ty == t.0)
                    .map_or(&[][..], |(_, f)| *f);
                m.iter().find_map(|(k, fv)| {
                    if quantities.contains(&k.as_str()) {
                        bad(fv)
                    } else {
                        t.field(k).and_then(|f| walk(&f.shape, fv))
                    }
                })
            }
            (Shape::List(e), Value::Array(a)) => a.iter().find_map(|x| walk(e, x)),
            (Shape::Map(e), Value::Object(m)) => m.values().find_map(|x| walk(e, x)),
            _ => None,
        }
    }
    walk(&Shape::Object(t), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_print_as_upstream() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        let sum = |a: &str, b: &str| q(a).plus(q(b)).to_string();
        assert_eq!(sum("250m", "500m"), "750m");
        assert_eq!(sum("64Mi", "64Mi"), "128Mi");
        assert_eq!(sum("1", "1500m"), "2500m");
        assert_eq!(
            Quantity::zero(Format::DecimalSI).plus(q("1Gi")).to_string(),
            "1Gi"
        );
        assert_eq!(sum("1Gi", "-1Gi"), "0");
    }

    #[test]
    fn quantity_fields_exist_in_the_schema() {
        for (ty, fields) in QUANTITY_FIELDS {
            for f in *fields {
                assert!(TypeRef(ty).field(f).is_some(), "{ty}.{f}");
            }
        }
    }

    #[test]
    fn finds_bad_quantities_where_the_schema_has_them() {
        let pod = |cpu: &str| serde_json::json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": cpu}}}]}});
        let root = crate::apiserver::registry::schema::root("v1", "Pod");
        let check = |v: &Value| root.and_then(|t| first_unparsable(t, v));
        assert_eq!(check(&pod("abc")).as_deref(), Some(PARSE_ERROR));
        assert_eq!(check(&pod("500m")), None);
        let not_a_quantity = serde_json::json!({"metadata": {"labels": {"cpu": "abc"}}});
        assert_eq!(check(&not_a_quantity), None);
    }

    fn canon(s: &str) -> String {
        Quantity::parse(s)
            .map(|q| q.to_string())
            .unwrap_or_else(|e| e)
    }

    #[test]
    fn canonical_forms_as_upstream() {
        for (input, want) in [
            ("1.5", "1500m"),
            ("1000m", "1"),
            ("0.1", "100m"),
            ("1500", "1500"),
            ("2000", "2k"),
            ("100Mi", "100Mi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("512", "512"),
            ("1Ki", "1Ki"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("12e1", "120"),
            ("0", "0"),
            ("-1.5", "-1500m"),
            ("+2", "2"),
            ("0.0000000001", "1n"),
            ("5G", "5G"),
            ("1.5Gi", "1536Mi"),
        ] {
            assert_eq!(canon(input), want, "{input}");
        }
    }

    #[test]
    fn rejects_what_upstream_rejects() {
        for bad in ["", "abc", "1.2.3", "1Q", "Mi", "1e", "--1", "1 Gi"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rounding_and_comparison() {
        let q = Quantity::parse("0.0001").map(Quantity::round_up_milli);
        assert_eq!(q.map(|q| q.to_string()), Ok("1m".to_string()));
        let a = Quantity::parse("1").map(|q| q.milli_value());
        let b = Quantity::parse("1000m").map(|q| q.milli_value());
        assert_eq!(a, b);
        assert_eq!(
            Quantity::parse("128Mi").map(|q| q.milli_value()),
            Ok(134217728000)
        );
    }

    #[test]
    fn fuzz_found_exponent_past_the_bound() {
        // Parsed, it printed as `100e1014`, which did not parse again.
        assert!(Quantity::parse("10000000000000000e01000").is_err());
        assert!(Quantity::parse("1e1000").is_ok());
    }
}
