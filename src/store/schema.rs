//! The database schema as a list of migrations, applied in order and tracked with `PRAGMA user_version`.
//!
//! A migration is never edited once released: a change is a new entry at the end. The number of entries is
//! the schema version this binary knows; a database with a higher `user_version` was written by a newer
//! toolwarden and is refused rather than altered.

/// `PRAGMA application_id` of a toolwarden catalogue ("TWCT"), so a foreign SQLite file is recognised.
pub(crate) const APPLICATION_ID: i32 = 0x5457_4354;

/// Each entry moves the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- One row per server name. `spec` is the redacted ServerSpec (JSON), `info` what it said at initialize.
CREATE TABLE servers (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    spec       TEXT,
    info       TEXT,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL
) STRICT;

-- Every listing attempt, successful or not.
CREATE TABLE crawl_runs (
    id               INTEGER PRIMARY KEY,
    server_id        INTEGER NOT NULL REFERENCES servers(id),
    at               TEXT NOT NULL,
    outcome          TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
    error            TEXT,
    protocol_version TEXT,
    server_info      TEXT,
    tools            INTEGER,
    added            INTEGER,
    removed          INTEGER,
    changed          INTEGER
) STRICT;
CREATE INDEX crawl_runs_server ON crawl_runs(server_id, id);

-- Tool definitions by content: the canonical JSON of a tool, keyed by its sha256. (Rows are large, so these
-- tables keep a rowid: SQLite stores big rows badly in WITHOUT ROWID b-trees.)
CREATE TABLE definitions (
    fingerprint TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    body        TEXT NOT NULL,
    first_seen  TEXT NOT NULL
) STRICT;

-- The current tool set of every server.
CREATE TABLE current_tools (
    server_id   INTEGER NOT NULL REFERENCES servers(id),
    name        TEXT NOT NULL,
    fingerprint TEXT NOT NULL REFERENCES definitions(fingerprint),
    since       TEXT NOT NULL,
    PRIMARY KEY (server_id, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX current_tools_fingerprint ON current_tools(fingerprint);

-- The history: every time a tool appeared, changed definition or disappeared.
CREATE TABLE tool_events (
    id          INTEGER PRIMARY KEY,
    server_id   INTEGER NOT NULL REFERENCES servers(id),
    name        TEXT NOT NULL,
    run_id      INTEGER NOT NULL REFERENCES crawl_runs(id),
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('added', 'changed', 'removed')),
    fingerprint TEXT REFERENCES definitions(fingerprint),
    previous    TEXT REFERENCES definitions(fingerprint)
) STRICT;
CREATE INDEX tool_events_tool ON tool_events(server_id, name, id);

-- The classification of a definition by the ruleset `ruleset` (one per definition: the latest).
CREATE TABLE classifications (
    fingerprint TEXT PRIMARY KEY REFERENCES definitions(fingerprint),
    ruleset     TEXT NOT NULL,
    category    TEXT NOT NULL,
    risk        TEXT NOT NULL,
    confidence  REAL NOT NULL,
    evidence    TEXT NOT NULL,
    factors     TEXT NOT NULL,
    findings    TEXT NOT NULL,
    classified  TEXT NOT NULL
) STRICT;

-- Security findings about a definition, queryable on their own (also kept as JSON with the classification).
CREATE TABLE findings (
    fingerprint TEXT NOT NULL REFERENCES definitions(fingerprint),
    seq         INTEGER NOT NULL,
    id          TEXT NOT NULL,
    severity    TEXT NOT NULL,
    text        TEXT NOT NULL,
    PRIMARY KEY (fingerprint, seq)
) STRICT, WITHOUT ROWID;
"#,
    // 2: pins, the definitions a person approved (`toolwarden pin SERVER`).
    r#"
-- One row per pinned server: when it was pinned (a server pinned with no tools still has a pin).
CREATE TABLE pinned_servers (
    server_id INTEGER PRIMARY KEY REFERENCES servers(id),
    pinned_at TEXT NOT NULL
) STRICT;

-- The approved definition of every tool of a pinned server.
CREATE TABLE pins (
    server_id   INTEGER NOT NULL REFERENCES pinned_servers(server_id),
    name        TEXT NOT NULL,
    fingerprint TEXT NOT NULL REFERENCES definitions(fingerprint),
    PRIMARY KEY (server_id, name)
) STRICT, WITHOUT ROWID;

-- Finding tools of the same name on other servers (shadowing) without scanning every tool.
CREATE INDEX current_tools_name ON current_tools(name);
"#,
    // 3: the proxy's approval queue and its audit trail.
    r#"
-- Calls waiting for (or decided by) a person. `owner_pid` is the proxy process that waits for the row, so a
-- proxy starting later can tell rows nobody waits for any more (they become `expired`, never `approved`).
CREATE TABLE approvals (
    id               INTEGER PRIMARY KEY,
    tool             TEXT NOT NULL,
    arguments        TEXT NOT NULL,
    args_sha256      TEXT NOT NULL,
    reason           TEXT,
    rule             TEXT,
    session          TEXT NOT NULL,
    identity         TEXT,
    requested_at     TEXT NOT NULL,
    owner_pid        INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'timed_out')),
    decided_at       TEXT,
    decided_by       TEXT,
    decision_reason  TEXT,
    approve_for_secs INTEGER,
    approved_until   TEXT
) STRICT;
CREATE INDEX approvals_status ON approvals(status, id);
CREATE INDEX approvals_window ON approvals(tool, args_sha256, approved_until);

