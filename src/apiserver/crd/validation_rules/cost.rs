//! The cost estimate of a rule (see the module doc of `validation_rules`, "Cost").

use super::*;

/// What the estimator knows of a value: its kind and largest size.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Shape {
    /// Numbers, booleans, null, and values of unknown type (counted as size 1).
    Scalar,
    /// A string of at most this many characters.
    Str(u64),
    /// A list of at most this many items of that shape.
    List(u64, Box<Shape>),
    /// A map (`additionalProperties`) of at most this many values of that shape, keys of that length.
    Map(u64, u64, Box<Shape>),
    /// An object with these properties.
    Object(BTreeMap<String, Shape>),
}

/// The longest string that fits in a request (upstream's estimate for strings without `maxLength`).
const UNBOUNDED_STRING: u64 = MAX_REQUEST_BYTES - 2;

/// How many items of `min` serialized bytes fit in a request (upstream's
/// `estimateMaxArrayItemsFromMinSize`).
pub(super) fn unbounded_items(min: u64) -> u64 {
    (MAX_REQUEST_BYTES - 2) / (min + 1)
}

/// The fewest bytes a value of `schema` serialises to (upstream's `estimateMinSizeJSON`).
pub(super) fn min_size(schema: &Value) -> u64 {
    match str_of(schema, "type") {
        "string" | "array" | "object" => 2,
        "boolean" => 4,
        _ => 1,
    }
}

impl Shape {
    pub(super) fn of_schema(schema: &Value, resource_root: bool, depth: usize) -> Shape {
        if depth > MAX_DEPTH {
            return Shape::Scalar;
        }
        let mut shape = match str_of(schema, "type") {
            "string" => Shape::Str(
                schema
                    .get("maxLength")
                    .and_then(Value::as_u64)
                    .unwrap_or(UNBOUNDED_STRING),
            ),
            "array" => {
                let items = items_of(schema);
                let max = schema
                    .get("maxItems")
                    .and_then(Value::as_u64)
                    .unwrap_or_else(|| unbounded_items(items.map_or(1, min_size)));
                let elem = items.map_or(Shape::Scalar, |i| Shape::of_schema(i, false, depth + 1));
                Shape::List(max, Box::new(elem))
            }
            "object" => {
                if let Some(a) = additional_of(schema) {
                    let max = schema
                        .get("maxProperties")
                        .and_then(Value::as_u64)
                        .unwrap_or_else(|| (MAX_REQUEST_BYTES - 2) / (min_size(a) + 4));
                    let v = Shape::of_schema(a, false, depth + 1);
                    Shape::Map(max, UNBOUNDED_STRING, Box::new(v))
                } else {
                    Shape::Object(
                        properties_of(schema)
                            .into_iter()
                            .flatten()
                            .map(|(k, s)| (k.clone(), Shape::of_schema(s, false, depth + 1)))
                            .collect(),
                    )
                }
            }
            _ => Shape::Scalar,
        };
        if resource_root {
            if let Shape::Object(props) = &mut shape {
                props.insert("apiVersion".into(), Shape::Str(UNBOUNDED_STRING));
                props.insert("kind".into(), Shape::Str(UNBOUNDED_STRING));
                let meta = BTreeMap::from([
                    ("name".to_string(), Shape::Str(253)),
                    ("generateName".to_string(), Shape::Str(253)),
                ]);
                props.insert("metadata".into(), Shape::Object(meta));
            }
        }
        shape
    }

    /// The shape of an actual value (lists and maps: their largest item).
    pub(super) fn of_value(v: &Value, depth: usize) -> Shape {
        if depth > MAX_DEPTH {
            return Shape::Scalar;
        }
        match v {
            Value::String(s) => Shape::Str(s.chars().count() as u64),
            Value::Array(a) => {
                let elem = a
                    .iter()
                    .map(|x| Shape::of_value(x, depth + 1))
                    .reduce(join)
                    .unwrap_or(Shape::Scalar);
                Shape::List(a.len() as u64, Box::new(elem))
            }
            Value::Object(o) => Shape::Object(
                o.iter()
                    .map(|(k, x)| (k.clone(), Shape::of_value(x, depth + 1)))
                    .collect(),
            ),
            _ => Shape::Scalar,
        }
    }

    /// Its size as the cost model counts it (characters, items, entries).
    fn size(&self) -> u64 {
        match self {
            Shape::Scalar => 1,
            Shape::Str(n) | Shape::List(n, _) | Shape::Map(n, _, _) => *n,
            Shape::Object(p) => p.len() as u64,
        }
    }

    /// A field's (or map value's) shape.
    fn field(&self, name: &str) -> Shape {
        match self {
            Shape::Object(p) => p.get(name).cloned().unwrap_or(Shape::Scalar),
            Shape::Map(_, _, v) => (**v).clone(),
            _ => Shape::Scalar,
        }
    }

