//! CEL (Common Expression Language) for the apiserver: the expressions of ValidatingAdmissionPolicies
//! (`validations`, `messageExpression`, `matchConditions`, `variables`) and of admission webhooks'
//! `matchConditions`, evaluated over JSON objects, and of CRD `x-kubernetes-validations` (`self`/`oldSelf`,
//! in `crate::apiserver::crd::validation_rules`). Kept independent of both.
//!
//! Where to start: [`Program::compile`] parses an expression ([`compile_cached`] once per distinct
//! text, which is what admission uses), [`Activation`] binds the variables of one evaluation (JSON values, converted
//! by [`json_to_value`]), [`Program::eval`] runs it. [`library`] adds the Kubernetes extension
//! functions on top of the `cel` crate's standard library and its strings extension.
//!
//! What upstream has that this does not: type checking at compile time (cel-rust only parses, so an
//! undeclared variable, a misspelt function or a non-bool result shows at evaluation time, where it
//! is an evaluation error handled by the caller's failurePolicy); the runtime cost budget (instead, an
//! expression is limited to [`MAX_EXPRESSION_LEN`] bytes and the parser's nesting depth, and the
//! library has no functions that build large values out of small inputs, such as `lists.range` or
//! `strings.repeat`); the `authorizer` variable, the `quantity`, `url`, `ip`/`cidr` and `semver`
//! libraries.

pub mod library;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use ::cel::common::value::Val;
use ::cel::objects::{Key, Map};
pub use ::cel::Value;
use ::cel::{Context, Env, ExecutionError};

/// The longest expression accepted (bytes). cel-rust has no cost estimator, so length is the bound on
/// the work one expression can ask for at compile time (upstream's limit on a whole policy object,
/// 3 MiB of request, is far larger; real rules are a few hundred bytes).
pub const MAX_EXPRESSION_LEN: usize = 16 * 1024;

/// The environment every program compiles and runs in: the standard library, the strings extension
/// (`lowerAscii`, `split`, `join`, `indexOf`, ...) and the Kubernetes list functions.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    // Registration fails only on a duplicate declaration, which would be a bug here: log it and go on
    // with what was declared rather than refusing every expression.
    if let Err(e) = env.add_extension(::cel::extensions::strings) {
        tracing::error!("CEL strings extension: {e}");
    }
    if let Err(e) = library::register(&mut env) {
        tracing::error!("CEL Kubernetes library: {e}");
    }
    Arc::new(env)
});

/// Compiled programs by source text, shared by every caller: a policy's (or webhook's) expressions
/// are parsed once, and again only when their text changes (a new generation of the object that
/// holds them). Cleared when it reaches [`CACHE_ENTRIES`], so expressions of deleted objects do not
/// accumulate.
static CACHE: LazyLock<Mutex<HashMap<String, Compiled>>> = LazyLock::new(Mutex::default);

/// A cached compilation: the shared program, or why the text does not compile.
type Compiled = Result<Arc<Program>, CompileError>;

/// How many compiled expressions [`compile_cached`] keeps.
const CACHE_ENTRIES: usize = 4096;

/// [`Program::compile`] through the shared cache.
pub fn compile_cached(expr: &str) -> Compiled {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hit) = cache.get(expr) {
        return hit.clone();
    }
    let compiled = Program::compile(expr).map(Arc::new);
    if cache.len() >= CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(expr.to_string(), compiled.clone());
    compiled
}

/// Why an expression does not compile, as upstream words it after `compilation failed: `
/// (`ERROR: <input>:LINE:COL: MESSAGE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError(pub String);

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an evaluation failed (no such key, no matching overload, division by zero, ...), worded as
/// cel-go does where the two differ only in case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalError(pub String);

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ExecutionError> for EvalError {
    fn from(e: ExecutionError) -> Self {
        EvalError(match &e {
            ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
            ExecutionError::UndeclaredReference(r) => format!("undeclared reference to '{r}'"),
            ExecutionError::NoSuchOverload(o) => o.to_string(),
            ExecutionError::DivisionByZero(_) => "division by zero".into(),
            ExecutionError::RemainderByZero(_) => "modulus by zero".into(),
            _ => e.to_string(),
        })
    }
}

/// One compiled expression.
#[derive(Debug)]
pub struct Program {
    program: ::cel::Program,
    source: String,
}

