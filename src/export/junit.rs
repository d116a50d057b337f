//! The gate as JUnit XML (quick-junit): one test case per check, so CI shows each suite ×
//! provider × metric. A FAIL is a `failure` whose message carries the figures; an INCONCLUSIVE
//! check is `skipped` with its message (it does not fail the build, and stays visible); a PASS
//! is a success with the figures on its standard output.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::gate::{message, name};
use crate::gate::{GateReport, Status};

/// The JUnit XML of a gate.
pub fn render(g: &GateReport) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("costbench gate");
    let mut suite = TestSuite::new(format!(
        "costbench gate: run {} against the baseline of run {}",
        g.run, g.baseline_run
    ));
    for c in &g.checks {
        let msg = message(c, g.confidence);
        let status = match c.status {
            Status::Pass => TestCaseStatus::success(),
            Status::Fail => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("FAIL: {msg}")).set_type("regression");
                s
            }
            Status::Inconclusive => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(format!("INCONCLUSIVE: {msg}"))
                    .set_type("inconclusive");
                s
            }
        };
        let mut case = TestCase::new(name(c), status);
        case.set_classname(format!("costbench.gate.{}", c.suite));
        if c.status == Status::Pass {
            case.set_system_out(format!("PASS: {msg}"));
        }
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    report.to_string()
}
