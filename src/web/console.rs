//! The pages only the live console has: approvals, the audit, what changed, and the login form.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::html::{attr, text, url_part};
use super::pages::{Site, drift_summary, layout, risk_badge};
use crate::model::Risk;
use crate::pin::PinDrift;
use crate::store::{Approval, AuditRow};

/// The pending calls as table rows (also what the page's script fetches to refresh the table).
pub(crate) fn approval_rows(csrf: &str, pending: &[Approval]) -> String {
    if pending.is_empty() {
        return "<tr><td colspan=\"6\">No call waits for a decision.</td></tr>".to_string();
    }
    let mut b = String::new();
    for a in pending {
        let args = serde_json::to_string_pretty(&a.arguments).unwrap_or_default();
        let _ = write!(
            b,
            "<tr id=\"approval-{id}\"><td>{id}</td><td><strong>{}</strong><br><span class=\"why\">{}</span></td>\
             <td><pre class=\"args\">{}</pre></td><td>{}</td><td><time>{}</time></td><td>\
             <form method=\"post\" action=\"/approvals/decide\" class=\"decide\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"id\" value=\"{id}\"><input type=\"hidden\" name=\"action\" value=\"approve\">\
             <label>for <select name=\"for\"><option value=\"\">this call only</option><option value=\"600\">10 minutes</option>\
             <option value=\"3600\">1 hour</option><option value=\"86400\">1 day</option></select></label>\
             <button type=\"submit\" class=\"approve\">Approve</button></form>\
             <form method=\"post\" action=\"/approvals/decide\" class=\"decide\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"id\" value=\"{id}\"><input type=\"hidden\" name=\"action\" value=\"deny\">\
             <label>reason <input name=\"reason\" maxlength=\"500\"></label><button type=\"submit\" class=\"deny\">Deny</button></form>\
             </td></tr>",
            text(&a.tool),
            text(a.reason.as_deref().unwrap_or("")),
            text(&args),
            text(a.identity.as_deref().unwrap_or("(anonymous)")),
            text(&a.requested_at),
            attr(csrf),
            attr(csrf),
            id = a.id,
        );
    }
    b
}

pub(crate) fn approvals_page(
    site: &Site,
    csrf: &str,
    pending: &[Approval],
    decided: &[Approval],
    flash: Option<&str>,
) -> String {
    let mut b = String::from("<h1>Approvals</h1>");
    if let Some(f) = flash {
        let _ = write!(b, "<p class=\"flash\" role=\"status\">{}</p>", text(f));
    }
    let _ = write!(
        b,
        "<p>Calls that a proxy holds until a person decides. This page refreshes itself.</p>\
         <table id=\"pending\" data-refresh=\"/approvals/rows\"><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Tool</th>\
         <th scope=\"col\">Arguments</th><th scope=\"col\">Asked by</th><th scope=\"col\">Since</th><th scope=\"col\">Decision</th>\
         </tr></thead><tbody>{}</tbody></table><h2>Decided</h2><table id=\"decided\"><thead><tr><th scope=\"col\">Id</th>\
         <th scope=\"col\">Tool</th><th scope=\"col\">Status</th><th scope=\"col\">By</th><th scope=\"col\">At</th>\
         <th scope=\"col\">Reason</th></tr></thead><tbody>",
        approval_rows(csrf, pending)
    );
    for a in decided.iter().rev().take(100) {
        let until = a.approved_until.as_deref().map(|u| format!(" until {}", text(u))).unwrap_or_default();
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}{until}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.id,
            text(&a.tool),
            text(&a.status),
            text(a.decided_by.as_deref().unwrap_or("")),
            text(a.decided_at.as_deref().unwrap_or("")),
            text(a.decision_reason.as_deref().unwrap_or(""))
        );
    }
    b.push_str("</tbody></table>");
    layout(site, "Approvals", &b)
}

/// The audit page's filter, from the query string.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditForm {
    pub tool: String,
    pub server: String,
    pub decision: String,
    /// `15m`, `1h`, `24h`, `7d`, `30d` or empty (everything).
    pub range: String,
}

const RANGES: [(&str, &str, i64); 5] = [
    ("15m", "15 minutes", 900),
    ("1h", "hour", 3600),
    ("24h", "24 hours", 86_400),
    ("7d", "7 days", 604_800),
    ("30d", "30 days", 2_592_000),
];

