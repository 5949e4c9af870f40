//! The Kubernetes CEL extension functions (upstream's `k8s.io/apiserver/pkg/cel/library`) that are
//! cheap to have on top of the `cel` crate: the list library (`isSorted`, `sum`, `min`, `max`,
//! `indexOf`, `lastIndexOf`) and the regex library (`find`, `findAll`). The strings library
//! (`lowerAscii`, `upperAscii`, `split`, `join`, `indexOf`, `replace`, `substring`, `trim`, ...) is the
//! crate's own strings extension, registered with these in [`super`]'s environment.
//!
//! Each function takes the receiver and arguments as the interpreter's values, converts them to
//! [`Value`]s and back: lists here are small (fields of one object), so the copies cost little.

use std::cmp::Ordering;
use std::sync::Arc;

use ::cel::common::types::{DYN_TYPE, INT_TYPE, LIST_TYPE, STRING_TYPE};
use ::cel::common::value::{CowVal, Val};
use ::cel::{DeclarationError, Env, ExecutionError, Value};

/// Declares the functions on `env`.
pub fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload(
        "isSorted",
        "list_is_sorted_bool",
        LIST_TYPE,
        vec![],
        is_sorted,
    )?;
    env.add_member_overload("sum", "list_sum", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list_min", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list_max", LIST_TYPE, vec![], max)?;
    env.add_member_overload(
        "indexOf",
        "list_a_index_of_int",
        LIST_TYPE,
        vec![DYN_TYPE],
        index_of,
    )?;
    env.add_member_overload(
        "lastIndexOf",
        "list_a_last_index_of_int",
        LIST_TYPE,
        vec![DYN_TYPE],
        last_index_of,
    )?;
    env.add_member_overload(
        "find",
        "string_find_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        find,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_string_int",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all,
    )?;
    Ok(())
}

/// The arguments as values (receiver first).
fn values(args: &[CowVal<'_, '_>]) -> Result<Vec<Value>, ExecutionError> {
    args.iter().map(|a| Value::try_from(a.as_ref())).collect()
}

/// A result handed back to the interpreter.
fn out<'b, 'v>(v: Value) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let boxed: Box<dyn Val> = v.try_into()?;
    Ok(CowVal::from(boxed))
}

/// The receiver list (the overloads are declared on `list`, so anything else is the interpreter's
/// mistake, reported rather than trusted).
fn list_of(function: &str, v: &Value) -> Result<Arc<Vec<Value>>, ExecutionError> {
    match v {
        Value::List(l) => Ok(l.clone()),
        _ => Err(ExecutionError::function_error(
            function,
            "receiver is not a list",
        )),
    }
}

/// CEL's ordering of two values of one comparable type (numbers compare across int, uint and double
/// as in cel-go's heterogeneous comparisons).
fn compare(function: &str, a: &Value, b: &Value) -> Result<Ordering, ExecutionError> {
    let as_f64 = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::UInt(u) => Some(*u as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    };
    let ord = match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::UInt(x), Value::UInt(y)) => Some(x.cmp(y)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Bytes(x), Value::Bytes(y)) => Some(x.cmp(y)),
        (Value::Duration(x), Value::Duration(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(y)),
        _ => match (as_f64(a), as_f64(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    ord.ok_or_else(|| {
        ExecutionError::function_error(
            function,
            format!("cannot compare {} and {}", a.type_of(), b.type_of()),
        )
    })
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = values(&args)?;
    let list = list_of("isSorted", &v[0])?;
    for w in list.windows(2) {
        if compare("isSorted", &w[0], &w[1])? == Ordering::Greater {
            return out(Value::Bool(false));
        }
    }
    out(Value::Bool(true))
}

/// The sum of ints, uints or doubles (an empty list sums to int 0, as upstream).
fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = values(&args)?;
    let list = list_of("sum", &v[0])?;
    let overflow = || ExecutionError::function_error("sum", "integer overflow");
    let mut total = match list.first() {
        None => return out(Value::Int(0)),
        Some(Value::Int(_)) => Value::Int(0),
        Some(Value::UInt(_)) => Value::UInt(0),
        Some(Value::Float(_)) => Value::Float(0.0),
        Some(other) => {
            return Err(ExecutionError::function_error(
                "sum",
                format!("cannot sum {}", other.type_of()),
            ))
        }
    };
    for item in list.iter() {
        total = match (&total, item) {
            (Value::Int(t), Value::Int(i)) => Value::Int(t.checked_add(*i).ok_or_else(overflow)?),
            (Value::UInt(t), Value::UInt(i)) => {
                Value::UInt(t.checked_add(*i).ok_or_else(overflow)?)
            }
            (Value::Float(t), Value::Float(i)) => Value::Float(t + i),
            (_, other) => {
                return Err(ExecutionError::function_error(
                    "sum",
                    format!("cannot sum mixed types ({})", other.type_of()),
                ))
            }
        };
    }
    out(total)
}

fn extreme<'b, 'v>(
    function: &str,
    want: Ordering,
    args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = values(&args)?;
    let list = list_of(function, &v[0])?;
    let Some(mut best) = list.first().cloned() else {
        return Err(ExecutionError::function_error(
            function,
            format!("{function} called on empty list"),
        ));
    };
    for item in list.iter().skip(1) {
        if compare(function, item, &best)? == want {
            best = item.clone();
        }
    }
    out(best)
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme("min", Ordering::Less, args)
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme("max", Ordering::Greater, args)
}

fn position<'b, 'v>(
    function: &str,
    last: bool,
    args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = values(&args)?;
    let list = list_of(function, &v[0])?;
    let want = v.get(1).cloned().unwrap_or(Value::Null);
    let found = if last {
        list.iter().rposition(|i| *i == want)
    } else {
        list.iter().position(|i| *i == want)
    };
    out(Value::Int(found.map_or(-1, |i| i as i64)))
}

fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    position("indexOf", false, args)
}

