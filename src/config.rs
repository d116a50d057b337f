//! YAML loading for every user-written file (suites, providers), behind one door.
//!
//! serde stops at the first error, but users fix config files faster when they see every
//! problem at once. So a file is parsed in two passes: serde-saphyr reads it into a
//! `serde_json::Value` (YAML syntax errors carry their own line and column), and the
//! granit parser underneath it records where every node starts. Callers then deserialize
//! each section on its own through [`Loader::field`], which collects type errors and unknown
//! keys with their dotted path (`tasks[3].vars`) and location instead of stopping.
//!
//! Config structs therefore do not use `deny_unknown_fields` (it stops at the first unknown
//! key); `serde_ignored` reports every unknown key as a problem instead.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

/// One segment of a dotted path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A path into a document, printed as `tasks[3].vars.ticket`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DocPath(pub Vec<Seg>);

impl DocPath {
    /// The path of a child key.
    pub fn key(&self, k: &str) -> DocPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    /// The path of a child index.
    pub fn index(&self, i: usize) -> DocPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for DocPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One problem found in a config file, with its location when known.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line and column, when the path could be located.
    pub line_col: Option<(usize, usize)>,
    /// Dotted path to the offending key or value.
    pub path: DocPath,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_col {
            Some((l, c)) => write!(f, "{}:{l}:{c}: ", self.file.display())?,
            None => write!(f, "{}: ", self.file.display())?,
        }
        if !self.path.0.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        // Keep multi-line messages (regex errors) visibly inside this problem.
        write!(f, "{}", self.message.trim_end().replace('\n', "\n      "))
    }
}

