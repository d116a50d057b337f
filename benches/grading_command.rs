//! Subprocess grading benchmark on N outputs in parallel on rayon, as `grade_run` does; prints
//! outputs/s for:
//! - `command` one-shot: graders/exact_answer.py, one process per output, started through its
//!   `#!/usr/bin/env python3` line (whatever `python3` is first on PATH: a pyenv shim here);
//! - `command` one-shot with the interpreter named directly (`program: <real python3>`,
//!   `args: [exact_answer.py]`), to show what the shim costs;
//! - `command` persistent: the same script, one process per worker over JSON Lines;
//! - `code`: one `python3 -I` run per output.
//!
//! Run: `cargo bench --bench grading_command` or `... -- 10000`; words after the count pick the
//! cases whose label contains one of them (`-- 10000 persistent`). Needs python3. It is a
//! benchmark, not a test: it prints figures and asserts nothing.

use std::path::{Path, PathBuf};
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
    // Persistent workers are part of the cost: stopping them (EOF, exit, reap) is timed too.
    grader.stop_workers();
    let secs = t0.elapsed().as_secs_f64();
    let accepted = graded.iter().filter(|g| g.accepted).count();
    let errors = graded.iter().filter(|g| g.error.is_some()).count();
    println!(
        "{label}: {n} outputs in {secs:.2}s, {:.0} outputs/s ({accepted} accepted, {errors} grader errors), {} threads",
        n as f64 / secs,
        rayon::current_num_threads()
    );
}

/// The real interpreter behind `python3` (not a shim), if one of the usual paths has it.
fn real_python() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.is_file().then_some(p)
}

fn command(repo: &Path, json: serde_json::Value) -> CompiledGrader {
    let spec: GraderSpec = serde_json::from_value(json).unwrap();
    spec.compile_in(repo).unwrap()
}

fn main() {
    let mut n = 1_000;
    let mut picks = Vec::new();
    for a in std::env::args().skip(1).filter(|a| !a.starts_with('-')) {
        match a.parse() {
            Ok(k) => n = k,
            Err(_) => picks.push(a),
        }
    }
    let picked = |label: &str| picks.is_empty() || picks.iter().any(|p| label.contains(p.as_str()));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = repo.join("graders/exact_answer.py");
    let vars: Vars = serde_json::from_str(
        r#"{"city": "Paris", "entry_point": "add",
            "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}"#,
    )
    .unwrap();
    let answers = ["Paris", "Lyon"];
    let label = "command one-shot (exact_answer.py via #!/usr/bin/env python3)";
    if picked(label) {
        let g = command(
            repo,
            serde_json::json!({"type": "command", "program": "graders/exact_answer.py",
                               "expected_var": "city"}),
        );
        time(label, &g, &answers, &vars, n);
    }
    if let Some(python) = real_python() {
        let label = format!("command one-shot real-interpreter ({})", python.display());
        if picked(&label) {
            let g = command(
                repo,
                serde_json::json!({"type": "command", "program": python,
                                   "args": [script], "expected_var": "city"}),
            );
            time(&label, &g, &answers, &vars, n);
        }
    }
    let label = "command persistent (exact_answer.py, one process per worker)";
    if picked(label) {
        let g = command(
            repo,
            serde_json::json!({"type": "command", "program": "graders/exact_answer.py",
                               "expected_var": "city", "persistent": true}),
        );
        time(label, &g, &answers, &vars, n);
    }
    let label = "code (python3 -I)";
    if picked(label) {
        let spec: GraderSpec = serde_json::from_str(r#"{"type": "code"}"#).unwrap();
        let code = spec.compile().unwrap();
        let outputs = [
            "```python\ndef add(a, b):\n    return a + b\n```",
            "def add(a, b):\n    return a - b\n",
        ];
        time(label, &code, &outputs, &vars, n);
    }
}