impl AuditForm {
    pub(crate) fn from_pairs(pairs: &[(String, String)]) -> AuditForm {
        let mut f = AuditForm::default();
        for (k, v) in pairs {
            let v: String = v.trim().chars().take(200).collect();
            match k.as_str() {
                "tool" => f.tool = v,
                "server" => f.server = v,
                "decision" => f.decision = v,
                "range" if RANGES.iter().any(|(code, _, _)| *code == v) => f.range = v,
                _ => {}
            }
        }
        f
    }

    /// The start of the range in the store's time format.
    pub(crate) fn since(&self) -> Option<String> {
        let secs = RANGES.iter().find(|(code, _, _)| *code == self.range)?.2;
        let at = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(secs)).ok()?;
        Some(crate::store::format_time(at))
    }
}

/// Whether an audit decision let the call through.
fn passed(decision: &str) -> bool {
    matches!(decision, "allow" | "approved")
}

/// Calls and refusals over time for the busiest tools, as inline SVG (no script, no external image).
fn chart(rows: &[AuditRow]) -> String {
    let times: Vec<Option<jiff::Timestamp>> = rows.iter().map(|r| r.time.parse::<jiff::Timestamp>().ok()).collect();
    let (Some(first), Some(last)) = (times.iter().flatten().min(), times.iter().flatten().max()) else {
        return String::new();
    };
    const BUCKETS: i64 = 24;
    let span = (last.as_second() - first.as_second()).max(60);
    let width = (span + BUCKETS - 1) / BUCKETS;
    let mut by_tool: BTreeMap<&str, Vec<(u32, u32)>> = BTreeMap::new();
    for (row, t) in rows.iter().zip(&times) {
        // A held call is counted when it is decided (approved or denied), not twice.
        let Some(t) = t.filter(|_| row.decision != "approve") else { continue };
        let i = (((t.as_second() - first.as_second()) / width) as usize).min(BUCKETS as usize - 1);
        let buckets = by_tool.entry(row.tool.as_str()).or_insert_with(|| vec![(0, 0); BUCKETS as usize]);
        if passed(&row.decision) {
            buckets[i].0 += 1;
        } else {
            buckets[i].1 += 1;
        }
    }
    let mut tools: Vec<(&str, Vec<(u32, u32)>)> = by_tool.into_iter().collect();
    let total = |b: &Vec<(u32, u32)>| b.iter().map(|(a, d)| a + d).sum::<u32>();
    tools.sort_by(|a, b| total(&b.1).cmp(&total(&a.1)).then(a.0.cmp(b.0)));
    tools.truncate(6);
    let mut b = format!(
        "<h2>Calls over time</h2><p class=\"legend\"><span class=\"key pass\"></span> let through \
         <span class=\"key refuse\"></span> refused · {} to {}, {} buckets of {} s</p><div class=\"charts\">",
        first, last, BUCKETS, width
    );
    for (tool, buckets) in tools {
        let max = buckets.iter().map(|(a, d)| a + d).max().unwrap_or(1).max(1) as f64;
        let (allowed, refused): (u32, u32) = buckets.iter().fold((0, 0), |(x, y), (a, d)| (x + a, y + d));
        let _ = write!(
            b,
            "<figure><svg viewBox=\"0 0 240 60\" width=\"240\" height=\"60\" role=\"img\" aria-label=\"{}: {allowed} let through, {refused} refused\">",
            attr(tool)
        );
        for (i, (a, d)) in buckets.iter().enumerate() {
            let x = i as f64 * 10.0;
            let ha = f64::from(*a) / max * 56.0;
            let hd = f64::from(*d) / max * 56.0;
            let _ = write!(
                b,
                "<rect class=\"pass\" x=\"{x:.0}\" y=\"{:.1}\" width=\"8\" height=\"{ha:.1}\"/><rect class=\"refuse\" x=\"{x:.0}\" y=\"{:.1}\" width=\"8\" height=\"{hd:.1}\"/>",
                60.0 - ha,
                60.0 - ha - hd
            );
        }
        let _ =
            write!(b, "</svg><figcaption>{} · {allowed} through, {refused} refused</figcaption></figure>", text(tool));
    }
    b.push_str("</div>");
    b
}

