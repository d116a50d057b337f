//! Subprocess grading benchmark: the `command` grader (graders/exact_answer.py, one python3
//! process per output) and the `code` grader (one python3 run per output) on N outputs in
//! parallel on rayon, as `grade_run` does. Prints outputs/s.
//!
//! Run: `cargo bench --bench grading_command` or `... -- 10000`. Needs python3. It is a
//! benchmark, not a test: it prints figures and asserts nothing.

use std::path::Path;
use std::time::Instant;

use costbench::grade::{CompiledGrader, GradeInput, GraderSpec, Vars, grade_all};

fn time(label: &str, grader: &CompiledGrader, outputs: &[&str], vars: &Vars, n: usize) {
    let items: Vec<GradeInput<'_>> = (0..n)
        .map(|i| GradeInput {
            output: outputs[i % outputs.len()],
            vars,
            provider: "bench",
        })
        .collect();
    let t0 = Instant::now();
    let graded = grade_all(std::slice::from_ref(grader), &items);
    let secs = t0.elapsed().as_secs_f64();
    let accepted = graded.iter().filter(|g| g.accepted).count();
    let errors = graded.iter().filter(|g| g.error.is_some()).count();
    println!(
        "{label}: {n} outputs in {secs:.2}s, {:.0} outputs/s ({accepted} accepted, {errors} grader errors), {} threads",
        n as f64 / secs,
        rayon::current_num_threads()
    );
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec: GraderSpec = serde_json::from_str(
        r#"{"type": "command", "program": "graders/exact_answer.py", "expected_var": "city"}"#,
    )
    .unwrap();
    let command = spec.compile_in(repo).unwrap();
    let vars: Vars = serde_json::from_str(
        r#"{"city": "Paris", "entry_point": "add",
            "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}"#,
    )
    .unwrap();
    time(
        "command (exact_answer.py)",
        &command,
        &["Paris", "Lyon"],
        &vars,
        n,
    );
    let spec: GraderSpec = serde_json::from_str(r#"{"type": "code"}"#).unwrap();
    let code = spec.compile().unwrap();
    let outputs = [
        "```python\ndef add(a, b):\n    return a + b\n```",
        "def add(a, b):\n    return a - b\n",
    ];
    time("code (python3 -I)", &code, &outputs, &vars, n);
}
