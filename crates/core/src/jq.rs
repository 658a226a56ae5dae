//! jq expressions for flows, compiled and run by jaq (a maintained Rust implementation of
//! jq): the standard library less what would reach outside the item (`env` answers `{}`, the
//! logging filters yield nothing, `halt` is an error, never an exit of the process), and every
//! run bounded in the values it may yield.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::native::{Fun, v};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;
use serde_json::Value;

type Data = data::JustLut<Val>;

/// A compiled expression.
pub struct Program {
    filter: jaq_core::Filter<Data>,
    vars: usize,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("vars", &self.vars).finish()
    }
}

/// Natives replaced for flows: what they would do reaches outside the item.
const REPLACED: &[&str] = &[
    "env",
    "halt",
    "debug_empty",
    "stderr_empty",
    "input",
    "inputs",
];

fn natives() -> impl Iterator<Item = Fun<Data>> {
    let own: [Fun<Data>; 4] = [
        jaq_core::native::run(("env", v(0), |_| {
            jaq_core::native::bome(Ok(Val::obj(Default::default())))
        })),
        jaq_core::native::run(("halt", v(1), |_| {
            jaq_core::native::bome(Err(jaq_core::Error::str(
                "`halt` is not available in flows",
            )))
        })),
        jaq_core::native::run(("debug_empty", v(0), |_| Box::new(core::iter::empty()))),
        jaq_core::native::run(("stderr_empty", v(0), |_| Box::new(core::iter::empty()))),
    ];
    jaq_core::funs::<Data>()
        .chain(jaq_std::funs::<Data>())
        .chain(jaq_json::funs::<Data>())
        .filter(|(name, _, _)| !REPLACED.contains(name))
        .chain(own)
}

/// Why an expression does not compile, in one line.
fn compile_message<P>(errors: Vec<(File<&str, P>, jaq_core::load::Error<&str>)>) -> String {
    use jaq_core::load::Error;
    let mut out = Vec::new();
    for (_, e) in errors {
        match e {
            Error::Io(v) => out.extend(v.into_iter().map(|(p, m)| format!("{p}: {m}"))),
            Error::Lex(v) => {
                out.extend(v.into_iter().map(|(expect, at)| {
                    format!("expected {} near `{}`", expect.as_str(), near(at))
                }))
            }
            Error::Parse(v) => {
                out.extend(v.into_iter().map(|(expect, at)| {
                    format!("expected {} near `{}`", expect.as_str(), near(at))
                }))
            }
        }
    }
    if out.is_empty() {
        "the expression does not parse".into()
    } else {
        out.join("; ")
    }
}

fn near(s: &str) -> String {
    let s: String = s.chars().take(20).collect();
    if s.is_empty() { "the end".into() } else { s }
}

/// Filters that can run without end or recurse without bound whatever the item: a recursion
/// past the thread's stack aborts the whole process, so they are refused when compiled.
const UNBOUNDED: &[&str] = &["until", "while", "repeat"];