/// Every problem found in one or more config files.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// One problem with a whole file (unreadable, not the expected format).
    pub fn at_file(file: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError {
            problems: vec![Problem {
                file: file.to_path_buf(),
                line_col: None,
                path: DocPath::default(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "{n} problem{} in config", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// Largest suite or providers file read, in bytes. A file this size is far past any hand-written
/// config; the cap keeps a path like `/dev/zero` from growing memory until the process aborts.
pub const MAX_CONFIG_BYTES: u64 = 256 * 1024 * 1024;

/// Most YAML nodes (mappings, sequences, scalars) one file may hold. Sized for 100,000 inline
/// tasks of a few variables each (about 10 nodes a task) with room to spare; the budget still
/// stands because alias bombs and huge documents must fail fast instead of exhausting memory.
pub const MAX_YAML_NODES: usize = 4_000_000;

/// Most parser events one file may produce (each collection adds a start and an end event).
const MAX_YAML_EVENTS: usize = 2 * MAX_YAML_NODES + 1_000;

/// Why a file could not be read, in plain words.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is larger than the cap.
    #[error("file is larger than {} MiB; costbench does not read config files that large", .0 / (1024 * 1024))]
    TooLarge(u64),
    /// The file is not UTF-8 text.
    #[error("file is not UTF-8 text (invalid byte at offset {0})")]
    NotUtf8(usize),
}

/// Reads a whole text file, refusing files over `cap` bytes without reading past the cap.
pub fn read_capped(file: &Path, cap: u64) -> Result<String, ReadError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(file)?
        .take(cap + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    String::from_utf8(bytes).map_err(|e| ReadError::NotUtf8(e.utf8_error().valid_up_to()))
}

/// The YAML reading options every config file is parsed with.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        // YAML 1.2 booleans only: `answer: no` must stay the string "no".
        strict_booleans: true,
        budget: serde_saphyr::budget! {
            max_nodes: MAX_YAML_NODES,
            max_events: MAX_YAML_EVENTS,
        },
    }
}

/// A serde-saphyr error in plain words: its own wording names Rust types and options
/// (`budget breached: Nodes { .. }`, `set DuplicateKeyPolicy in Options`) a user cannot act on.
fn yaml_error_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    let alias_bomb = "YAML aliases (`*name`) expand to too much data (an alias bomb?); \
                      write the values out instead of repeating aliases";
    // Alias and snippet wrappers hide the error that says what happened.
    let mut inner = e;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = inner {
        inner = error;
    }
    let message = match inner {
        E::Budget { breach, .. } => match breach {
            B::Nodes { .. } | B::Events { .. } => format!(
                "the file has more than {MAX_YAML_NODES} YAML values, more than costbench reads \
                 from one file; move the tasks to a tasks_file (JSONL or CSV)"
            ),
            B::ScalarBytes { .. } => "the file holds more than 64 MiB of text; move the tasks \
                                      to a tasks_file (JSONL or CSV)"
                .to_string(),
            B::Depth { depth } => {
                format!("values are nested too deeply ({depth} levels); flatten the file")
            }
            B::Documents { .. } => "the file holds too many YAML documents (`---`)".to_string(),
            B::Aliases { .. }
            | B::Anchors { .. }
            | B::AliasAnchorRatio { .. }
            | B::RecordedAnchorEvents { .. }
            | B::RecordedAnchorBytes { .. } => alias_bomb.to_string(),
            _ => "the file is too large or too complex to read".to_string(),
        },
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => alias_bomb.to_string(),
        E::DuplicateMappingKey { key: Some(k), .. } => {
            format!("duplicate key `{k}`; each key may appear once in a mapping")
        }
        E::DuplicateMappingKey { key: None, .. } => {
            "duplicate key; each key may appear once in a mapping".to_string()
        }
        other => other.without_snippet().to_string(),
    };
    format!("invalid YAML: {message}")
}

/// A parsed YAML file with node locations, collecting problems as sections are read.
pub struct Loader {
    /// The file being read.
    pub file: PathBuf,
    /// The whole document as JSON-like data.
    pub root: Value,
    locations: HashMap<DocPath, (usize, usize)>,
    /// Problems found so far.
    pub problems: Vec<Problem>,
}

impl Loader {
    /// Reads and parses a YAML file; an unreadable or syntactically invalid file is one problem.
    pub fn open(file: &Path) -> Result<Loader, ConfigError> {
        let src = read_capped(file, MAX_CONFIG_BYTES)
            .map_err(|e| ConfigError::at_file(file, e.to_string()))?;
        Self::from_str(file, &src)
    }

    /// Parses YAML text that came from `file` (used in messages only).
    pub fn from_str(file: &Path, src: &str) -> Result<Loader, ConfigError> {
        let root: Value =
            serde_saphyr::from_str_with_options(src, yaml_options()).map_err(|e| {
                let loc = e.location();
                ConfigError {
                    problems: vec![Problem {
                        file: file.to_path_buf(),
                        line_col: loc.map(|l| (l.line() as usize, l.column() as usize)),
                        path: DocPath::default(),
                        message: yaml_error_message(&e),
                    }],
                }
            })?;
        Ok(Loader {
            file: file.to_path_buf(),
            root,
            locations: index_locations(src),
            problems: Vec::new(),
        })
    }

    /// Records a problem at `path`, located at the nearest known ancestor.
    pub fn problem(&mut self, path: &DocPath, message: impl Into<String>) {
        let p = self.problem_at(path, message);
        self.problems.push(p);
    }

    /// A problem at `path`, located at the nearest known ancestor, without recording it: for
    /// checks that can only be made once other files are read (a judge's provider id).
    pub fn problem_at(&self, path: &DocPath, message: impl Into<String>) -> Problem {
        let mut probe = path.clone();
        let line_col = loop {
            if let Some(lc) = self.locations.get(&probe) {
                break Some(*lc);
            }
            if probe.0.pop().is_none() {
                break None;
            }
        };
        Problem {
            file: self.file.clone(),
            line_col,
            path: path.clone(),
            message: message.into(),
        }
    }

    /// Deserializes `value` (found at `path`) into `T`, recording unknown keys and type errors.
    ///
    /// serde stops at the first type error, so after one the offending entry is removed and
    /// deserialization retried, until it succeeds or the error is the removal itself (a
    /// required field): every wrong type in a section is reported, not just the first.
    /// Returns `None` when `T` could not be built; unknown keys do not stop it.
    pub fn field<T: DeserializeOwned>(&mut self, path: &DocPath, value: &Value) -> Option<T> {
        let mut value = value.clone();
        let mut unknown: Vec<DocPath> = Vec::new();
        let mut removed: Vec<DocPath> = Vec::new();
        let result = loop {
            let mut on_unknown = |p: serde_ignored::Path<'_>| {
                let p = ignored_path(&p);
                if !unknown.contains(&p) {
                    unknown.push(p);
                }
            };
            let de = serde_ignored::Deserializer::new(&value, &mut on_unknown);
            let err = match serde_path_to_error::deserialize::<_, T>(de) {
                Ok(v) => break Some(v),
                Err(e) => e,
            };
            let mut at = DocPath::default();
            for seg in err.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Seq { index } => at.0.push(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => at.0.push(Seg::Key(key.clone())),
                    _ => {}
                }
            }
            let mut message = err.into_inner().to_string();
            // serde reads a struct from a sequence too, so a list where a mapping belongs says
            // "invalid length 3"; say what it is instead.
            if message.starts_with("invalid length ")
                && value_at(&value, &at).is_some_and(Value::is_array)
                && let Some((_, expected)) = message.split_once(", expected ")
            {
                message = format!("invalid type: sequence, expected {expected}");
            }
            // `deny_unknown_fields` (grader specs) names one unknown key and stops, at the
            // mapping's path: report it at the key's own line and take it out, so the next
            // round finds the next one.
            if let Some(name) = message
                .strip_prefix("unknown field `")
                .and_then(|m| m.split_once('`'))
                .map(|(name, _)| name.to_string())
            {
                let mut key = at.clone();
                key.0.push(Seg::Key(name));
                if value_at(&value, &key).is_some() && !removed.contains(&key) {
                    at = key;
                }
            }
            // A required field we removed ourselves: already reported under its own path.
            let ours = message
                .strip_prefix("missing field `")
                .and_then(|m| m.split_once('`'))
                .is_some_and(|(name, _)| {
                    let mut field = at.clone();
                    field.0.push(Seg::Key(name.to_string()));
                    removed.contains(&field)
                });
            // A list entry we nulled ourselves fails again as `null`: that error is ours, and
            // the list holding it goes instead (once reported, nulling it again would loop).
            let again = removed.contains(&at);
            if !ours && !again {
                let mut full = path.clone();
                full.0.extend(at.0.iter().cloned());
                self.problem(&full, message);
            }
            if again {
                at.0.pop();
            }
            if ours || at.0.is_empty() || removed.len() >= 64 || !remove(&mut value, &at) {
                break None;
            }
            removed.push(at);
        };
        for u in unknown {
            let mut full = path.clone();
            full.0.extend(u.0);
            self.problem(&full, "unknown key");
        }
        result
    }

    /// Turns collected problems into an error, or returns `value` when there were none.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ConfigError> {
        match value {
            Some(v) if self.problems.is_empty() => Ok(v),
            _ => Err(ConfigError {
                problems: self.problems,
            }),
        }
    }
}