    /// An item's shape, and what a comprehension over it binds (items; keys of maps and objects).
    fn element(&self) -> Shape {
        match self {
            Shape::List(_, e) => (**e).clone(),
            Shape::Map(_, k, _) => Shape::Str(*k),
            Shape::Object(p) => Shape::Str(p.keys().map(|k| k.len() as u64).max().unwrap_or(0)),
            _ => Shape::Scalar,
        }
    }
}

/// The larger of two shapes (of the items of one list).
fn join(a: Shape, b: Shape) -> Shape {
    match (a, b) {
        (Shape::Str(x), Shape::Str(y)) => Shape::Str(x.max(y)),
        (Shape::List(x, e), Shape::List(y, f)) => Shape::List(x.max(y), Box::new(join(*e, *f))),
        (Shape::Object(mut p), Shape::Object(q)) => {
            for (k, s) in q {
                let merged = match p.remove(&k) {
                    Some(t) => join(t, s),
                    None => s,
                };
                p.insert(k, merged);
            }
            Shape::Object(p)
        }
        (a, b) => {
            if b.size() > a.size() {
                b
            } else {
                a
            }
        }
    }
}

/// cel-go's traversal cost of a value of `n` characters or items: a tenth, rounded up.
fn traversal(n: u64) -> u64 {
    n.div_ceil(10)
}

/// The estimated worst-case cost of evaluating `e` with `self` and `oldSelf` of these shapes.
pub(super) fn estimate(e: &::cel::IdedExpr, self_shape: &Shape, old_shape: &Shape) -> u64 {
    let mut scope = vec![
        ("self".to_string(), self_shape.clone()),
        ("oldSelf".to_string(), old_shape.clone()),
    ];
    cost(e, &mut scope, 0).0
}

/// The cost and result shape of `e`; `scope` holds the variables' shapes, innermost last.
fn cost(e: &::cel::IdedExpr, scope: &mut Vec<(String, Shape)>, depth: usize) -> (u64, Shape) {
    use ::cel::common::ast::{EntryExpr, Expr, LiteralValue};
    if depth > 4 * MAX_DEPTH {
        return (u64::MAX, Shape::Scalar);
    }
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => (0, Shape::Str(s.inner().len() as u64)),
        Expr::Literal(_) | Expr::Unspecified => (0, Shape::Scalar),
        Expr::Ident(name) => {
            let shape = scope
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map_or(Shape::Scalar, |(_, s)| s.clone());
            (1, shape)
        }
        Expr::Select(sel) => {
            let (c, s) = cost(&sel.operand, scope, depth + 1);
            let shape = if sel.test {
                Shape::Scalar
            } else {
                s.field(&sel.field)
            };
            (c.saturating_add(1), shape)
        }
        Expr::List(l) => {
            let mut total = 10u64;
            let mut elem: Option<Shape> = None;
            for x in &l.elements {
                let (c, s) = cost(x, scope, depth + 1);
                total = total.saturating_add(c);
                elem = Some(match elem {
                    Some(prev) => join(prev, s),
                    None => s,
                });
            }
            let n = l.elements.len() as u64;
            (
                total,
                Shape::List(n, Box::new(elem.unwrap_or(Shape::Scalar))),
            )
        }
        Expr::Map(m) => {
            let mut total = 30u64;
            for entry in &m.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => {
                        total = total.saturating_add(cost(&f.value, scope, depth + 1).0)
                    }
                    EntryExpr::MapEntry(me) => {
                        total = total
                            .saturating_add(cost(&me.key, scope, depth + 1).0)
                            .saturating_add(cost(&me.value, scope, depth + 1).0)
                    }
                }
            }
            (total, Shape::Scalar)
        }
        Expr::Struct(_) => (40, Shape::Scalar),
        Expr::Comprehension(c) => {
            let (rc, range) = cost(&c.iter_range, scope, depth + 1);
            let n = match &range {
                Shape::Scalar => 1,
                other => other.size(),
            };
            let (ic, _) = cost(&c.accu_init, scope, depth + 1);
            let mark = scope.len();
            match &c.iter_var2 {
                // Two variables: index (or key) and item (or value).
                Some(v2) => {
                    let second = match &range {
                        Shape::List(_, e) => (**e).clone(),
                        Shape::Map(_, _, v) => (**v).clone(),
                        _ => Shape::Scalar,
                    };
                    let first = match &range {
                        Shape::List(..) => Shape::Scalar,
                        other => other.element(),
                    };
                    scope.push((c.iter_var.clone(), first));
                    scope.push((v2.clone(), second));
                }
                None => scope.push((c.iter_var.clone(), range.element())),
            }
            // `map` and `filter` accumulate a list as long as the range.
            scope.push((c.accu_var.clone(), Shape::List(n, Box::new(Shape::Scalar))));
            let (lc, _) = cost(&c.loop_cond, scope, depth + 1);
            let (ls, step_shape) = cost(&c.loop_step, scope, depth + 1);
            scope.truncate(mark);
            scope.push((c.accu_var.clone(), accumulated(&step_shape, n)));
            let (resc, res_shape) = cost(&c.result, scope, depth + 1);
            scope.truncate(mark);
            let total = rc
                .saturating_add(ic)
                .saturating_add(n.saturating_mul(lc.saturating_add(ls)))
                .saturating_add(resc);
            (total, res_shape)
        }
        Expr::Call(call) => {
            let mut total = 0u64;
            let target = call.target.as_ref().map(|t| {
                let (c, s) = cost(t, scope, depth + 1);
                total = total.saturating_add(c);
                s
            });
            let mut args = Vec::with_capacity(call.args.len());
            for a in &call.args {
                let (c, s) = cost(a, scope, depth + 1);
                total = total.saturating_add(c);
                args.push(s);
            }
            let (own, shape) = call_cost(&call.func_name, target.as_ref(), &args);
            (total.saturating_add(own), shape)
        }
    }
}