/// Refuses definitions (a recursive one can exhaust the stack) and the filters that loop
/// without a bound the item sets; `recurse` is allowed without arguments (it walks the item).
fn refuse_unbounded(tokens: &[jaq_core::load::lex::Token<&str>]) -> Result<(), String> {
    use jaq_core::load::lex::{StrPart, Tok};
    for (i, token) in tokens.iter().enumerate() {
        match &token.1 {
            Tok::Word if token.0 == "def" => {
                return Err("definitions (`def`) are not available in flows".into());
            }
            Tok::Word if UNBOUNDED.contains(&token.0) => {
                return Err(format!(
                    "`{}` is not available in flows (it can loop without end); use `limit`, `first` or `range` with a bound",
                    token.0
                ));
            }
            Tok::Word
                if token.0 == "recurse"
                    && tokens
                        .get(i + 1)
                        .is_some_and(|n| matches!(n.1, Tok::Block(_)) && n.0.starts_with('(')) =>
            {
                return Err(
                    "`recurse` with a filter is not available in flows (it can recurse without end); `..` and `recurse` walk the item"
                        .into(),
                );
            }
            Tok::Block(inner) => refuse_unbounded(inner)?,
            Tok::Str(parts) => {
                for part in parts {
                    if let StrPart::Term(t) = part {
                        refuse_unbounded(std::slice::from_ref(t))?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

impl Program {
    /// Compiles `code`, which may use the variables named in `vars` (without `$`).
    pub fn compile(code: &str, vars: &[&str]) -> Result<Program, String> {
        if code.len() > 20_000 {
            return Err("the expression is longer than 20,000 characters".into());
        }
        if let Ok(tokens) = jaq_core::load::lex::Lexer::new(code).lex() {
            refuse_unbounded(&tokens)?;
        }
        let names: Vec<String> = vars.iter().map(|v| format!("${v}")).collect();
        let arena = Arena::default();
        let loader = Loader::new(
            jaq_core::defs()
                .chain(jaq_std::defs())
                .chain(jaq_json::defs()),
        );
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(compile_message)?;
        let filter = Compiler::default()
            .with_funs(natives())
            .with_global_vars(names.iter().map(String::as_str))
            .compile(modules)
            .map_err(|errors| {
                let names: Vec<String> = errors
                    .into_iter()
                    .flat_map(|(_, e)| e.into_iter().map(|(name, _)| name.to_string()))
                    .collect();
                if names.is_empty() {
                    "the expression does not compile".to_string()
                } else {
                    format!("undefined: {}", names.join(", "))
                }
            })?;
        Ok(Program {
            filter,
            vars: vars.len(),
        })
    }

    /// Runs the expression over `input` with the variables' values (in the order compiled);
    /// at most `max` values, else an error.
    pub fn run(&self, input: &Value, vars: &[&Value], max: usize) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        self.each(input, vars, |value| {
            if out.len() == max {
                return Err(format!("the expression yields more than {max} values"));
            }
            out.push(value);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Runs the expression, giving each value to `take` until it answers `false`.
    fn each(
        &self,
        input: &Value,
        vars: &[&Value],
        mut take: impl FnMut(Value) -> Result<bool, String>,
    ) -> Result<(), String> {
        if vars.len() != self.vars {
            return Err("the expression's variables are not all given".into());
        }
        let to_val = |v: &Value| {
            serde_json::from_value::<Val>(v.clone())
                .map_err(|e| format!("the input is not JSON jq reads: {e}"))
        };
        let input = to_val(input)?;
        let vals = vars
            .iter()
            .map(|v| to_val(v))
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new(vals));
        for result in self.filter.id.run((ctx, input)) {
            let value = result.map_err(|exn| match exn.get_err() {
                Ok(e) => format!("jq error: {}", short(&e.to_string())),
                Err(_) => "`halt` is not available in flows".to_string(),
            })?;
            if !take(from_val(&value)?)? {
                break;
            }
        }
        Ok(())
    }

    /// The first value the expression yields, whether it is true (neither `false` nor `null`);
    /// no value is false.
    pub fn test(&self, input: &Value, vars: &[&Value]) -> Result<bool, String> {
        let first = self.run_first(input, vars)?;
        Ok(!matches!(
            first,
            None | Some(Value::Null) | Some(Value::Bool(false))
        ))
    }

    /// The first value the expression yields, if any.
    pub fn run_first(&self, input: &Value, vars: &[&Value]) -> Result<Option<Value>, String> {
        let mut first = None;
        self.each(input, vars, |value| {
            first = Some(value);
            Ok(false)
        })?;
        Ok(first)
    }
}

/// A jq value as JSON (a value JSON cannot hold, such as NaN or a byte string, is an error).
fn from_val(v: &Val) -> Result<Value, String> {
    serde_json::from_str(&v.to_string())
        .map_err(|_| "the expression yields a value JSON cannot hold".to_string())
}

/// An error message cut to a readable length (it may quote the item).
fn short(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transforms_filters_and_binds_variables() {
        let p = Program::compile("{n: .a, both: (.a + $item.b)}", &["item"]).unwrap();
        let out = p.run(&json!({"a": 1}), &[&json!({"b": 2})], 10).unwrap();
        assert_eq!(out, vec![json!({"n": 1, "both": 3})]);
        let many = Program::compile(".[] | select(. > 1)", &[]).unwrap();
        assert_eq!(
            many.run(&json!([1, 2, 3]), &[], 10).unwrap(),
            vec![json!(2), json!(3)]
        );
        let cond = Program::compile(".status == \"approved\"", &[]).unwrap();
        assert!(cond.test(&json!({"status": "approved"}), &[]).unwrap());
        assert!(!cond.test(&json!({"status": "draft"}), &[]).unwrap());
        assert!(
            !Program::compile("empty", &[])
                .unwrap()
                .test(&json!(1), &[])
                .unwrap()
        );
    }

    #[test]
    fn runs_the_shipped_examples_expressions() {
        let read = Program::compile(
            "$item.record.line_items | map(.item_id == $record.id) | any",
            &["item", "record"],
        )
        .unwrap();
        let item = json!({"record": {"line_items": [{"item_id": "itm_1"}, {"item_id": "itm_2"}]}});
        assert!(
            read.test(&json!({}), &[&item, &json!({"id": "itm_2"})])
                .unwrap()
        );
        assert!(
            !read
                .test(&json!({}), &[&item, &json!({"id": "itm_3"})])
                .unwrap()
        );
        let shape = Program::compile(
            "(.erp_items | map({key: .id, value: .code}) | from_entries) as $code | (.warehouse_items | map({key: .code, value: .id}) | from_entries) as $wms | {number: .record.number, memo: null, line_items: [.record.line_items[] | select($wms[$code[.item_id] // \"\"] != null) | {item_id: $wms[$code[.item_id]], quantity: .quantity}]} | with_entries(select(.value != null)) | select(.line_items | length > 0)",
            &["item"],
        )
        .unwrap();
        let item = json!({
            "record": {"number": "PO1", "line_items": [{"item_id": "itm_1", "quantity": "2"}, {"item_id": "itm_9", "quantity": "1"}]},
            "erp_items": [{"id": "itm_1", "code": "A-1"}],
            "warehouse_items": [{"id": "itm_w1", "code": "A-1"}],
        });
        assert_eq!(
            shape.run(&item, &[&item], 10).unwrap(),
            vec![json!({"number": "PO1", "line_items": [{"item_id": "itm_w1", "quantity": "2"}]})]
        );
        let memo = Program::compile(
            "\"Received \" + (.q | tostring) + \" of \" + (.code // \"?\")",
            &[],
        )
        .unwrap();
        assert_eq!(
            memo.run(&json!({"q": "5"}), &[], 1).unwrap(),
            vec![json!("Received 5 of ?")]
        );
    }

    #[test]
    fn refuses_what_reaches_outside_and_bounds_output() {
        let env = Program::compile("env", &[]).unwrap();
        assert_eq!(env.run(&json!(null), &[], 10).unwrap(), vec![json!({})]);
        let halt = Program::compile("halt", &[]).unwrap();
        assert!(
            halt.run(&json!(null), &[], 10)
                .unwrap_err()
                .contains("halt")
        );
        let endless = Program::compile("range(1000000)", &[]).unwrap();
        assert!(
            endless
                .run(&json!(null), &[], 5)
                .unwrap_err()
                .contains("more than 5")
        );
        let err = Program::compile(".a +", &[]).unwrap_err();
        assert!(err.contains("expected"), "{err}");
        let undefined = Program::compile("nosuchfn(1)", &[]).unwrap_err();
        assert!(undefined.contains("nosuchfn"), "{undefined}");
        let runtime = Program::compile(".a + 1", &[]).unwrap();
        let e = runtime.run(&json!({"a": "x"}), &[], 10).unwrap_err();
        assert!(e.starts_with("jq error"), "{e}");
        for unbounded in [
            "def f: 1 + f; f",
            "until(false; .)",
            "[.[] | while(true; .)]",
            "repeat(1)",
            "[recurse(. + 1)] | length",
            "\"\\(def f: f; f)\"",
        ] {
            let e = Program::compile(unbounded, &[]).unwrap_err();
            assert!(e.contains("not available"), "{unbounded}: {e}");
        }
        assert!(Program::compile("[..] | length", &[]).is_ok());
        assert!(Program::compile("[recurse] | length", &[]).is_ok());
        let debug = Program::compile("debug | . + 1", &[]).unwrap();
        assert_eq!(debug.run(&json!(1), &[], 10).unwrap(), vec![json!(2)]);
    }
}