-- One row per proxy decision (the same records as the JSONL audit log).
CREATE TABLE audit (
    id                  INTEGER PRIMARY KEY,
    time                TEXT NOT NULL,
    session             TEXT NOT NULL,
    identity            TEXT,
    tool                TEXT NOT NULL,
    args_sha256         TEXT NOT NULL,
    args                TEXT,
    decision            TEXT NOT NULL,
    rule                TEXT,
    reason              TEXT,
    outcome             TEXT,
    upstream_latency_us INTEGER,
    decided_by          TEXT
) STRICT;
CREATE INDEX audit_time ON audit(time);
CREATE INDEX audit_tool ON audit(tool, time);
"#,
    // 4: rate-limit and spend counters of `toolwarden proxy --state sqlite`.
    r#"
-- One row per counter (`name|scope`) and window bucket (its start, Unix seconds). `expires` (Unix seconds) is
-- when the row may go: the end of its window plus slack, so a late refund still finds it.
CREATE TABLE counters (
    key     TEXT NOT NULL,
    bucket  INTEGER NOT NULL,
    value   REAL NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (key, bucket)
) STRICT, WITHOUT ROWID;
CREATE INDEX counters_expires ON counters(expires);
"#,
    // 5: tool counts by server, category and risk, kept by triggers, so `stats` reads one small table instead of
    // joining every current tool with its classification (seconds at a million tools).
    r#"
CREATE TABLE risk_counts (
    server_id INTEGER NOT NULL REFERENCES servers(id),
    category  TEXT NOT NULL,
    risk      TEXT NOT NULL,
    tools     INTEGER NOT NULL,
    PRIMARY KEY (server_id, category, risk)
) STRICT, WITHOUT ROWID;
INSERT INTO risk_counts(server_id, category, risk, tools)
    SELECT t.server_id, c.category, c.risk, count(*) FROM current_tools t
    JOIN classifications c ON c.fingerprint = t.fingerprint GROUP BY 1, 2, 3;
-- A tool's classification is written before the tool becomes current (write.rs), so the triggers find it.
CREATE TRIGGER risk_counts_add AFTER INSERT ON current_tools BEGIN
    INSERT INTO risk_counts(server_id, category, risk, tools)
        SELECT NEW.server_id, category, risk, 1 FROM classifications WHERE fingerprint = NEW.fingerprint
        ON CONFLICT(server_id, category, risk) DO UPDATE SET tools = tools + 1;
END;
CREATE TRIGGER risk_counts_remove AFTER DELETE ON current_tools BEGIN
    UPDATE risk_counts SET tools = tools - 1 WHERE server_id = OLD.server_id
        AND (category, risk) = (SELECT category, risk FROM classifications WHERE fingerprint = OLD.fingerprint);
END;
CREATE TRIGGER risk_counts_change AFTER UPDATE OF fingerprint ON current_tools
    WHEN OLD.fingerprint <> NEW.fingerprint BEGIN
    UPDATE risk_counts SET tools = tools - 1 WHERE server_id = OLD.server_id
        AND (category, risk) = (SELECT category, risk FROM classifications WHERE fingerprint = OLD.fingerprint);
    INSERT INTO risk_counts(server_id, category, risk, tools)
        SELECT NEW.server_id, category, risk, 1 FROM classifications WHERE fingerprint = NEW.fingerprint
        ON CONFLICT(server_id, category, risk) DO UPDATE SET tools = tools + 1;
END;
-- Reclassified: every current tool with this definition moves from the old counts to the new.
CREATE TRIGGER risk_counts_reclassify AFTER UPDATE OF category, risk ON classifications
    WHEN OLD.category <> NEW.category OR OLD.risk <> NEW.risk BEGIN
    UPDATE risk_counts SET tools = tools - (SELECT count(*) FROM current_tools t
            WHERE t.fingerprint = OLD.fingerprint AND t.server_id = risk_counts.server_id)
        WHERE category = OLD.category AND risk = OLD.risk
          AND server_id IN (SELECT server_id FROM current_tools WHERE fingerprint = OLD.fingerprint);
    INSERT INTO risk_counts(server_id, category, risk, tools)
        SELECT server_id, NEW.category, NEW.risk, count(*) FROM current_tools WHERE fingerprint = NEW.fingerprint
        GROUP BY server_id
        ON CONFLICT(server_id, category, risk) DO UPDATE SET tools = tools + excluded.tools;
END;
"#,
    // 6: receipts of the distributed crawl's results (`toolwarden ingest`): the queue's job ids stored, written
    // in the same transaction as their listings, so a result delivered twice is stored once.
    r#"
CREATE TABLE queue_receipts (
    job TEXT PRIMARY KEY,
    at  TEXT NOT NULL
) STRICT;
"#,
    // 7: the server a decision concerns (`toolwarden gateway` fronts many), for `audit --server`.
    r#"
ALTER TABLE audit ADD COLUMN server TEXT;
CREATE INDEX audit_server ON audit(server, time);
"#,
];
