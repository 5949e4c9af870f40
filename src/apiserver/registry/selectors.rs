//! Label and field selectors, parsed and matched the way upstream's apimachinery does it.
//!
//! * [`LabelSelector`] ports `k8s.io/apimachinery/pkg/labels.Parse`: the same lexer (whitespace
//!   tolerant, `in`/`notin` keywords only in operator position), the same grammar (`a=b`, `a==b`,
//!   `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, and the numeric `a>1` / `a<1`), the same
//!   key/value validation and the same error texts (`unable to parse requirement: ...`).
//! * [`FieldSelector`] ports `k8s.io/apimachinery/pkg/fields.ParseSelector`: comma-separated
//!   `f=v`, `f==v`, `f!=v` terms, backslash escapes (`\,`, `\=`, `\\`) in values, no whitespace
//!   trimming. Matching reads the field from the JSON object by dotted path (see
//!   [`FieldSelector::matches`] for the value rules and the per-kind special cases).

use serde_json::{Map, Value};
use std::fmt;

// ---------------------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------------------

/// A label requirement's operator (upstream's `selection.Operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `a=b`
    Equals,
    /// `a==b`
    DoubleEquals,
    /// `a!=b` (also matches objects without the label)
    NotEquals,
    /// `a in (x,y)`
    In,
    /// `a notin (x,y)` (also matches objects without the label)
    NotIn,
    /// `a`
    Exists,
    /// `!a`
    DoesNotExist,
    /// `a>1` (integer comparison; objects whose value is not an integer do not match)
    GreaterThan,
    /// `a<1`
    LessThan,
}

/// One term of a label selector. Values are sorted and deduplicated, as upstream's parser leaves them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether the labels satisfy this requirement (upstream's `Requirement.Matches`).
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels
            .and_then(|l| l.get(&self.key))
            .map(|v| v.as_str().unwrap_or(""));
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => value.is_some_and(has),
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(has),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(actual)) = value.map(str::parse::<i64>) else {
                    return false;
                };
                let [wanted] = self.values.as_slice() else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Upstream's `Requirement.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        f.write_str(&self.values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its requirements, sorted by key. The empty selector matches
/// everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a selector string as upstream's `labels.Parse` does, with its error messages.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parser = Parser {
            items: lex_all(s),
            position: 0,
        };
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Whether the labels (an object's `metadata.labels`, absent = no labels) satisfy every requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when the selector does not restrict anything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl fmt::Display for LabelSelector {
    /// Upstream's canonical form: requirements joined by ",".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn string_to_token(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(ch: u8) -> bool {
    matches!(ch, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Upstream's byte lexer. Tokens only ever split at ASCII bytes, so every slice is valid UTF-8.
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    /// The next byte, 0 at the end (as upstream, a NUL byte also ends the input).
    fn read(&mut self) -> u8 {
        match self.s.as_bytes().get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn slice(&self, from: usize, to: usize) -> String {
        self.s.get(from..to).unwrap_or_default().to_string()
    }

    fn scan_id_or_keyword(&mut self) -> (Tok, String) {
        let start = self.pos;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special_symbol(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
        }
        let s = self.slice(start, self.pos);
        match string_to_token(&s) {
            Some(t) => (t, s),
            None => (Tok::Identifier, s),
        }
    }

    fn scan_special_symbol(&mut self) -> (Tok, String) {
        let start = self.pos;
        let mut last: Option<(Tok, usize)> = None;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if !is_special_symbol(ch) {
                self.unread();
                break;
            }
            match string_to_token(&self.slice(start, self.pos)) {
                Some(t) => last = Some((t, self.pos)),
                None if last.is_some() => {
                    self.unread();
                    break;
                }
                None => {}
            }
        }
        match last {
            Some((t, end)) => (t, self.slice(start, end)),
            None => (
                Tok::Error,
                format!(
                    "error expected: keyword found '{}'",
                    self.slice(start, self.pos)
                ),
            ),
        }
    }

    fn lex(&mut self) -> (Tok, String) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Tok::EndOfString, String::new());
        }
        self.unread();
        if is_special_symbol(ch) {
            self.scan_special_symbol()
        } else {
            self.scan_id_or_keyword()
        }
    }
}

