//! The HTML report: a snapshot of its summary section (the quickstart replayed from its
//! cassette), escaping of planted markup checked in the file and in a real browser (headless
//! Debian chromium), `--compare RUN`, and the formats that have no HTML page.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use common::*;

/// The part of the page between the summary markers.
fn summary(html: &str) -> &str {
    let start = html.find("<!-- summary:start -->").expect("summary start");
    let end = html.find("<!-- summary:end -->").expect("summary end");
    &html[start..end]
}

fn html_report(ws: &Workspace, extra: &[&str]) -> String {
    let out = ws.path("report.html");
    let o = Out::of(
        ws.cmd()
            .args(["report", "--format", "html", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap(),
    );
    o.assert_code(0);
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn html_summary_of_the_quickstart() {
    let ws = Workspace::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite = root.join("suites/quickstart.yaml");
    let providers = root.join("suites/quickstart.providers.yaml");
    let cassette = root.join("suites/cassettes/quickstart.jsonl");
    let cassette = cassette.to_str().unwrap();
    ws.run(
        &[&suite],
        &providers,
        &["--cache", "replay", "--cassette", cassette],
    )
    .assert_code(0);
    let html = html_report(&ws, &[]);
    insta::with_settings!({filters => vec![(r"started [0-9T:.\-]+Z", "started [timestamp]")]}, {
        insta::assert_snapshot!(summary(&html));
    });
}

/// Markup a model might answer with: a script, an image whose error handler runs code, and a
/// `javascript:` link. Each would change the title and add an element if it ran.
const SCRIPT: &str = "<script>document.title='PWNED';document.body.insertAdjacentHTML('beforeend','<b id=pwned>1</b>')</script>";
const IMG: &str = "<img src=x onerror=\"document.title='PWNED';document.body.insertAdjacentHTML('beforeend','<b id=pwned>2</b>')\">";
const LINK: &str = "<a id=planted href=\"javascript:document.title='PWNED'\">click</a>";

/// A run of two providers over four tasks: `planted` answers with markup (accepted on t1 and
/// t2, whose answers also hold "yes"), `plain` answers "yes" to everything; a task variable
/// holds markup too.
fn planted_run(ws: &Workspace) {
    let answers = [
        ("t1", format!("yes {SCRIPT}")),
        ("t2", format!("yes {IMG}")),
        ("t3", LINK.to_string()),
        (
            "t4",
            "</pre></details><script>document.title='PWNED'</script>".to_string(),
        ),
    ];
    let refs: Vec<(&str, &str)> = answers.iter().map(|(t, a)| (*t, a.as_str())).collect();
    let planted = ScriptServer::start(answer_with(&refs));
    let plain = ScriptServer::start(answer_with(&[
        ("t1", "yes"),
        ("t2", "yes"),
        ("t3", "yes"),
        ("t4", "yes"),
    ]));
    let mut suite = suite_yaml(
        "s",
        &[("t1", "yes"), ("t2", "yes"), ("t3", "yes"), ("t4", "yes")],
    );
    // A task variable the prompt does not use, holding markup: shown in the drill-down.
    suite = suite.replace(
        "{id: t1, vars: {q: t1,",
        "{id: t1, vars: {note: \"<script>document.title='PWNED'</script>\", q: t1,",
    );
    let suite = ws.write("suite.yaml", &suite);
    let providers = ws.write(
        "providers.yaml",
        &providers_yaml(&[
            Provider::new("planted", &planted.base_url()),
            Provider::new("plain", &plain.base_url()),
        ]),
    );
    ws.run(&[&suite], &providers, &[]).assert_code(0);
}

/// Chromium, when installed.
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Runs headless chromium on `page` with the flags that work as root on a closed network.
fn headless(chromium: &Path, profile: &Path, args: &[&str], page: &Path) -> std::process::Output {
    Process::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("start chromium")
}

#[test]
fn planted_markup_is_escaped_and_does_not_run_in_chromium() {
    let ws = Workspace::new();
    planted_run(&ws);
    let report = ws.report(None);
    let html = html_report(&ws, &[]);

    // In the file: the planted markup appears only escaped.
    for planted in [SCRIPT, IMG, LINK, "<script>document.title='PWNED'</script>"] {
        assert!(!html.contains(planted), "unescaped: {planted}");
    }
    assert!(html.contains("&lt;script&gt;document.title=&#x27;PWNED&#x27;"));
    assert!(html.contains("&lt;img src=x onerror="));
    assert!(html.contains("&lt;a id=planted href=&quot;javascript:"));
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));

    let Some(chromium) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "chromium is not installed, and CI must run the browser test (.ci/run installs it)"
            );
        }
        eprintln!("SKIPPED the browser half: chromium is not installed (apt-get install chromium)");
        return;
    };
    let page = ws.path("report.html");
    let dom = headless(&chromium, &ws.path("profile1"), &["--dump-dom"], &page);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report.dom.html");
    std::fs::write(&kept, &dom).unwrap();

    // The page's own script ran (so scripts do run here), and none of the planted ones did.
    assert!(
        dom.contains("data-js=\"on\""),
        "the page's script did not run"
    );
    assert!(
        dom.contains("showing 4 of 4 samples"),
        "the sample count is missing"
    );
    assert!(!dom.contains("PWNED</title>") && !dom.contains("id=\"pwned\""));
    assert!(dom.contains("<title>costbench run 1 ("));
    // The page has no images and no links of its own: any would be planted markup.
    assert!(!dom.contains("<img") && !dom.contains("<a "));
    assert!(dom.contains("&lt;a id=planted href=\"javascript:"));

    // The summary table's values, as the browser holds them, are the report's figures.
    for (provider, accepted) in [("planted", "2/4"), ("plain", "4/4")] {
        let row = row(&report, provider);
        let a = &row["acceptance"];
        let pct = |k: &str| format!("{:.1}%", a[k].as_f64().unwrap() * 100.0);
        let tr = dom
            .split(&format!("<tr data-provider=\"{provider}\">"))
            .nth(1)
            .and_then(|s| s.split("</tr>").next())
            .unwrap_or_else(|| panic!("no row for {provider} in the DOM"));
        assert!(
            tr.contains(&format!("data-k=\"accepted\">{accepted}<")),
            "{tr}"
        );
        let acceptance = format!("{} [{} – {}]", pct("rate"), pct("low"), pct("high"));
        assert!(tr.contains(&acceptance), "{acceptance} not in {tr}");
    }

    // A screenshot, kept where it can be looked at.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report.png");
    let _ = std::fs::remove_file(&shot);
    let out = headless(
        &chromium,
        &ws.path("profile2"),
        &[
            "--window-size=1280,1600",
            &format!("--screenshot={}", shot.display()),
        ],
        &page,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    eprintln!("screenshot: {}", shot.display());
}

