//! Grading benchmark: the seven deterministic grader kinds on N outputs (default 100,000) in
//! parallel on rayon, as `grade_run` does after a run. Prints outputs/s.
//!
//! Run: `cargo bench --bench grading` or `cargo bench --bench grading -- 1000000`.
//! It is a benchmark, not a test: it prints figures and asserts nothing.

use std::time::Instant;

use costbench::grade::{CompiledGrader, GradeInput, GraderSpec, Vars, grade_all};

const GRADERS: &str = r#"[
  {"type": "equals", "value": "{{ label }}", "normalize": ["trim", "lowercase"]},
  {"type": "contains", "value": "refund"},
  {"type": "contains-any", "values": ["yes", "yeah"], "normalize": ["lowercase"]},
  {"type": "contains-all", "values": ["{{ city }}", "{{ date }}"]},
  {"type": "regex", "pattern": "^(billing|bug|account)$"},
  {"type": "number", "value": "{{ answer }}", "tolerance": 0.01},
  {"type": "json", "required": ["name", "total"], "expect": {"/total": "{{ total }}", "/currency": "EUR"}}
]"#;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let specs: Vec<GraderSpec> = serde_json::from_str(GRADERS).unwrap();
    let graders: Vec<CompiledGrader> = specs.iter().map(|s| s.compile().unwrap()).collect();
    let vars: Vars = serde_json::from_str(
        r#"{"label": "Bug", "city": "Paris", "date": "May 3", "answer": 42, "total": "12.5"}"#,
    )
    .unwrap();
    let outputs = [
        "```json\n{\"name\": \"refund yes\", \"total\": 12.5, \"currency\": \"EUR\", \"city\": \"Paris May 3\"}\n```",
        "bug",
        "The answer is 42, refund: yes, Paris May 3.",
    ];
    let items: Vec<GradeInput<'_>> = (0..n)
        .map(|i| GradeInput {
            output: outputs[i % outputs.len()],
            vars: &vars,
            provider: "bench",
        })
        .collect();
    let t0 = Instant::now();
    let graded = grade_all(&graders, &items);
    let secs = t0.elapsed().as_secs_f64();
    let accepted = graded.iter().filter(|g| g.accepted).count();
    println!(
        "{n} outputs × {} graders: {secs:.2}s, {:.0} outputs/s ({accepted} accepted), {} threads",
        graders.len(),
        n as f64 / secs,
        rayon::current_num_threads()
    );
}
