//! Runs stored by an earlier costbench keep reporting: the schema migrates in place and every
//! figure the old build reported is reported again, unchanged.

mod common;

use common::*;
use serde_json::Value;

/// Every key of `old` is in `new` with the same value (new keys may have been added).
fn assert_superset(old: &Value, new: &Value, path: &str) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in o {
                let p = format!("{path}.{k}");
                let nv = n.get(k).unwrap_or_else(|| panic!("{p} is gone"));
                assert_superset(v, nv, &p);
            }
        }
        (Value::Array(o), Value::Array(n)) => {
            assert_eq!(o.len(), n.len(), "{path}: length");
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                assert_superset(a, b, &format!("{path}[{i}]"));
            }
        }
        (a, b) => assert_eq!(a, b, "{path}"),
    }
}

/// tests/fixtures/v1-quickstart.db was written by the first release (schema version 1,
/// commit 8206395) replaying the quickstart cassette; v1-quickstart-report.json is what that
/// build's `report --format json` printed for it.
#[test]
fn a_run_stored_by_the_first_release_reports_the_same_figures() {
    let ws = Workspace::new();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fixtures.join("v1-quickstart.db"), ws.db()).unwrap();
    let mut old: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("v1-quickstart-report.json")).unwrap(),
    )
    .unwrap();
    let new = ws.report(None);
    // The interval's method changed on purpose (issue 8: the log-scale studentized bootstrap
    // replaced BCa, which under-covered); its bounds are checked for sense, not against the old build.
    // Both draw the same resamples, so the count of resamples with no acceptance is unchanged.
    for (o, n) in old["rows"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(new["rows"].as_array().unwrap())
    {
        let ci = o["cost_per_accepted_ci"].as_object_mut().unwrap();
        for k in ["low", "high", "method"] {
            ci.remove(k);
        }
        let n_ci = &n["cost_per_accepted_ci"];
        assert_eq!(n_ci["method"], "studentized-bootstrap-log");
        let est = n["cost_per_accepted_usd"].as_f64().unwrap();
        assert!(n_ci["low"].as_f64().unwrap() <= est, "{n_ci}");
        assert!(n_ci["high"].as_f64().is_none_or(|h| h >= est), "{n_ci}");
    }
    assert_superset(&old, &new, "report");
    let version: i64 = rusqlite::Connection::open(ws.db())
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        version,
        costbench::store::SCHEMA_VERSION,
        "migrated in place"
    );
}

/// A database that still needs migrating cannot be migrated without write access; the
/// read-only open says so instead of failing on a missing column.
#[test]
fn an_unmigrated_database_opened_read_only_names_its_schema_version() {
    let ws = Workspace::new();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fixtures.join("v1-quickstart.db"), ws.db()).unwrap();
    let db = costbench::store::Store::open_read_only(&ws.db());
    let e = db.err().expect("v1 needs an upgrade").to_string();
    assert!(
        e.contains("schema version 1")
            && e.contains(&format!(
                "upgrading to {}",
                costbench::store::SCHEMA_VERSION
            )),
        "{e}"
    );
}