fn last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    position("lastIndexOf", true, args)
}

fn regex_args(function: &str, v: &[Value]) -> Result<(Arc<String>, regex::Regex), ExecutionError> {
    let (Some(Value::String(s)), Some(Value::String(re))) = (v.first(), v.get(1)) else {
        return Err(ExecutionError::function_error(function, "expected strings"));
    };
    let re = regex::Regex::new(re)
        .map_err(|e| ExecutionError::function_error(function, format!("invalid regex: {e}")))?;
    Ok((s.clone(), re))
}

/// `s.find(re)`: the first match, or `""`.
fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = values(&args)?;
    let (s, re) = regex_args("find", &v)?;
    let m = re.find(&s).map_or("", |m| m.as_str());
    out(Value::String(Arc::new(m.to_string())))
}

/// `s.findAll(re)` and `s.findAll(re, n)`: every match (at most `n` when `n` is not negative).
fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = values(&args)?;
    let (s, re) = regex_args("findAll", &v)?;
    let limit = match v.get(2) {
        Some(Value::Int(n)) if *n >= 0 => usize::try_from(*n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    let found: Vec<Value> = re
        .find_iter(&s)
        .take(limit)
        .map(|m| Value::String(Arc::new(m.as_str().to_string())))
        .collect();
    out(Value::List(Arc::new(found)))
}

#[cfg(test)]
mod tests {
    use super::super::{Activation, Program, Value};

    fn run(expr: &str) -> Value {
        match Program::compile(expr) {
            Ok(p) => p
                .eval(&Activation::new())
                .unwrap_or_else(|e| panic!("{expr}: {e}")),
            Err(e) => panic!("{expr}: {e}"),
        }
    }

    #[test]
    fn lists() {
        assert_eq!(run("[1, 2, 3].isSorted()"), Value::Bool(true));
        assert_eq!(run("['b', 'a'].isSorted()"), Value::Bool(false));
        assert_eq!(run("[1, 2, 3].sum()"), Value::Int(6));
        assert_eq!(run("[1.5, 2.5].sum()"), Value::Float(4.0));
        assert_eq!(run("[].sum()"), Value::Int(0));
        assert_eq!(run("[3, 1, 2].min()"), Value::Int(1));
        assert_eq!(run("[3, 1, 2].max()"), Value::Int(3));
        assert_eq!(run("['a', 'b', 'a'].indexOf('a')"), Value::Int(0));
        assert_eq!(run("['a', 'b', 'a'].lastIndexOf('a')"), Value::Int(2));
        assert_eq!(run("[1].indexOf(5)"), Value::Int(-1));
        // The strings extension's indexOf still answers for strings.
        assert_eq!(run("'abc'.indexOf('c')"), Value::Int(2));
        assert!(Program::compile("[].max()")
            .unwrap()
            .eval(&Activation::new())
            .is_err());
    }

    #[test]
    fn regex() {
        assert_eq!(
            run("'abc 123 def 456'.find('[0-9]+')"),
            Value::String("123".to_string().into())
        );
        assert_eq!(run("size('a1b2c3'.findAll('[0-9]'))"), Value::Int(3));
        assert_eq!(run("size('a1b2c3'.findAll('[0-9]', 2))"), Value::Int(2));
    }
}