fn lex_all(s: &str) -> Vec<(Tok, String)> {
    let mut lexer = Lexer { s, pos: 0 };
    let mut items = Vec::new();
    loop {
        let (tok, lit) = lexer.lex();
        items.push((tok, lit));
        if tok == Tok::EndOfString {
            return items;
        }
    }
}

/// In the `Values` context the keywords `in` and `notin` are plain identifiers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Tok, String)>,
    position: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn lookahead(&self, ctx: Context) -> (Tok, String) {
        let (tok, lit) = self
            .items
            .get(self.position)
            .cloned()
            .unwrap_or((Tok::EndOfString, String::new()));
        match tok {
            Tok::In | Tok::NotIn if ctx == Context::Values => (Tok::Identifier, lit),
            _ => (tok, lit),
        }
    }

    fn consume(&mut self, ctx: Context) -> (Tok, String) {
        let item = self.lookahead(ctx);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Tok::EndOfString => return Ok(requirements),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return new_requirement(key, op, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(key, operator, values)
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut operator = None;
        let (mut tok, mut literal) = self.consume(Context::Values);
        if tok == Tok::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, literal) = self.consume(Context::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        if let Some(detail) = label_key_errors(&literal) {
            return Err(invalid("<nil>", &literal, &detail));
        }
        let (t, _) = self.lookahead(Context::Values);
        if (t == Tok::EndOfString || t == Tok::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: {BINARY_OPERATORS}")),
        })
    }

    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let values = self.parse_identifiers_list()?;
                let (tok, _) = self.consume(Context::Values);
                if tok != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(values)
            }
            Tok::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        fn insert(set: &mut Vec<String>, v: String) {
            if !set.contains(&v) {
                set.push(v);
            }
        }
        let mut set: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Tok::Identifier => {
                    insert(&mut set, lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => break,
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        insert(&mut set, String::new());
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Tok::ClosedPar {
                        insert(&mut set, String::new());
                        break;
                    }
                    if tok2 == Tok::Comma {
                        insert(&mut set, String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
        set.sort();
        Ok(set)
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Tok::EndOfString || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Tok::Identifier {
            return Ok(vec![lit]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

/// Upstream's `NewRequirement` checks, for the operators the parser can produce. The key was already
/// validated by the parser.
fn new_requirement(
    key: String,
    operator: Operator,
    values: Vec<String>,
) -> Result<Requirement, String> {
    let mut errs: Vec<String> = Vec::new();
    match operator {
        Operator::In | Operator::NotIn if values.is_empty() => errs.push(format!(
            "values: Invalid value: {values:?}: for 'in', 'notin' operators, values set can't be empty"
        )),
        Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
            errs.push(format!(
                "values: Invalid value: {values:?}: exact-match compatibility requires one single value"
            ))
        }
        Operator::GreaterThan | Operator::LessThan => {
            if values.len() != 1 {
                errs.push(format!(
                    "values: Invalid value: {values:?}: for 'Gt', 'Lt' operators, exactly one value is required"
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(invalid(
                        &format!("values[{i}]"),
                        v,
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        if let Some(detail) = label_value_errors(v) {
            errs.push(invalid(&format!("values[{i}][{key}]"), v, &detail));
        }
    }
    match errs.len() {
        0 => Ok(Requirement {
            key,
            operator,
            values,
        }),
        1 => Err(errs.remove(0)),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

/// A `field.Invalid(...).Error()` text.
fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {value:?}: {detail}")
}

// Upstream's validation messages (k8s.io/apimachinery/pkg/util/validation).

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// A DNS-1123 subdomain (without the length check).
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        match (b.first(), b.last()) {
            (Some(f), Some(l)) => edge(f) && edge(l) && b.iter().all(|c| edge(c) || *c == b'-'),
            _ => false,
        }
    })
}

/// Upstream's `IsQualifiedName` messages joined by "; ", or None when the key is valid.
fn label_key_errors(key: &str) -> Option<String> {
    let mut errs: Vec<String> = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errs.push("prefix part must be no more than 253 characters".to_string());
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, &["example.com"])
                    ));
                }
            }
            *name
        }
        _ => {
            return Some(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ))
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    (!errs.is_empty()).then(|| errs.join("; "))
}

/// Upstream's `IsValidLabelValue` messages joined by "; ", or None when the value is valid.
fn label_value_errors(value: &str) -> Option<String> {
    let mut errs: Vec<String> = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    (!errs.is_empty()).then(|| errs.join("; "))
}

// ---------------------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------------------

/// One `field=value` (or `field!=value`) term, with the value unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    /// True for `!=`.
    pub not_equal: bool,
}

/// A parsed field selector: the AND of its terms, sorted as upstream sorts them (by the raw term
/// text). The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses a selector string as upstream's `fields.ParseSelector` does, with its error messages.
    /// Whitespace is not trimmed (upstream does not either: `a = b` selects field `a `).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            terms.push(FieldTerm {
                field: lhs.to_string(),
                value: unescape_value(rhs)?,
                not_equal: op == "!=",
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Checks every field is `metadata.name`, `metadata.namespace` or one of `allowed` (a kind's
    /// [`field_selectors`](crate::apiserver::catalog::ResourceInfo::field_selectors)). The error text is
    /// upstream's: kinds with their own field labels (non-empty `allowed`) answer
    /// `field label not supported: X`; kinds with only the metadata fields answer with the default
    /// conversion's `"X" is not a known field selector: only "metadata.name", "metadata.namespace"`.
    pub fn validate(&self, allowed: &[String]) -> Result<(), String> {
        for t in &self.terms {
            let f = t.field.as_str();
            if f == "metadata.name" || f == "metadata.namespace" || allowed.iter().any(|a| a == f) {
                continue;
            }
            return Err(if allowed.is_empty() {
                format!(
                    "{f:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                )
            } else {
                format!("field label not supported: {f}")
            });
        }
        Ok(())
    }

    /// Whether the object satisfies every term.
    ///
    /// A field's value is read by dotted path: strings as they are, booleans as "true"/"false",
    /// numbers in decimal, and missing fields, nulls, objects and arrays as "" (as upstream's field
    /// sets, where an unknown field reads as ""). Special cases mirror upstream's selectable-field
    /// functions, keyed on the object's `apiVersion`/`kind`:
    /// * v1 Pod: `spec.hostNetwork` defaults to "false"; `status.podIP` is `status.podIPs[0].ip`
    ///   (falling back to `status.podIP`); `status.podIPs` is accepted upstream but never set in its
    ///   field set, so it always reads ""; `spec.host` (old clients) reads `spec.nodeName`.
    /// * v1 Node: `spec.unschedulable` defaults to "false".
    /// * v1 ReplicationController: `status.replicas` defaults to "0".
    /// * batch/v1 Job: `status.successful` is `status.succeeded`, defaulting to "0".
    /// * v1 Event: `source` is `source.component`, falling back to `reportingComponent`.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms
            .iter()
            .all(|t| (field_value(obj, &t.field) == t.value) != t.not_equal)
    }

    /// True when the selector does not restrict anything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The name when the selector is exactly `metadata.name=X` (or `==`).
    pub fn exact_name(&self) -> Option<&str> {
        match self.terms.as_slice() {
            [t] if t.field == "metadata.name" && !t.not_equal => Some(&t.value),
            _ => None,
        }
    }

    /// Upstream's `RequiresExactMatch`: the value of the first `field=X` term for `field`, even when
    /// other terms are present.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.not_equal)
            .map(|t| t.value.as_str())
    }

    /// The terms, in upstream's order.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }
}

impl fmt::Display for FieldSelector {
    /// Upstream's canonical form: `field=value` / `field!=value` joined by ",", values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if t.not_equal { "!=" } else { "=" };
            write!(f, "{}{}{}", t.field, op, escape_value(&t.value))?;
        }
        Ok(())
    }
}