impl Program {
    /// Parses `expr` (macros expanded). Empty and over-long expressions are refused here.
    pub fn compile(expr: &str) -> Result<Program, CompileError> {
        if expr.len() > MAX_EXPRESSION_LEN {
            return Err(CompileError(format!(
                "expression of {} bytes exceeds the limit of {MAX_EXPRESSION_LEN} bytes",
                expr.len()
            )));
        }
        // The parser recovers from some errors and may panic on inputs it does not expect; a panic
        // here must refuse the expression, not take the request (or the server) down.
        let parsed = std::panic::catch_unwind(|| ENV.compile(expr));
        match parsed {
            Ok(Ok(program)) => Ok(Program {
                program,
                source: expr.to_string(),
            }),
            Ok(Err(errors)) => Err(CompileError(
                errors
                    .errors
                    .iter()
                    .map(|e| format!("ERROR: <input>:{}:{}: {}", e.pos.0, e.pos.1, e.msg))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )),
            Err(_) => Err(CompileError(
                "ERROR: <input>:1:1: the expression could not be parsed".into(),
            )),
        }
    }

    /// [`Program::compile`], then refuses references to variables other than `declared` (and the
    /// names comprehensions bind), as upstream's type checker does:
    /// `ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')`.
    pub fn compile_declared(expr: &str, declared: &[&str]) -> Result<Program, CompileError> {
        let program = Program::compile(expr)?;
        let mut scope: Vec<&str> = declared.to_vec();
        let mut undeclared = Vec::new();
        free_identifiers(program.program.expression(), &mut scope, &mut undeclared);
        let Some((name, id)) = undeclared.first() else {
            return Ok(program);
        };
        // The node's start offset as line and column (both from 1), as cel-go prints positions.
        let start = program
            .program
            .source_info()
            .offset_for(*id)
            .map_or(0, |(start, _)| start as usize);
        let before = expr.get(..start).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Err(CompileError(format!(
            "ERROR: <input>:{line}:{col}: undeclared reference to '{name}' (in container '')"
        )))
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed expression (macros expanded), for callers that analyse it (cost estimates).
    pub fn expression(&self) -> &::cel::IdedExpr {
        self.program.expression()
    }

    /// Whether the expression refers to the variable `name` outside any comprehension binding it
    /// (upstream's CRD rules are transition rules when they mention `oldSelf`).
    pub fn references(&self, name: &str) -> bool {
        mentions(self.program.expression(), name)
    }

    /// Evaluates the program with `act`'s variables.
    pub fn eval(&self, act: &Activation) -> Result<Value, EvalError> {
        let mut ctx = Context::with_env(ENV.clone());
        for (name, value) in &act.vars {
            let v: Box<dyn Val> = value.clone().try_into()?;
            ctx.add_variable_as_val(name.clone(), v);
        }
        // As at compile time: a panic in the interpreter is this expression's error.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.program.execute(&ctx)));
        match result {
            Ok(r) => Ok(r?),
            Err(_) => Err(EvalError("internal error evaluating the expression".into())),
        }
    }

    /// Evaluates a condition: anything but a bool is an error (upstream's type check refuses such
    /// expressions at compile time).
    pub fn eval_bool(&self, act: &Activation) -> Result<bool, EvalError> {
        match self.eval(act)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError(format!(
                "expected a bool result, got {}",
                other.type_of()
            ))),
        }
    }
}

/// Type names an expression may use as values (`type(x) == int`).
const TYPE_NAMES: &[&str] = &[
    "bool",
    "bytes",
    "double",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// Collects the identifiers of `e` that are neither in `scope` (declared variables and the
/// comprehension variables around them) nor type names, with their node ids. Identifiers that are
/// the receiver of a call are left alone: they may name a function namespace (`strings.quote`).
fn free_identifiers<'e>(
    e: &'e ::cel::IdedExpr,
    scope: &mut Vec<&'e str>,
    out: &mut Vec<(String, u64)>,
) {
    visit_unbound(e, scope, &mut |ident, name, receiver| {
        if !receiver && !name.starts_with('@') && !TYPE_NAMES.contains(&name) {
            out.push((name.to_string(), ident.id));
        }
    });
}

/// Whether `e` mentions the identifier `name` where no comprehension rebinds it (unlike
/// [`free_identifiers`], receivers count: `oldSelf.hasValue()` mentions `oldSelf`).
fn mentions(e: &::cel::IdedExpr, name: &str) -> bool {
    let mut found = false;
    visit_unbound(e, &mut Vec::new(), &mut |_, n, _| found |= n == name);
    found
}

