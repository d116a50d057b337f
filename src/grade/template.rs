//! Template handling shared by all graders: the minijinja environment
//! configuration, compile-once/render-many template sets, the
//! [`template_variables`] helper the suite loader uses, and serde helpers
//! that let template fields be written as any YAML scalar.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde::Deserializer;
use serde::de::{self, SeqAccess, Visitor};

use super::{GradeConfigError, Vars};

/// Work one template render may do, in minijinja fuel (about one instruction, or 64 bytes of
/// data, per unit). Generous for any real prompt or grader (a 16 MiB task variable costs about
/// 260,000), but it turns a runaway template, such as nested `range(100000)` loops, into an
/// error within a second instead of a run that never ends.
pub const TEMPLATE_FUEL: u64 = 2_000_000;

/// The one template environment of costbench: suite prompts and grader templates are the same
/// dialect, so a filter or setting that works in one works in the other.
///
/// Strict undefined behaviour turns a missing task variable into an error instead of silently
/// rendering an empty string (which would make e.g. a `contains` grader trivially pass).
/// Auto-escaping is off because prompts and graders are plain text; HTML escaping belongs to
/// the report layer. Fuel bounds every render (see [`TEMPLATE_FUEL`]).
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(TEMPLATE_FUEL));
    // Jinja drops one trailing newline by default; an expected value of
    // "a\n" must stay "a\n" or `equals` would compare the wrong string, and a
    // prompt is sent as written.
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    // Lets regex patterns embed task data literally: `{{ name | regex_escape }}`.
    env.add_filter("regex_escape", |s: String| ::regex::escape(&s));
    env
}

/// True when `src` contains template syntax; otherwise rendering is the
/// identity and we skip minijinja entirely (the common case for literals).
fn has_template_syntax(src: &str) -> bool {
    src.contains("{{") || src.contains("{%") || src.contains("{#")
}

/// Names minijinja resolves itself (functions such as `range`), which a task
/// therefore never has to define.
fn builtin_globals(env: &Environment<'_>) -> BTreeSet<String> {
    env.globals().map(|(name, _)| name.to_owned()).collect()
}

/// Returns the top-level variables template `src` reads, excluding minijinja
/// built-ins (`range`, `dict`, `namespace`, `debug`), or the syntax error.
///
/// Lives in `grade::template` and is re-exported as
/// `grade::template_variables`. The analysis is static, so variables used only
/// in branches that never run (e.g. under `{% if x is defined %}`) are still
/// reported.
pub fn template_variables(src: &str) -> Result<BTreeSet<String>, String> {
    let env = environment();
    let tmpl = env.template_from_str(src).map_err(|e| e.to_string())?;
    let globals = builtin_globals(&env);
    Ok(tmpl
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !globals.contains(v))
        .collect())
}

/// Handle to one template inside a [`TemplateSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TemplateId(usize);

/// One registered template source.
#[derive(Debug, Clone)]
enum Entry {
    /// Source without template syntax: rendering returns it unchanged.
    Literal(String),
    /// Source compiled into the environment under `name` (the field name, so
    /// minijinja errors point at the field), with the variables it reads.
    Compiled { name: String, vars: Vec<Arc<str>> },
}

/// Templates of one grader, compiled once at load and rendered per task.
#[derive(Debug, Clone)]
pub(crate) struct TemplateSet {
    env: Environment<'static>,
    entries: Vec<Entry>,
}

impl TemplateSet {
    /// Creates an empty set with the grader environment.
    pub(crate) fn new() -> Self {
        Self {
            env: environment(),
            entries: Vec::new(),
        }
    }

    /// Compiles `src` (the value of `field` in a `grader` spec).
    pub(crate) fn add(
        &mut self,
        grader: &'static str,
        field: &str,
        src: &str,
    ) -> Result<TemplateId, GradeConfigError> {
        let id = TemplateId(self.entries.len());
        if !has_template_syntax(src) {
            self.entries.push(Entry::Literal(src.to_owned()));
            return Ok(id);
        }
        // Field names are unique within a grader; the index suffix guards
        // against a caller passing the same field twice.
        let name = format!("{field}#{}", id.0);
        let invalid = |e: minijinja::Error| {
            GradeConfigError::new(grader, field, format!("invalid template: {}", describe(&e)))
        };
        self.env
            .add_template_owned(name.clone(), src.to_owned())
            .map_err(invalid)?;
        let globals = builtin_globals(&self.env);
        let tmpl = self.env.get_template(&name).map_err(invalid)?;
        let vars = tmpl
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !globals.contains(v))
            .map(Arc::from)
            .collect();
        self.entries.push(Entry::Compiled { name, vars });
        Ok(id)
    }

    /// The source of `id` when it has no template syntax (renders to itself).
    pub(crate) fn literal(&self, id: TemplateId) -> Option<&str> {
        match self.entries.get(id.0) {
            Some(Entry::Literal(s)) => Some(s),
            _ => None,
        }
    }

    /// Renders template `id` with the task variables; the error is a short
    /// human-readable message naming the field.
    pub(crate) fn render<'a>(
        &'a self,
        id: TemplateId,
        vars: &Vars,
    ) -> Result<Cow<'a, str>, String> {
        let Some(entry) = self.entries.get(id.0) else {
            return Err("internal error: unknown template".to_owned());
        };
        let (name, used) = match entry {
            Entry::Literal(s) => return Ok(Cow::Borrowed(s)),
            Entry::Compiled { name, vars } => (name, vars),
        };
        // Only the variables the template reads are converted, so a task
        // carrying a large document in an unused variable costs nothing here.
        let mut ctx = BTreeMap::<Arc<str>, Value>::new();
        let mut missing = Vec::new();
        for var in used {
            match vars.get(&**var) {
                Some(v) => {
                    ctx.insert(var.clone(), Value::from(Serde(v)));
                }
                None => missing.push(&**var),
            }
        }
        let field = name.rsplit_once('#').map_or(name.as_str(), |(f, _)| f);
        let rendered = self
            .env
            .get_template(name)
            .and_then(|t| t.render(Value::from(ctx)));
        rendered.map(Cow::Owned).map_err(|e| {
            // A missing variable is by far the common cause; say so plainly
            // instead of minijinja's generic "undefined value".
            if missing.is_empty() {
                format!("cannot render `{field}`: {}", describe(&e))
            } else {
                format!(
                    "cannot render `{field}`: task does not define {}",
                    missing.join(", ")
                )
            }
        })
    }
}

