//! Go's JSON syntax errors, word for word, for bodies that are not JSON.
//!
//! Why: upstream's decoder is Go's `encoding/json`, whose scanner names the first offending byte and
//! what it expected there (`invalid character 'a' looking for beginning of value`, `unexpected end of
//! JSON input`). Clients and scripts match on that text (upstream's own kubectl tests do), and
//! serde's wording (`expected value at line 1 column 1`) is not it. This is the scanner's state
//! machine (encoding/json/scanner.go) reduced to what finds the error; it runs only once serde has
//! already refused a body, so it costs nothing on the good path.

/// What the scanner is inside of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parse {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    BeginValueOrEmpty,
    BeginValue,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    /// Inside `\u`, with this many hex digits read.
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// Inside a literal: the literal and how many of its bytes were read.
    Literal(&'static str, usize),
}

/// Go's `quoteChar`: how the scanner shows an offending byte.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        _ => {
            // strconv.Quote(string(rune(c))) without its quotes.
            let r = char::from(c);
            let shown = match r {
                '\x07' => r"\a".to_string(),
                '\x08' => r"\b".to_string(),
                '\x0c' => r"\f".to_string(),
                '\n' => r"\n".to_string(),
                '\r' => r"\r".to_string(),
                '\t' => r"\t".to_string(),
                '\x0b' => r"\v".to_string(),
                '\\' => r"\\".to_string(),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => format!(r"\x{:02x}", c as u32),
                c if (0x80..0xa1).contains(&(c as u32)) || c as u32 == 0xad => {
                    format!(r"\u{:04x}", c as u32)
                }
                c => c.to_string(),
            };
            format!("'{shown}'")
        }
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn invalid(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

/// Go's `json.Unmarshal` syntax error for `data`, or None when Go's scanner finds the text valid
/// (serde may still refuse it, e.g. for invalid UTF-8, which Go replaces).
pub fn syntax_error(data: &[u8]) -> Option<String> {
    let mut stack: Vec<Parse> = Vec::new();
    let mut step = Step::BeginValue;
    let mut end_top = false;
    for &c in data {
        step = match advance(step, c, &mut stack, &mut end_top) {
            Ok(s) => s,
            Err(e) => return Some(e),
        };
    }
    if end_top {
        return None;
    }
    // Go's `eof`: one more step over a space, which completes a number at the very end (and makes
    // a half-read literal an error of its own).
    match advance(step, b' ', &mut stack, &mut end_top) {
        Ok(_) if end_top => None,
        Err(e) => Some(e),
        Ok(_) => Some("unexpected end of JSON input".to_string()),
    }
}

fn advance(step: Step, c: u8, stack: &mut Vec<Parse>, end_top: &mut bool) -> Result<Step, String> {
    use Step::*;
    Ok(match step {
        BeginValueOrEmpty if is_space(c) => BeginValueOrEmpty,
        BeginValueOrEmpty if c == b']' => return advance(EndValue, c, stack, end_top),
        BeginValueOrEmpty => return advance(BeginValue, c, stack, end_top),
        BeginValue => match c {
            c if is_space(c) => BeginValue,
            b'{' => {
                stack.push(Parse::ObjectKey);
                BeginStringOrEmpty
            }
            b'[' => {
                stack.push(Parse::ArrayValue);
                BeginValueOrEmpty
            }
            b'"' => InString,
            b'-' => Neg,
            b'0' => Zero,
            b'1'..=b'9' => One,
            b't' => Literal("true", 1),
            b'f' => Literal("false", 1),
            b'n' => Literal("null", 1),
            _ => return Err(invalid(c, "looking for beginning of value")),
        },
        BeginStringOrEmpty if is_space(c) => BeginStringOrEmpty,
        BeginStringOrEmpty if c == b'}' => {
            if let Some(top) = stack.last_mut() {
                *top = Parse::ObjectValue;
            }
            return advance(EndValue, c, stack, end_top);
        }
        BeginStringOrEmpty => return advance(BeginString, c, stack, end_top),
        BeginString => match c {
            c if is_space(c) => BeginString,
            b'"' => InString,
            _ => return Err(invalid(c, "looking for beginning of object key string")),
        },
        EndValue => {
            let Some(&top) = stack.last() else {
                *end_top = true;
                return advance(EndTop, c, stack, end_top);
            };
            if is_space(c) {
                return Ok(EndValue);
            }
            match (top, c) {
                (Parse::ObjectKey, b':') => {
                    if let Some(t) = stack.last_mut() {
                        *t = Parse::ObjectValue;
                    }
                    BeginValue
                }
                (Parse::ObjectKey, _) => return Err(invalid(c, "after object key")),
                (Parse::ObjectValue, b',') => {
                    if let Some(t) = stack.last_mut() {
                        *t = Parse::ObjectKey;
                    }
                    BeginString
                }
                (Parse::ObjectValue, b'}') | (Parse::ArrayValue, b']') => {
                    stack.pop();
                    if stack.is_empty() {
                        *end_top = true;
                        EndTop
                    } else {
                        EndValue
                    }
                }
                (Parse::ObjectValue, _) => return Err(invalid(c, "after object key:value pair")),
                (Parse::ArrayValue, b',') => BeginValue,
                (Parse::ArrayValue, _) => return Err(invalid(c, "after array element")),
            }
        }
        EndTop if is_space(c) => EndTop,
        EndTop => return Err(invalid(c, "after top-level value")),
        InString => match c {
            b'"' => EndValue,
            b'\\' => InStringEsc,
            c if c < 0x20 => return Err(invalid(c, "in string literal")),
            _ => InString,
        },
        InStringEsc => match c {
            b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => InString,
            b'u' => InStringEscU(0),
            _ => return Err(invalid(c, "in string escape code")),
        },
        InStringEscU(n) if c.is_ascii_hexdigit() => {
            if n == 3 {
                InString
            } else {
                InStringEscU(n + 1)
            }
        }
        InStringEscU(_) => return Err(invalid(c, "in \\u hexadecimal character escape")),
        Neg => match c {
            b'0' => Zero,
            b'1'..=b'9' => One,
            _ => return Err(invalid(c, "in numeric literal")),
        },
        One if c.is_ascii_digit() => One,
        One | Zero => match c {
            b'.' => Dot,
            b'e' | b'E' => E,
            _ => return advance(EndValue, c, stack, end_top),
        },
        Dot if c.is_ascii_digit() => Dot0,
        Dot => return Err(invalid(c, "after decimal point in numeric literal")),
        Dot0 => match c {
            c if c.is_ascii_digit() => Dot0,
            b'e' | b'E' => E,
            _ => return advance(EndValue, c, stack, end_top),
        },
        E if c == b'+' || c == b'-' => ESign,
        E | ESign if c.is_ascii_digit() => E0,
        E | ESign => return Err(invalid(c, "in exponent of numeric literal")),
        E0 if c.is_ascii_digit() => E0,
        E0 => return advance(EndValue, c, stack, end_top),
        Literal(word, i) => {
            let want = word.as_bytes()[i];
            if c != want {
                return Err(invalid(
                    c,
                    &format!("in literal {word} (expecting {})", quote_char(want)),
                ));
            }
            if i + 1 == word.len() {
                EndValue
            } else {
                Literal(word, i + 1)
            }
        }
    })
}

/// Upstream's `summarizeData(body, 30)`: how a refused body is quoted in a decode error (the text if
/// it looks like a JSON object, else hex), cut at 30 bytes.
pub fn summarize(data: &[u8]) -> String {
    const MAX: usize = 30;
    let (head, more) = if data.len() > MAX {
        (&data[..MAX], " ...")
    } else {
        (data, "")
    };
    match data.first() {
        None => "<empty>".to_string(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(head)),
        Some(_) => {
            let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}{more}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> Option<String> {
        syntax_error(s.as_bytes())
    }

    #[test]
    fn go_scanner_messages() {
        for (body, want) in [
            (
                "apiVersion: v1\nkind: Pod",
                "invalid character 'a' looking for beginning of value",
            ),
            ("", "unexpected end of JSON input"),
            ("{\"a\":1", "unexpected end of JSON input"),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            (
                "{\"a\":1 \"b\"}",
                "invalid character '\"' after object key:value pair",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            (
                "{1:2}",
                "invalid character '1' looking for beginning of object key string",
            ),
            ("{} x", "invalid character 'x' after top-level value"),
            ("\"a\nb\"", "invalid character '\\n' in string literal"),
            ("\"\\q\"", "invalid character 'q' in string escape code"),
            (
                "\"\\u12g4\"",
                "invalid character 'g' in \\u hexadecimal character escape",
            ),
            ("-x", "invalid character 'x' in numeric literal"),
            (
                "1.x",
                "invalid character 'x' after decimal point in numeric literal",
            ),
            // At the end Go's scanner steps once more over a space, which a half-read literal or
            // number refuses.
            (
                "1e+",
                "invalid character ' ' in exponent of numeric literal",
            ),
            (
                "1ex",
                "invalid character 'x' in exponent of numeric literal",
            ),
            (
                "tru",
                "invalid character ' ' in literal true (expecting 'e')",
            ),
            ("\"abc", "unexpected end of JSON input"),
            (
                "trux",
                "invalid character 'x' in literal true (expecting 'e')",
            ),
            (
                "nul1",
                "invalid character '1' in literal null (expecting 'l')",
            ),
            (
                "{'a':1}",
                "invalid character '\\'' looking for beginning of object key string",
            ),
        ] {
            assert_eq!(err(body).as_deref(), Some(want), "{body:?}");
        }
        for ok in [
            "{}",
            "[]",
            " 12 ",
            "{\"a\":[1,2.5e3,true,null,\"\\u00e9\"]}",
            "0",
        ] {
            assert_eq!(err(ok), None, "{ok:?}");
        }
    }

    #[test]
    fn summaries_as_upstream() {
        assert_eq!(summarize(b""), "<empty>");
        assert_eq!(summarize(b"{\"a\":1}"), "{\"a\":1}");
        assert_eq!(
            summarize(b"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"x\":1}"),
            "{\"apiVersion\":\"v1\",\"kind\":\"Pod ..."
        );
        assert_eq!(summarize(b"ab"), "6162");
    }
}