/// Calls `f` with every identifier of `e` that no comprehension around it binds (`scope` holds the
/// names bound so far), its name, and whether it is the receiver of a call.
fn visit_unbound<'e>(
    e: &'e ::cel::IdedExpr,
    scope: &mut Vec<&'e str>,
    f: &mut dyn FnMut(&'e ::cel::IdedExpr, &'e str, bool),
) {
    use ::cel::common::ast::{EntryExpr, Expr};
    match &e.expr {
        Expr::Ident(name) => {
            if !scope.contains(&name.as_str()) {
                f(e, name, false);
            }
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                match &target.expr {
                    Expr::Ident(name) if !scope.contains(&name.as_str()) => f(target, name, true),
                    Expr::Ident(_) => {}
                    _ => visit_unbound(target, scope, f),
                }
            }
            for a in &call.args {
                visit_unbound(a, scope, f);
            }
        }
        Expr::Comprehension(c) => {
            visit_unbound(&c.iter_range, scope, f);
            visit_unbound(&c.accu_init, scope, f);
            let depth = scope.len();
            scope.push(&c.iter_var);
            if let Some(v2) = &c.iter_var2 {
                scope.push(v2);
            }
            scope.push(&c.accu_var);
            visit_unbound(&c.loop_cond, scope, f);
            visit_unbound(&c.loop_step, scope, f);
            visit_unbound(&c.result, scope, f);
            scope.truncate(depth);
        }
        Expr::List(l) => {
            for x in &l.elements {
                visit_unbound(x, scope, f);
            }
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                match &entry.expr {
                    EntryExpr::StructField(field) => visit_unbound(&field.value, scope, f),
                    EntryExpr::MapEntry(me) => {
                        visit_unbound(&me.key, scope, f);
                        visit_unbound(&me.value, scope, f);
                    }
                }
            }
        }
        Expr::Struct(st) => {
            for entry in &st.entries {
                if let EntryExpr::StructField(field) = &entry.expr {
                    visit_unbound(&field.value, scope, f);
                }
            }
        }
        Expr::Select(sel) => visit_unbound(&sel.operand, scope, f),
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// The variables of one evaluation.
#[derive(Clone, Default, Debug)]
pub struct Activation {
    vars: Vec<(String, Value)>,
}

impl Activation {
    pub fn new() -> Self {
        Activation::default()
    }

    /// Binds `name` to a CEL value (replacing an earlier binding).
    pub fn bind(&mut self, name: &str, value: Value) {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_string(), value));
    }

    /// Binds `name` to a CEL optional: `optional.of(value)`, or `optional.none()` when absent.
    pub fn bind_optional_json(&mut self, name: &str, value: Option<&serde_json::Value>) {
        let opt = match value {
            Some(v) => ::cel::objects::OptionalValue::of(json_to_value(v)),
            None => ::cel::objects::OptionalValue::none(),
        };
        self.bind(name, Value::Opaque(Arc::new(opt)));
    }

    /// Binds `name` to a JSON value (absent objects are `null`).
    pub fn bind_json(&mut self, name: &str, value: Option<&serde_json::Value>) {
        self.bind(name, value.map_or(Value::Null, json_to_value));
    }
}

/// A JSON value as CEL sees it: objects as `map(string, dyn)`, integers as `int` (as upstream's
/// unstructured conversion: `uint` only beyond `int64`), other numbers as `double`.
pub fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(a) => Value::List(Arc::new(a.iter().map(json_to_value).collect())),
        serde_json::Value::Object(m) => {
            let map: HashMap<Key, Value> = m
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), json_to_value(v)))
                .collect();
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}

