//! The SQL schema, one migration a version. `PRAGMA user_version` says which have run.

/// Migrations in order; the database's `user_version` is how many have been applied.
pub(super) const MIGRATIONS: &[&str] = &[
    // v1
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('application', 'costbench');
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        cache_mode TEXT NOT NULL,
        plan TEXT NOT NULL
    );
    CREATE INDEX runs_key ON runs(key);
    CREATE TABLE tasks (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        suite TEXT NOT NULL,
        idx INTEGER NOT NULL,
        task_id TEXT NOT NULL,
        vars TEXT NOT NULL,
        PRIMARY KEY (run_id, suite, task_id)
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        suite TEXT NOT NULL,
        provider TEXT NOT NULL,
        task_id TEXT NOT NULL,
        repeat INTEGER NOT NULL,
        try INTEGER NOT NULL,
        final INTEGER NOT NULL,
        request_hash TEXT NOT NULL,
        started_at TEXT NOT NULL,
        latency_ms REAL NOT NULL,
        http_status INTEGER,
        error_kind TEXT,
        error_message TEXT,
        answered INTEGER NOT NULL,
        replayed INTEGER NOT NULL,
        usage_known INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        cache_write_1h_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER NOT NULL,
        cost_femto INTEGER,
        spent_femto INTEGER,
        finish_reason TEXT,
        output TEXT
    );
    CREATE INDEX attempts_slot ON attempts(run_id, suite, provider, task_id, repeat);
    CREATE TABLE grades (
        run_id INTEGER NOT NULL,
        suite TEXT NOT NULL,
        provider TEXT NOT NULL,
        task_id TEXT NOT NULL,
        repeat INTEGER NOT NULL,
        attempt_id INTEGER NOT NULL,
        accepted INTEGER NOT NULL,
        verdicts TEXT NOT NULL,
        graded_at TEXT NOT NULL,
        PRIMARY KEY (run_id, suite, provider, task_id, repeat)
    );
    CREATE TABLE cache (
        key TEXT PRIMARY KEY,
        protocol TEXT NOT NULL,
        base_url TEXT NOT NULL,
        model TEXT NOT NULL,
        request TEXT NOT NULL,
        response TEXT NOT NULL,
        latency_ms REAL,
        created_at TEXT NOT NULL
    );
    "#,
    // v2: typed delivery of each attempt, bounds for unknown costs, money that cannot wrap,
    // three-way grade status, and the index the report's per-outcome scan reads in order.
    r#"
    ALTER TABLE attempts ADD COLUMN delivery TEXT;
    ALTER TABLE attempts ADD COLUMN cost_big TEXT;
    ALTER TABLE attempts ADD COLUMN spent_big TEXT;
    ALTER TABLE attempts ADD COLUMN cost_max_femto TEXT;
    ALTER TABLE attempts ADD COLUMN est_prompt_tokens INTEGER;
    ALTER TABLE grades ADD COLUMN status TEXT;
    ALTER TABLE grades ADD COLUMN error TEXT;
    DROP INDEX attempts_slot;
    CREATE INDEX attempts_slot ON attempts(run_id, suite, provider, task_id, repeat, try);
    "#,
    // v3: human labels, one verdict per outcome and rater (re-importing a file replaces a
    // rater's verdict instead of adding a second one).
    r#"
    CREATE TABLE labels (
        run_id INTEGER NOT NULL,
        suite TEXT NOT NULL,
        provider TEXT NOT NULL,
        task_id TEXT NOT NULL,
        repeat INTEGER NOT NULL,
        rater TEXT NOT NULL,
        accepted INTEGER NOT NULL,
        note TEXT,
        source TEXT NOT NULL,
        labelled_at TEXT NOT NULL,
        PRIMARY KEY (run_id, suite, provider, task_id, repeat, rater)
    );
    "#,
    // v4: time to first token of streamed calls (NULL for every call that was not streamed).
    r#"
    ALTER TABLE attempts ADD COLUMN ttft_ms REAL;
    "#,
    // v5: LLM-judge grading. Each judge HTTP try (or replay) is a row of `judge_calls`; a
    // grade keeps its judges' cost (femto-dollars as text, exact; NULL when the suite has no
    // judge), how many of its judge calls had an unknown cost, and the fingerprint of the
    // grader set that produced it, whose kinds and config fingerprints `grader_sets` holds.
    r#"
    ALTER TABLE grades ADD COLUMN judge_cost TEXT;
    ALTER TABLE grades ADD COLUMN judge_unknown INTEGER;
    ALTER TABLE grades ADD COLUMN grader_set TEXT;
    CREATE TABLE grader_sets (
        fingerprint TEXT PRIMARY KEY,
        graders TEXT NOT NULL
    );
    CREATE TABLE judge_calls (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        attempt_id INTEGER NOT NULL,
        grader INTEGER NOT NULL,
        judge TEXT NOT NULL,
        sample INTEGER NOT NULL,
        try INTEGER NOT NULL,
        request_hash TEXT NOT NULL,
        started_at TEXT NOT NULL,
        latency_ms REAL NOT NULL,
        http_status INTEGER,
        error_kind TEXT,
        error_message TEXT,
        answered INTEGER NOT NULL,
        replayed INTEGER NOT NULL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        cost TEXT,
        spent TEXT,
        output TEXT
    );
    CREATE INDEX judge_calls_attempt ON judge_calls(run_id, attempt_id);
    "#,
    // v6: provider batch APIs. Every batch submitted (or about to be) and the slot behind each
    // of its requests, so a restarted run polls what it submitted instead of paying again.
    r#"
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        provider TEXT NOT NULL,
        api TEXT NOT NULL,
        remote_id TEXT,
        status TEXT NOT NULL,
        open INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        submitted_at TEXT,
        ended_at TEXT,
        detail TEXT
    );
    CREATE INDEX batches_run ON batches(run_id, provider, open);
    CREATE TABLE batch_items (
        batch_id INTEGER NOT NULL REFERENCES batches(id),
        idx INTEGER NOT NULL,
        suite TEXT NOT NULL,
        task_id TEXT NOT NULL,
        repeat INTEGER NOT NULL,
        try INTEGER NOT NULL,
        request_hash TEXT NOT NULL,
        cost_max_femto TEXT,
        est_prompt_tokens INTEGER,
        request TEXT NOT NULL,
        PRIMARY KEY (batch_id, idx)
    ) WITHOUT ROWID;
    "#,
];