/// A minijinja error as "kind: detail (line N)", without the internal
/// template name; running out of fuel is said in plain words.
pub fn describe(e: &minijinja::Error) -> String {
    if e.kind() == minijinja::ErrorKind::OutOfFuel {
        return "template used too much computation (fuel exhausted)".to_owned();
    }
    let mut msg = e.kind().to_string();
    if let Some(detail) = e.detail() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (line {line})"));
    }
    msg
}

/// Deserializes a template field from a string or an integer, so
/// `value: 42` works unquoted (as "42").
///
/// Booleans and floats are rejected rather than stringified: YAML parsers
/// turn `yes`/`no` into booleans and `1.50` into 1.5, so the text the user
/// wrote is already lost and silently comparing against "true" or "1.5"
/// would be wrong. The error asks them to quote the value.
pub(crate) fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

/// Like [`scalar_string`] for a list of template fields.
pub(crate) fn scalar_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct ListVisitor;
    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<Scalar>()? {
                out.push(s.0);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(ListVisitor)
}

/// A scalar read as a string (see [`scalar_string`]).
struct Scalar(String);

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar_string(d).map(Scalar)
    }
}

/// Visitor accepting strings and integers.
struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string (quote values such as yes, no, true or 1.50 to keep them as text)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: serde_json::Value) -> Vars {
        match v {
            serde_json::Value::Object(m) => m,
            _ => Vars::new(),
        }
    }

    #[test]
    fn variables_are_reported_without_builtins() {
        let got =
            template_variables("{{ a }}{% for i in range(3) %}{{ b.c }}{% endfor %}").unwrap();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn variables_of_syntax_error_is_err() {
        let err = template_variables("{{ a ").unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
    }

    #[test]
    fn literal_renders_unchanged_including_trailing_newline() {
        let mut set = TemplateSet::new();
        let id = set.add("equals", "value", "a{b}\n").unwrap();
        assert_eq!(set.render(id, &Vars::new()).unwrap(), "a{b}\n");
        let id = set.add("equals", "value", "{{ x }}\n").unwrap();
        assert_eq!(set.render(id, &vars(json!({"x": 1}))).unwrap(), "1\n");
    }

    #[test]
    fn missing_variable_is_error_naming_field_and_var() {
        let mut set = TemplateSet::new();
        let id = set.add("contains", "values[1]", "{{ city }}").unwrap();
        let err = set.render(id, &vars(json!({"town": "x"}))).unwrap_err();
        assert_eq!(err, "cannot render `values[1]`: task does not define city");
        let id = set.add("equals", "value", "{{ town | nofilter }}").unwrap();
        let err = set.render(id, &vars(json!({"town": "x"}))).unwrap_err();
        assert_eq!(
            err,
            "cannot render `value`: unknown filter: filter nofilter is unknown (line 1)"
        );
    }

    #[test]
    fn no_html_escaping() {
        let mut set = TemplateSet::new();
        let id = set.add("equals", "value", "{{ x }}").unwrap();
        assert_eq!(
            set.render(id, &vars(json!({"x": "<a&b>"}))).unwrap(),
            "<a&b>"
        );
    }

    #[test]
    fn regex_escape_filter() {
        let mut set = TemplateSet::new();
        let id = set
            .add("regex", "pattern", "^{{ x | regex_escape }}$")
            .unwrap();
        assert_eq!(
            set.render(id, &vars(json!({"x": "a.b"}))).unwrap(),
            r"^a\.b$"
        );
    }

    #[test]
    fn bad_syntax_is_config_error_naming_field() {
        let mut set = TemplateSet::new();
        let err = set.add("equals", "value", "{{ x ").unwrap_err();
        assert_eq!(err.field, "value");
        assert_eq!(
            err.to_string(),
            "equals grader, field `value`: invalid template: syntax error: unexpected end of \
             input, expected end of variable block (line 1)"
        );
    }

    #[derive(Debug, serde::Deserialize)]
    struct Probe {
        #[serde(deserialize_with = "scalar_string")]
        value: String,
    }

    #[test]
    fn scalar_fields_accept_strings_and_integers_only() {
        let p: Probe = serde_saphyr::from_str("value: 42").unwrap();
        assert_eq!(p.value, "42");
        let p: Probe = serde_saphyr::from_str("value: '1.50'").unwrap();
        assert_eq!(p.value, "1.50");
        for lossy in ["value: yes", "value: 1.50"] {
            let err = serde_saphyr::from_str::<Probe>(lossy)
                .unwrap_err()
                .to_string();
            assert!(err.contains("quote values"), "{lossy}: {err}");
        }
    }

    #[test]
    fn defined_test_works_under_strict() {
        let mut set = TemplateSet::new();
        let id = set
            .add(
                "equals",
                "value",
                "{% if x is defined %}{{ x }}{% else %}none{% endif %}",
            )
            .unwrap();
        assert_eq!(set.render(id, &Vars::new()).unwrap(), "none");
    }
}
