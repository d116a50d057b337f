//! Property test: loading a suite or providers file never panics, whatever its fields hold, and
//! every problem is located (names its file, with a line and column where the YAML has one)
//! and worded without serde or serde-saphyr internals.
//!
//! Inputs are the example suites and providers files with fields mutated: random types, huge
//! numbers, non-finite numbers, empty strings, deep nesting and random keys.

use std::path::{Path, PathBuf};

use costbench::config::ConfigError;
use proptest::prelude::*;
use serde_json::{Value, json};

/// The example files mutated, next to their data (tasks files are read relative to them).
const SUITES: &[&str] = &[
    "suites/quickstart.yaml",
    "suites/support-triage.yaml",
    "suites/math-word-problems.yaml",
    "suites/invoice-extraction.yaml",
    "suites/pii-redaction.yaml",
];
const PROVIDERS: &[&str] = &["suites/quickstart.providers.yaml", "providers.example.yaml"];

/// Wording of serde and serde-saphyr internals that must never reach a user.
const INTERNALS: &[&str] = &[
    "expected struct",
    "tagged enum",
    "DuplicateKeyPolicy",
    "in Options",
    "budget breached",
    "BudgetBreach",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_yaml(rel: &str) -> Value {
    let text = std::fs::read_to_string(root().join(rel)).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// A replacement value: every YAML type, extremes and nesting.
fn wild_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1e20)),
        Just(json!(1e308)),
        Just(json!(-1e-300)),
        Just(json!("")),
        Just(json!("{{ q")),
        Just(json!("{{ missing }}")),
        Just(json!("(")),
        Just(json!("../../etc/passwd")),
        Just(json!("/dev/zero")),
        Just(json!("localhost:8080/v1")),
        "[a-z ]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path (as JSON pointer segments) to a node of `v`.
fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                prefix.push(k.clone());
                paths(c, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                prefix.push(i.to_string());
                paths(c, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// One edit of a document.
#[derive(Debug, Clone)]
enum Edit {
    /// Replace the node at path index `n` (modulo the number of paths) with a value.
    Replace(usize, Value),
    /// Add a random key to the mapping at (or containing) path index `n`.
    AddKey(usize, String, Value),
    /// Remove the node at path index `n`.
    Remove(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), wild_value()).prop_map(|(n, v)| Edit::Replace(n, v)),
        1 => (any::<usize>(), "[a-z_]{1,10}", wild_value()).prop_map(|(n, k, v)| Edit::AddKey(n, k, v)),
        1 => any::<usize>().prop_map(Edit::Remove),
    ]
}

fn apply(doc: &mut Value, e: &Edit) {
    let mut all = Vec::new();
    paths(doc, &mut Vec::new(), &mut all);
    let pick = |n: usize| all[n % all.len()].clone();
    let pointer = |p: &[String]| {
        p.iter()
            .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
            .collect::<String>()
    };
    match e {
        Edit::Replace(n, v) => {
            if let Some(node) = doc.pointer_mut(&pointer(&pick(*n))) {
                *node = v.clone();
            }
        }
        Edit::AddKey(n, k, v) => {
            let mut p = pick(*n);
            loop {
                if let Some(Value::Object(m)) = doc.pointer_mut(&pointer(&p)) {
                    m.insert(k.clone(), v.clone());
                    return;
                }
                if p.pop().is_none() {
                    return;
                }
            }
        }
        Edit::Remove(n) => {
            let mut p = pick(*n);
            let Some(last) = p.pop() else { return };
            match doc.pointer_mut(&pointer(&p)) {
                Some(Value::Object(m)) => {
                    m.shift_remove(&last);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>()
                        && i < a.len()
                    {
                        a.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Writes `doc` as YAML (JSON is YAML) next to the original, so relative tasks files resolve.
fn write_beside(original: &str, doc: &Value, tag: &str) -> PathBuf {
    let orig = root().join(original);
    let dir = orig.parent().unwrap();
    let name = format!(
        ".fuzz-{tag}-{}-{}.yaml",
        std::process::id(),
        orig.file_stem().unwrap().to_string_lossy()
    );
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
    path
}

#[track_caller]
fn assert_located_and_worded(file: &Path, err: &ConfigError) {
    assert!(!err.problems.is_empty());
    for p in &err.problems {
        let text = p.to_string();
        // Problems of a tasks file name that file; every other names the file loaded.
        let own = p.file == file;
        assert!(
            own || p.line_col.is_some(),
            "problem neither in the loaded file nor located: {text}"
        );
        assert!(
            !p.file.as_os_str().is_empty(),
            "problem without a file: {text}"
        );
        for internal in INTERNALS {
            assert!(!text.contains(internal), "`{internal}` in: {text}");
        }
    }
}

proptest! {
    // Each case loads a whole example file; 64 cases of each kind run in a few seconds.
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn loading_a_mutated_suite_never_panics_and_every_problem_is_located(
        which in 0..SUITES.len(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let mut doc = read_yaml(SUITES[which]);
        for e in &edits {
            apply(&mut doc, e);
        }
        let path = write_beside(SUITES[which], &doc, "suite");
        let result = std::panic::catch_unwind(|| costbench::suite::load_suite(&path));
        let _ = std::fs::remove_file(&path);
        match result {
            Err(_) => prop_assert!(false, "load_suite panicked on {}", doc),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => assert_located_and_worded(&path, &e),
        }
    }

    #[test]
    fn loading_a_mutated_providers_file_never_panics_and_every_problem_is_located(
        which in 0..PROVIDERS.len(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let mut doc = read_yaml(PROVIDERS[which]);
        for e in &edits {
            apply(&mut doc, e);
        }
        let path = write_beside(PROVIDERS[which], &doc, "providers");
        let result = std::panic::catch_unwind(|| costbench::providers::load_providers(&path));
        let _ = std::fs::remove_file(&path);
        match result {
            Err(_) => prop_assert!(false, "load_providers panicked on {}", doc),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => assert_located_and_worded(&path, &e),
        }
    }

    #[test]
    fn arbitrary_yaml_text_never_panics(text in "[a-z:{}\\[\\],&*!|>'\" \\n-]{0,200}") {
        let path = std::env::temp_dir().join(format!(".fuzz-text-{}.yaml", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let suite = std::panic::catch_unwind(|| costbench::suite::load_suite(&path));
        let provs = std::panic::catch_unwind(|| costbench::providers::load_providers(&path));
        let _ = std::fs::remove_file(&path);
        prop_assert!(suite.is_ok() && provs.is_ok(), "panicked on {:?}", text);
        if let Ok(Err(e)) = suite {
            assert_located_and_worded(&path, &e);
        }
        if let Ok(Err(e)) = provs {
            assert_located_and_worded(&path, &e);
        }
    }
}