#[test]
fn compare_shows_the_other_runs_figures_and_the_paired_verdict() {
    let ws = Workspace::new();
    let tasks: Vec<(String, &str)> = (0..30).map(|i| (format!("t{i}"), "yes")).collect();
    let refs: Vec<(&str, &str)> = tasks.iter().map(|(t, a)| (t.as_str(), *a)).collect();
    let srv = ScriptServer::start(answer_with(&refs));
    let (suite, providers) = ws.suite_and_provider(&refs, &srv.base_url());
    ws.run(&[&suite], &providers, &[]).assert_code(0);
    // Run 2: the same provider now gets a third of the tasks wrong.
    let worse: Vec<(&str, &str)> = refs
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (*t, if i % 3 == 0 { "no" } else { "yes" }))
        .collect();
    srv.set_script(answer_with(&worse));
    ws.run(&[&suite], &providers, &["--new", "--cache", "off"])
        .assert_code(0);
    let html = html_report(&ws, &["--run", "2", "--compare", "1"]);
    let s = summary(&html);
    assert!(s.contains("vs run 1 (paired)"), "{s}");
    // Run 2 accepts 20/30, run 1 accepted 30/30: a drop of 33 points is worse at any margin.
    assert!(s.contains("data-k=\"accepted\">20&#x2f;30<"), "{s}");
    assert!(s.contains("<span class=\"was\">100.0% ["), "{s}");
    assert!(s.contains("<b class=\"no\">worse</b>"), "{s}");
    assert!(s.contains("30 paired"), "{s}");
}

#[test]
fn compare_without_html_and_html_where_there_is_none_are_usage_errors() {
    let ws = Workspace::new();
    let srv = ScriptServer::start(answer_with(&[("t1", "yes")]));
    let (suite, providers) = ws.suite_and_provider(&[("t1", "yes")], &srv.base_url());
    ws.run(&[&suite], &providers, &[]).assert_code(0);
    let out = Out::of(
        ws.cmd()
            .args(["report", "--compare", "1"])
            .output()
            .unwrap(),
    );
    out.assert_code(2);
    assert!(out.stderr.contains("add --format html"), "{}", out.stderr);
    let out = Out::of(
        ws.cmd()
            .args([
                "compare",
                "--incumbent",
                "p",
                "--candidate",
                "p",
                "--runs",
                "1",
                "1",
            ])
            .args(["--format", "html"])
            .output()
            .unwrap(),
    );
    out.assert_code(2);
    assert!(out.stderr.contains("has no HTML output"), "{}", out.stderr);
    let out = Out::of(
        ws.cmd()
            .args(["report", "--format", "html", "--compare", "7"])
            .output()
            .unwrap(),
    );
    out.assert_code(2);
}