/// The shape a `map`/`filter` comprehension's result has: a list of what each step appends.
fn accumulated(step: &Shape, n: u64) -> Shape {
    match step {
        Shape::List(_, e) => Shape::List(n, e.clone()),
        _ => Shape::Scalar,
    }
}

/// A call's own cost and its result's shape, by function (receiver `target`, arguments `args`).
fn call_cost(name: &str, target: Option<&Shape>, args: &[Shape]) -> (u64, Shape) {
    let recv = target.or(args.first()).cloned().unwrap_or(Shape::Scalar);
    let recv_size = recv.size();
    match name {
        "_[_]" | "_[?_]" => {
            let idx = args.get(1);
            let shape = match (&recv, idx) {
                (Shape::List(_, e), _) => (**e).clone(),
                (Shape::Map(_, _, v), _) => (**v).clone(),
                _ => Shape::Scalar,
            };
            (1, shape)
        }
        // Equality stops at the end of the shorter operand.
        "_==_" | "_!=_" => {
            let n = args.iter().map(Shape::size).min().unwrap_or(1);
            (1 + traversal(n), Shape::Scalar)
        }
        "@in" => {
            let list = args.get(1).map_or(1, Shape::size);
            (1u64.saturating_add(list), Shape::Scalar)
        }
        "_+_" => match (args.first(), args.get(1)) {
            (Some(Shape::Str(a)), Some(Shape::Str(b))) => {
                let n = a.saturating_add(*b);
                (1 + traversal(n), Shape::Str(n))
            }
            (Some(Shape::List(a, e)), Some(Shape::List(b, f))) => {
                let n = a.saturating_add(*b);
                (
                    1 + traversal(n),
                    Shape::List(n, Box::new(join((**e).clone(), (**f).clone()))),
                )
            }
            _ => (1, Shape::Scalar),
        },
        // A substring search may compare the needle at every position; a prefix only once.
        "contains" => {
            let needle = args.last().map_or(1, Shape::size);
            (
                1 + traversal(recv_size.saturating_mul(needle)),
                Shape::Scalar,
            )
        }
        "startsWith" | "endsWith" => (
            1 + traversal(args.last().map_or(1, Shape::size)),
            Shape::Scalar,
        ),
        "matches" | "find" | "findAll" => {
            let pattern = args.last().map_or(1, Shape::size);
            let c = 1 + traversal(recv_size).saturating_mul(1 + pattern.div_ceil(4));
            let shape = match name {
                "find" => Shape::Str(recv_size),
                "findAll" => Shape::List(recv_size, Box::new(Shape::Str(recv_size))),
                _ => Shape::Scalar,
            };
            (c, shape)
        }
        "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "reverse" => {
            (1 + traversal(recv_size), Shape::Str(recv_size))
        }
        "split" => (
            1 + traversal(recv_size),
            Shape::List(recv_size, Box::new(Shape::Str(recv_size))),
        ),
        "join" => {
            let n = match &recv {
                Shape::List(n, e) => n.saturating_mul(e.size().max(1)),
                _ => 1,
            };
            (1 + traversal(n), Shape::Str(n))
        }
        "indexOf" | "lastIndexOf" => (1u64.saturating_add(recv_size), Shape::Scalar),
        "sum" | "min" | "max" | "isSorted" => (1u64.saturating_add(recv_size), Shape::Scalar),
        // Optionals hand on the shape of what they hold.
        "value" | "orValue" | "or" | "of" => (1, recv),
        "string" => (1 + traversal(recv_size), Shape::Str(recv_size.max(20))),
        _ => (1, Shape::Scalar),
    }
}