/// The value at `at` inside `value`.
fn value_at<'a>(value: &'a Value, at: &DocPath) -> Option<&'a Value> {
    at.0.iter().try_fold(value, |v, seg| match seg {
        Seg::Key(k) => v.get(k.as_str()),
        Seg::Index(i) => v.get(*i),
    })
}

/// Removes the entry at `at` from `value`; false when there was nothing to remove.
fn remove(value: &mut Value, at: &DocPath) -> bool {
    let Some((last, parents)) = at.0.split_last() else {
        return false;
    };
    let mut v = value;
    for seg in parents {
        let next = match seg {
            Seg::Key(k) => v.get_mut(k.as_str()),
            Seg::Index(i) => v.get_mut(*i),
        };
        match next {
            Some(n) => v = n,
            None => return false,
        }
    }
    match (last, v) {
        (Seg::Key(k), Value::Object(m)) => m.shift_remove(k.as_str()).is_some(),
        // Replacing keeps later indices (and their paths) stable.
        (Seg::Index(i), Value::Array(a)) if *i < a.len() => {
            a[*i] = Value::Null;
            true
        }
        _ => false,
    }
}

fn ignored_path(p: &serde_ignored::Path<'_>) -> DocPath {
    fn walk(p: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
        use serde_ignored::Path as P;
        match p {
            P::Root => {}
            P::Seq { parent, index } => {
                walk(parent, out);
                out.push(Seg::Index(*index));
            }
            P::Map { parent, key } => {
                walk(parent, out);
                out.push(Seg::Key(key.clone()));
            }
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                walk(parent, out)
            }
        }
    }
    let mut segs = Vec::new();
    walk(p, &mut segs);
    DocPath(segs)
}