/// A CEL value as JSON, for results handed back to callers (maps with non-string keys get their key
/// printed; values JSON has no form for, such as bytes or durations, become their debug text).
pub fn value_to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::json!(i),
        Value::UInt(u) => serde_json::json!(u),
        Value::Float(f) => serde_json::json!(f),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(l) => serde_json::Value::Array(l.iter().map(value_to_json).collect()),
        Value::Map(m) => serde_json::Value::Object(
            m.map
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Key::String(s) => s.to_string(),
                        Key::Int(i) => i.to_string(),
                        Key::Uint(u) => u.to_string(),
                        Key::Bool(b) => b.to_string(),
                    };
                    (key, value_to_json(v))
                })
                .collect(),
        ),
        other => serde_json::Value::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expr: &str, vars: &[(&str, serde_json::Value)]) -> Result<Value, EvalError> {
        let p = Program::compile(expr).map_err(|e| EvalError(e.0))?;
        let mut act = Activation::new();
        for (n, v) in vars {
            act.bind_json(n, Some(v));
        }
        p.eval(&act)
    }

    fn truth(expr: &str, vars: &[(&str, serde_json::Value)]) -> bool {
        match eval(expr, vars) {
            Ok(Value::Bool(b)) => b,
            other => panic!("{expr}: {other:?}"),
        }
    }

    #[test]
    fn converts_json() {
        let obj = json!({"spec": {"replicas": 3, "ratio": 0.5, "name": "x", "tags": ["a", "b"], "none": null, "on": true}});
        let o = [("object", obj)];
        assert!(truth("object.spec.replicas == 3", &o));
        assert!(truth("object.spec.replicas <= 5", &o));
        assert!(truth("object.spec.ratio == 0.5", &o));
        assert!(truth("object.spec.name == 'x'", &o));
        assert!(truth("object.spec.tags == ['a', 'b']", &o));
        assert!(truth("object.spec.none == null", &o));
        assert!(truth("object.spec.on", &o));
        assert!(truth("size(object.spec.tags) == 2", &o));
        assert!(truth("'a' in object.spec.tags", &o));
        assert!(truth("'replicas' in object.spec", &o));
        assert_eq!(
            value_to_json(&json_to_value(&json!({"a": [1, 2.5, "s", null]}))),
            json!({"a": [1, 2.5, "s", null]})
        );
    }

    #[test]
    fn macros_and_has() {
        let o = [(
            "object",
            json!({"spec": {"containers": [{"name": "a", "image": "r/a:1"}, {"name": "b", "image": "r/b:2"}]}}),
        )];
        assert!(truth("has(object.spec.containers)", &o));
        assert!(!truth("has(object.spec.volumes)", &o));
        assert!(truth(
            "object.spec.containers.all(c, c.image.startsWith('r/'))",
            &o
        ));
        assert!(truth("object.spec.containers.exists(c, c.name == 'b')", &o));
        assert!(truth(
            "object.spec.containers.exists_one(c, c.name.endsWith('a'))",
            &o
        ));
        assert!(truth(
            "object.spec.containers.map(c, c.name) == ['a', 'b']",
            &o
        ));
        assert!(truth(
            "size(object.spec.containers.filter(c, c.image.contains(':2'))) == 1",
            &o
        ));
        assert!(truth(
            "object.spec.containers[0].name.matches('^[a-z]$')",
            &o
        ));
    }

    #[test]
    fn strings_extension() {
        assert!(truth("'TacoCat'.lowerAscii() == 'tacocat'", &[]));
        assert!(truth("'TacoCat'.upperAscii() == 'TACOCAT'", &[]));
        assert!(truth("'a,b,c'.split(',') == ['a', 'b', 'c']", &[]));
        assert!(truth("['a', 'b'].join('-') == 'a-b'", &[]));
        assert!(truth("'hello'.indexOf('l') == 2", &[]));
    }

    #[test]
    fn errors() {
        // A missing field is a runtime error, as upstream ("no such key").
        let o = [("object", json!({"spec": {}}))];
        assert_eq!(
            eval("object.spec.replicas > 1", &o).unwrap_err().0,
            "no such key: replicas"
        );
        let p = Program::compile("1 + 1").unwrap();
        assert!(p.eval_bool(&Activation::new()).is_err());
        let e = Program::compile("object.spec ==").unwrap_err();
        assert!(e.0.starts_with("ERROR: <input>:1:"), "{}", e.0);
        let long = "true && ".repeat(MAX_EXPRESSION_LEN / 8) + "true";
        assert!(Program::compile(&long).is_err());
        assert!(eval("1 / 0 == 1", &[]).is_err());
        assert!(eval("undeclared == 1", &[]).is_err());
    }

    #[test]
    fn declared_variables() {
        let declared = ["object", "params"];
        assert!(Program::compile_declared(
            "object.spec.containers.all(c, c.ports.exists(p, p.containerPort > 0))",
            &declared
        )
        .is_ok());
        assert!(Program::compile_declared(
            "type(object) == map && 'a'.lowerAscii() == 'a'",
            &declared
        )
        .is_ok());
        assert_eq!(
            Program::compile_declared("object.x == params.y && foo.bar", &declared)
                .unwrap_err()
                .0,
            "ERROR: <input>:1:25: undeclared reference to 'foo' (in container '')"
        );
        // A comprehension's variable is not in scope after it.
        assert!(Program::compile_declared("[1].all(x, x > 0) && x == 1", &declared).is_err());
    }
}