pub(crate) fn audit_page(site: &Site, form: &AuditForm, rows: &[AuditRow], limit: usize) -> String {
    let mut b =
        String::from("<h1>Audit</h1><form method=\"get\" action=\"/audit\" class=\"filters\" id=\"audit-filter\">");
    let _ = write!(
        b,
        "<label>Tool <input name=\"tool\" value=\"{}\"></label><label>Server <input name=\"server\" value=\"{}\"></label>\
         <label>Decision <select name=\"decision\"><option value=\"\">any</option>",
        attr(&form.tool),
        attr(&form.server)
    );
    for d in ["allow", "deny", "approve", "approved", "denied", "timed_out", "expired", "invalid", "error"] {
        let sel = if form.decision == d { " selected" } else { "" };
        let _ = write!(b, "<option{sel}>{d}</option>");
    }
    b.push_str("</select></label><label>Time <select name=\"range\"><option value=\"\">all</option>");
    for (code, words, _) in RANGES {
        let sel = if form.range == code { " selected" } else { "" };
        let _ = write!(b, "<option value=\"{code}\"{sel}>last {words}</option>");
    }
    b.push_str("</select></label><button type=\"submit\">Filter</button></form>");
    b.push_str(&chart(rows));
    let _ = write!(
        b,
        "<h2>Decisions</h2><p id=\"audit-count\">{} decision{}{}.</p><table id=\"audit\"><thead><tr><th scope=\"col\">Time</th>\
         <th scope=\"col\">Server</th><th scope=\"col\">Tool</th><th scope=\"col\">Decision</th><th scope=\"col\">Rule</th>\
         <th scope=\"col\">Reason</th><th scope=\"col\">Who</th><th scope=\"col\">Decided by</th></tr></thead><tbody>",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        if rows.len() >= limit { format!(" (the newest {limit})") } else { String::new() }
    );
    for r in rows {
        let class = match r.decision.as_str() {
            "approve" => "held",
            d if passed(d) => "pass",
            _ => "refuse",
        };
        let tool_link = format!("/audit?tool={}", url_part(&r.tool));
        let _ = write!(
            b,
            "<tr class=\"{class}\"><td><time>{}</time></td><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&r.time),
            text(r.server.as_deref().unwrap_or("")),
            attr(&tool_link),
            text(&r.tool),
            text(&r.decision),
            text(r.rule.as_deref().unwrap_or("")),
            text(r.reason.as_deref().unwrap_or("")),
            text(r.identity.as_deref().unwrap_or("")),
            text(r.decided_by.as_deref().unwrap_or("")),
        );
    }
    b.push_str("</tbody></table>");
    layout(site, "Audit", &b)
}

/// One finding of the catalogue, for the "what changed" page.
#[derive(Debug)]
pub(crate) struct FindingRow {
    pub server: String,
    pub tool: String,
    pub severity: Risk,
    pub id: String,
    pub text: String,
}

pub(crate) fn changes_page(site: &Site, drifts: &[PinDrift], unpinned: usize, findings: &[FindingRow]) -> String {
    let mut b = String::from("<h1>What changed</h1><h2>Pinned servers</h2>");
    if drifts.is_empty() {
        b.push_str("<p>No server is pinned.</p>");
    }
    for d in drifts {
        let _ = write!(
            b,
            "<section class=\"drift-server\"><h3><a href=\"{}\">{}</a></h3>",
            attr(&site.server_href(&d.server)),
            text(&d.server)
        );
        b.push_str(&drift_summary(site, d));
        b.push_str("</section>");
    }
    if unpinned > 0 {
        let _ = write!(b, "<p>{unpinned} server{} not pinned.</p>", if unpinned == 1 { " is" } else { "s are" });
    }
    let _ = write!(b, "<h2>Findings ({})</h2>", findings.len());
    if !findings.is_empty() {
        b.push_str(
            "<table id=\"all-findings\"><thead><tr><th scope=\"col\">Severity</th><th scope=\"col\">Tool</th>\
                    <th scope=\"col\">Finding</th><th scope=\"col\">Text</th></tr></thead><tbody>",
        );
        for f in findings.iter().take(1000) {
            let _ = write!(
                b,
                "<tr><td>{}</td><td><a href=\"{}\">{}/{}</a></td><td><code>{}</code></td><td>{}</td></tr>",
                risk_badge(f.severity),
                attr(&site.tool_href(&f.server, &f.tool)),
                text(&f.server),
                text(&f.tool),
                text(&f.id),
                text(&f.text)
            );
        }
        b.push_str("</tbody></table>");
    }
    layout(site, "What changed", &b)
}

pub(crate) fn login_page(error: Option<&str>) -> String {
    let site = Site::Static { root: "/".into() };
    let mut b = String::from("<h1>Log in</h1>");
    if let Some(e) = error {
        let _ = write!(b, "<p class=\"flash\" role=\"alert\">{}</p>", text(e));
    }
    b.push_str(
        "<form method=\"post\" action=\"/login\" class=\"login\"><label for=\"token\">Access token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Log in</button></form><p>A token from the console's <code>--auth-tokens</code> file.</p>",
    );
    layout(&site, "Log in", &b).replace("/servers/index.html", "/servers")
}