/// Maps every node path to its 1-based (line, column). Keys map to the key's own position,
/// so "unknown key" and "wrong type" point at the line the user wrote.
fn index_locations(src: &str) -> HashMap<DocPath, (usize, usize)> {
    use serde_saphyr::granit_parser::{Event, Parser};
    enum Kind {
        Seq(usize),
        Map(Option<String>),
    }
    // `pushed`: whether entering this collection added a segment to `path` (not at the root).
    struct Frame {
        kind: Kind,
        pushed: bool,
    }
    // The segment the next node gets: Some(None) at the root, None when it is a mapping key.
    fn next_seg(stack: &mut [Frame]) -> Option<Option<Seg>> {
        match stack.last_mut().map(|f| &mut f.kind) {
            None => Some(None),
            Some(Kind::Seq(i)) => {
                *i += 1;
                Some(Some(Seg::Index(*i - 1)))
            }
            Some(Kind::Map(pending)) => pending.take().map(|k| Some(Seg::Key(k))),
        }
    }
    let mut out = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut path: Vec<Seg> = Vec::new();
    for ev in Parser::new_from_str(src) {
        let Ok((event, span)) = ev else { break };
        let at = (span.start.line(), span.start.col() + 1);
        match event {
            Event::Scalar(text, ..) => match next_seg(&mut stack) {
                Some(seg) => {
                    let mut p = path.clone();
                    p.extend(seg);
                    out.entry(DocPath(p)).or_insert(at);
                }
                None => {
                    if let Some(Frame {
                        kind: Kind::Map(pending),
                        ..
                    }) = stack.last_mut()
                    {
                        *pending = Some(text.to_string());
                    }
                    let mut p = path.clone();
                    p.push(Seg::Key(text.to_string()));
                    out.insert(DocPath(p), at);
                }
            },
            Event::Alias(_) => {
                next_seg(&mut stack);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let seg = next_seg(&mut stack).flatten();
                let pushed = seg.is_some();
                path.extend(seg);
                out.entry(DocPath(path.clone())).or_insert(at);
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    Kind::Seq(0)
                } else {
                    Kind::Map(None)
                };
                stack.push(Frame { kind, pushed });
            }
            Event::SequenceEnd | Event::MappingEnd if stack.pop().is_some_and(|f| f.pushed) => {
                path.pop();
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_point_at_keys_and_items() {
        let src = "a: 1\nb:\n  - x: 2\n  - {y: 3}\n";
        let idx = index_locations(src);
        let p = |s: &[Seg]| DocPath(s.to_vec());
        assert_eq!(idx[&p(&[Seg::Key("a".into())])], (1, 1));
        assert_eq!(idx[&p(&[Seg::Key("b".into()), Seg::Index(0)])], (3, 5));
        assert_eq!(
            idx[&p(&[Seg::Key("b".into()), Seg::Index(1), Seg::Key("y".into())])],
            (4, 6)
        );
    }

    #[test]
    fn field_collects_unknown_keys_and_type_errors() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            n: u32,
        }
        let mut l =
            Loader::from_str(Path::new("f.yaml"), "t:\n  n: 1\n  extra: 2\nu:\n  n: x\n").unwrap();
        let root = l.root.clone();
        let t: Option<T> = l.field(&DocPath::default().key("t"), &root["t"]);
        assert!(t.is_some());
        let u: Option<T> = l.field(&DocPath::default().key("u"), &root["u"]);
        assert!(u.is_none());
        let msgs: Vec<String> = l.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs[0], "f.yaml:3:3: t.extra: unknown key");
        assert!(
            msgs[1].starts_with("f.yaml:5:3: u.n: invalid type"),
            "{}",
            msgs[1]
        );
    }

    #[test]
    // Regression: with `deny_unknown_fields` only the first unknown key was reported, at the
    // line of the mapping holding it.
    fn every_denied_unknown_key_is_reported_at_its_own_line() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            value: String,
        }
        let src = "g:\n  value: x\n  valeu: y\n  extra: z\n";
        let mut l = Loader::from_str(Path::new("f.yaml"), src).unwrap();
        let root = l.root.clone();
        let t: Option<T> = l.field(&DocPath::default().key("g"), &root["g"]);
        assert!(t.is_some());
        let msgs: Vec<String> = l.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            msgs,
            [
                "f.yaml:3:3: g.valeu: unknown field `valeu`, expected `value`",
                "f.yaml:4:3: g.extra: unknown field `extra`, expected `value`",
            ]
        );
    }

    #[test]
    fn every_wrong_type_in_a_section_is_reported() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            a: u32,
            #[serde(default)]
            b: u32,
            #[serde(default)]
            c: bool,
        }
        let mut l = Loader::from_str(Path::new("f.yaml"), "a: x\nb: y\nc: 3\nd: 1\n").unwrap();
        let root = l.root.clone();
        let t: Option<T> = l.field(&DocPath::default(), &root);
        assert!(t.is_none());
        let msgs: Vec<String> = l.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:#?}");
        assert!(
            msgs[0].starts_with("f.yaml:1:1: a: invalid type"),
            "{}",
            msgs[0]
        );
        assert!(
            msgs[1].starts_with("f.yaml:2:1: b: invalid type"),
            "{}",
            msgs[1]
        );
        assert!(
            msgs[2].starts_with("f.yaml:3:1: c: invalid type"),
            "{}",
            msgs[2]
        );
        assert_eq!(msgs[3], "f.yaml:4:1: d: unknown key");
    }

    #[test]
    // Regression: the default budget (250,000 nodes) refused suites of about 20,000 inline
    // tasks. 100,000 tasks of a few variables must fit, with room for a few more each.
    fn yaml_budget_admits_a_hundred_thousand_inline_tasks() {
        use serde_saphyr::granit_parser::{Event, Parser};
        let task = "tasks:\n  - {id: t1, vars: {q: q1, a: a1, b: b1}}\n";
        let nodes = Parser::new_from_str(task)
            .filter_map(Result::ok)
            .filter(|(e, _)| {
                matches!(
                    e,
                    Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..)
                )
            })
            .count();
        // Minus the document's own mapping, `tasks` and its sequence: the nodes of one task.
        let per_task = nodes - 3;
        assert_eq!(per_task, 11);
        assert!(100_000 * per_task * 3 < MAX_YAML_NODES);
        const { assert!(2 * MAX_YAML_NODES < MAX_YAML_EVENTS) };
    }

    #[test]
    // A budget still stands: far too many values fail in words, naming the fix.
    fn budget_breach_is_worded_with_the_fix() {
        // A small budget stands in for the real one, which takes minutes to fill in debug.
        let options = serde_saphyr::options! {
            budget: serde_saphyr::budget! { max_nodes: 10 },
        };
        let err =
            serde_saphyr::from_str_with_options::<Value>("tasks: [1,2,3,4,5,6,7,8,9,10]", options)
                .unwrap_err();
        let msg = yaml_error_message(&err);
        assert!(msg.contains("move the tasks to a tasks_file"), "{msg}");
        assert!(!msg.contains("budget"), "{msg}");
    }
}