/// Splits at commas not preceded by a backslash; escapes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits at the first operator (`!=`, `==`, `=`, checked in that order at each position).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], op, rhs));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    ))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Upstream formats the rune with %v, i.e. as its code point number.
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ))
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The value at a dotted path (`spec.nodeName`), if every step is there.
pub fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, part| v.get(part))
}

fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The paths [`field_value`] reads for `field` (what the watch cache's views keep of an object).
pub fn field_sources(field: &str) -> Vec<&str> {
    match field {
        "spec.host" => vec!["spec.nodeName"],
        "status.podIP" => vec!["status.podIPs", "status.podIP"],
        "status.successful" => vec!["status.succeeded"],
        "source" => vec!["source.component", "reportingComponent"],
        f => vec![f],
    }
}

/// The string a field selector compares against (see [`FieldSelector::matches`]).
fn field_value(obj: &Value, field: &str) -> String {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let get = |path: &str| scalar(lookup(obj, path));
    let special = match (api_version, kind, field) {
        ("v1", "Pod", "spec.host") => Some(get("spec.nodeName")),
        ("v1", "Pod", "spec.hostNetwork") => Some(get(field).or(Some("false".into()))),
        ("v1", "Pod", "status.podIP") => Some(
            lookup(obj, "status.podIPs")
                .and_then(|ips| ips.get(0))
                .and_then(|ip| scalar(ip.get("ip")))
                .or_else(|| get("status.podIP")),
        ),
        ("v1", "Pod", "status.podIPs") => Some(None),
        ("v1", "Node", "spec.unschedulable") => Some(get(field).or(Some("false".into()))),
        ("v1", "ReplicationController", "status.replicas") => Some(get(field).or(Some("0".into()))),
        ("batch/v1", "Job", "status.successful") => {
            Some(get("status.succeeded").or(Some("0".into())))
        }
        ("v1", "Event", "source") => Some(
            get("source.component")
                .filter(|s| !s.is_empty())
                .or_else(|| get("reportingComponent")),
        ),
        _ => None,
    };
    special.unwrap_or_else(|| get(field)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(v) => panic!("{s} parsed as {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn label_empty() {
        let s = sel("");
        assert!(s.is_empty());
        assert!(s.matches(None));
        assert!(sel("  ").is_empty());
    }

    #[test]
    fn label_equality() {
        let l = labels(json!({"app": "web", "tier": "fe"}));
        for s in [
            "app=web",
            "app==web",
            " app = web ",
            "app=web,tier=fe",
            "app=web, tier==fe",
        ] {
            assert!(sel(s).matches(Some(&l)), "{s}");
        }
        assert!(!sel("app=db").matches(Some(&l)));
        assert!(!sel("app=web,tier=be").matches(Some(&l)));
        assert!(!sel("app=web").matches(None));
        // a= means the empty value.
        assert!(sel("x=").matches(Some(&labels(json!({"x": ""})))));
        assert!(!sel("x=").matches(Some(&l)));
    }

    #[test]
    fn label_not_equals() {
        let l = labels(json!({"app": "web"}));
        assert!(sel("app!=db").matches(Some(&l)));
        assert!(!sel("app!=web").matches(Some(&l)));
        assert!(sel("other!=x").matches(Some(&l)));
        assert!(sel("app!=web").matches(None));
    }

    #[test]
    fn label_set_based() {
        let l = labels(json!({"env": "prod"}));
        assert!(sel("env in (prod, qa)").matches(Some(&l)));
        assert!(sel("env in(prod)").matches(Some(&l)));
        assert!(!sel("env in (qa,dev)").matches(Some(&l)));
        assert!(!sel("missing in (x)").matches(Some(&l)));
        assert!(sel("env notin (qa,dev)").matches(Some(&l)));
        assert!(!sel("env notin (prod)").matches(Some(&l)));
        assert!(sel("missing notin (x)").matches(Some(&l)));
        let s = sel("x in (b,a,,b)");
        assert_eq!(s.requirements()[0].values, vec!["", "a", "b"]);
        assert_eq!(sel("x in ()").requirements()[0].values, vec![""]);
        // in/notin are plain identifiers in key and value position.
        let s = sel("in in (notin)");
        assert_eq!(s.requirements()[0].key, "in");
        assert!(s.matches(Some(&labels(json!({"in": "notin"})))));
    }

    #[test]
    fn label_exists() {
        let l = labels(json!({"app": "web"}));
        assert!(sel("app").matches(Some(&l)));
        assert!(!sel("db").matches(Some(&l)));
        assert!(!sel("!app").matches(Some(&l)));
        assert!(sel("!db").matches(Some(&l)));
        assert!(sel("!db").matches(None));
        assert!(sel("app,!db").matches(Some(&l)));
        assert_eq!(
            sel("! app").requirements()[0].operator,
            Operator::DoesNotExist
        );
    }

    #[test]
    fn label_numeric() {
        let l = labels(json!({"n": "5", "s": "x"}));
        assert!(sel("n>4").matches(Some(&l)));
        assert!(!sel("n>5").matches(Some(&l)));
        assert!(sel("n<6").matches(Some(&l)));
        assert!(!sel("s<6").matches(Some(&l)));
        assert!(!sel("m>1").matches(Some(&l)));
        assert_eq!(
            err("n>x"),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn label_canonical_string() {
        assert_eq!(
            sel("b notin (y,x), a in (q), !c, d, e!=1, f==2, g=3").to_string(),
            "a in (q),b notin (x,y),!c,d,e!=1,f==2,g=3"
        );
    }

    #[test]
    fn label_syntax_errors() {
        assert_eq!(err("x=a,"), "found '', expected: identifier after ','");
        assert_eq!(
            err(",x"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(err("x=a b"), "found 'b', expected: ',' or 'end of string'");
        assert_eq!(
            err("x in a"),
            "unable to parse requirement: found 'a' expected: '('"
        );
        assert_eq!(
            err("x in (a"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            err("x in (a b)"),
            "unable to parse requirement: found 'b', expected: ',' or ')'"
        );
        assert_eq!(
            err("x in (=)"),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            err("x foo"),
            "unable to parse requirement: found 'foo', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            err("x=(a)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(err("!x=a"), "found '=', expected: ',' or 'end of string'");
    }

    #[test]
    fn label_validation_errors() {
        assert_eq!(
            err("-x=a"),
            "unable to parse requirement: <nil>: Invalid value: \"-x\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert_eq!(
            err("x=-a"),
            "unable to parse requirement: values[0][x]: Invalid value: \"-a\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert!(err("Example.com/x").starts_with(
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/x\": prefix part a lowercase RFC 1123 subdomain"
        ));
        assert!(err("a/b/c").contains("a qualified name must consist of"));
        assert!(err("/x").contains("prefix part must be non-empty"));
        assert!(err(&"k".repeat(64)).contains("name part must be no more than 63 characters"));
        assert!(
            err(&format!("x={}", "v".repeat(64))).contains("must be no more than 63 characters")
        );
        assert!(
            sel("example.com/my_key-1.x=My.Value_1").matches(Some(&labels(
                json!({"example.com/my_key-1.x": "My.Value_1"})
            )))
        );
        // Values are sorted before validation, so indexes refer to the sorted set.
        assert!(err("x in (a,b-)").contains("values[1][x]: Invalid value: \"b-\""));
        assert!(err("x in (a,-b)").contains("values[0][x]"));
    }

    fn fsel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn field_operators() {
        let obj =
            json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"n": 3, "b": true}});
        assert!(fsel("metadata.name=a").matches(&obj));
        assert!(fsel("metadata.name==a").matches(&obj));
        assert!(!fsel("metadata.name!=a").matches(&obj));
        assert!(fsel("metadata.name!=b,metadata.namespace=ns").matches(&obj));
        assert!(!fsel("metadata.name=a,metadata.namespace=other").matches(&obj));
        assert!(fsel("spec.n=3,spec.b=true").matches(&obj));
        assert!(fsel("spec.missing=").matches(&obj));
        assert!(fsel("spec=").matches(&obj));
        assert!(fsel("spec.missing!=x").matches(&obj));
        let empty = fsel("");
        assert!(empty.is_empty() && empty.matches(&obj));
        assert!(fsel(",").is_empty());
        // No trimming: the field is "metadata.name ".
        assert!(!fsel("metadata.name =a").matches(&obj));
    }

    #[test]
    fn field_escapes() {
        let obj = json!({"metadata": {"name": "a,b=c\\d"}});
        let s = fsel(r"metadata.name=a\,b\=c\\d");
        assert_eq!(s.exact_name(), Some("a,b=c\\d"));
        assert!(s.matches(&obj));
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err(),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn field_syntax_errors() {
        assert_eq!(
            FieldSelector::parse("a=b,c").unwrap_err(),
            "invalid selector: 'a=b,c'; can't understand 'c'"
        );
        assert_eq!(
            FieldSelector::parse("abc").unwrap_err(),
            "invalid selector: 'abc'; can't understand 'abc'"
        );
    }

    #[test]
    fn field_validate() {
        let allowed = vec!["status.phase".to_string()];
        assert!(
            fsel("metadata.name=a,metadata.namespace=b,status.phase=Running")
                .validate(&allowed)
                .is_ok()
        );
        assert_eq!(
            fsel("spec.foo=x").validate(&allowed).unwrap_err(),
            "field label not supported: spec.foo"
        );
        assert_eq!(
            fsel("spec.foo=x").validate(&[]).unwrap_err(),
            "\"spec.foo\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
    }

    #[test]
    fn field_exact_name() {
        assert_eq!(fsel("metadata.name=x").exact_name(), Some("x"));
        assert_eq!(fsel("metadata.name==x").exact_name(), Some("x"));
        assert_eq!(fsel("metadata.name!=x").exact_name(), None);
        assert_eq!(fsel("metadata.name=x,status.phase=y").exact_name(), None);
        assert_eq!(
            fsel("metadata.name=x,status.phase=y").requires_exact_match("metadata.name"),
            Some("x")
        );
        assert_eq!(fsel("metadata.namespace=x").exact_name(), None);
    }

    #[test]
    fn field_kind_special_cases() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"nodeName": "n1"},
            "status": {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}});
        assert!(fsel("spec.hostNetwork=false").matches(&pod));
        assert!(fsel("spec.host=n1").matches(&pod));
        assert!(fsel("status.podIP=10.0.0.1").matches(&pod));
        assert!(fsel("status.podIPs=").matches(&pod));
        let node = json!({"apiVersion": "v1", "kind": "Node", "spec": {}});
        assert!(fsel("spec.unschedulable=false").matches(&node));
        let rc = json!({"apiVersion": "v1", "kind": "ReplicationController"});
        assert!(fsel("status.replicas=0").matches(&rc));
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"succeeded": 2}});
        assert!(fsel("status.successful=2").matches(&job));
        let ev = json!({"apiVersion": "v1", "kind": "Event", "source": {}, "reportingComponent": "kubelet",
            "involvedObject": {"kind": "Pod", "name": "p"}});
        assert!(fsel("source=kubelet,involvedObject.kind=Pod,involvedObject.name=p").matches(&ev));
        let ev2 = json!({"apiVersion": "v1", "kind": "Event", "source": {"component": "sched"}});
        assert!(fsel("source=sched").matches(&ev2));
    }
}
