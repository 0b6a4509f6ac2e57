//! The catalogue's pages as HTML strings: pure functions of what the catalogue returned, shared by the live
//! console (`serve`) and the static site (`site`), which differ only in how pages link to each other
//! ([`Site`]). Server text only enters through [`html::text`]/[`html::highlighted`]/[`html::attr`].

use std::collections::BTreeMap;
use std::fmt::Write;

use super::html::{self, attr, highlighted, text, url_part};
use crate::catalogue::{Facets, SearchHit, SearchQuery, ServerDetail, ToolDetail};
use crate::model::{Category, Finding, Risk, ToolRecord};
use crate::pin::PinDrift;
use crate::store::Stats;

/// How pages link and what the header shows.
#[derive(Debug, Clone)]
pub(crate) enum Site {
    Live {
        csrf: String,
        identity: String,
        logins: bool,
    },
    /// Static files; `root` leads from the page back to the site's root (`""` or `"../"`).
    Static {
        root: String,
    },
}

impl Site {
    pub(crate) fn tool_href(&self, server: &str, name: &str) -> String {
        match self {
            Site::Live { .. } => format!("/tool?server={}&name={}", url_part(server), url_part(name)),
            Site::Static { root } => format!("{root}tools/{}.html", page_key(&[server, name])),
        }
    }

    pub(crate) fn server_href(&self, server: &str) -> String {
        match self {
            Site::Live { .. } => format!("/server?name={}", url_part(server)),
            Site::Static { root } => format!("{root}servers/{}.html", page_key(&[server])),
        }
    }

    fn policy_href(&self, server: &str, profile: &str) -> String {
        match self {
            Site::Live { .. } => format!("/server/policy.json?name={}&profile={profile}", url_part(server)),
            Site::Static { root } => format!("{root}policies/{}-{profile}.json", page_key(&[server])),
        }
    }

    fn root(&self) -> &str {
        match self {
            Site::Live { .. } => "/",
            Site::Static { root } => root,
        }
    }

    fn is_live(&self) -> bool {
        matches!(self, Site::Live { .. })
    }
}

/// A file name for a page of these parts: a readable slug and a hash (names can hold any character).
pub(crate) fn page_key(parts: &[&str]) -> String {
    use sha2::Digest;
    let joined = parts.join("\0");
    let digest = sha2::Sha256::digest(joined.as_bytes());
    let last = parts.last().copied().unwrap_or_default();
    let slug: String =
        last.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(40).collect();
    format!("{}-{}", slug.trim_matches('-'), &hex::encode(digest)[..12])
}

/// The frame of every page.
pub(crate) fn layout(site: &Site, title: &str, body: &str) -> String {
    let root = site.root();
    let mut nav = format!("<a href=\"{root}\">Catalogue</a>");
    let assets = match site {
        Site::Live { identity, logins, csrf } => {
            nav.push_str(
                "<a href=\"/servers\">Servers</a><a href=\"/approvals\">Approvals</a><a href=\"/audit\">Audit</a>\
                 <a href=\"/changes\">What changed</a>",
            );
            if *logins {
                let _ = write!(
                    nav,
                    "<form method=\"post\" action=\"/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" \
                     value=\"{}\"><button type=\"submit\">Log out {}</button></form>",
                    attr(csrf),
                    text(identity)
                );
            }
            "/assets/"
        }
        Site::Static { .. } => {
            let _ = write!(nav, "<a href=\"{root}servers/index.html\">Servers</a>");
            ""
        }
    };
    let assets = if assets.is_empty() { format!("{root}assets/") } else { assets.to_string() };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · toolwarden</title><link rel=\"stylesheet\" href=\"{assets}style.css\">\
         <script src=\"{assets}app.js\" defer></script></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a><header><nav aria-label=\"Main\">\
         <strong class=\"brand\">toolwarden</strong>{nav}</nav></header><main id=\"main\">{body}</main>\
         <footer>toolwarden {}</footer></body></html>\n",
        text(title),
        env!("CARGO_PKG_VERSION")
    )
}

pub(crate) fn risk_badge(risk: Risk) -> String {
    format!("<span class=\"badge risk-{risk}\">{risk}</span>")
}

fn category_badge(category: Category) -> String {
    format!("<span class=\"badge cat\">{category}</span>")
}

/// The search form's state, as parsed from the query string.
#[derive(Debug, Clone, Default)]
pub(crate) struct SearchForm {
    pub query: SearchQuery,
}

impl SearchForm {
    pub(crate) fn from_pairs(pairs: &[(String, String)]) -> SearchForm {
        let mut q = SearchQuery { limit: 50, ..SearchQuery::default() };
        for (k, v) in pairs {
            match k.as_str() {
                "q" if !v.trim().is_empty() => q.text = Some(v.chars().take(500).collect()),
                "risk" => q.risks.extend(v.parse::<Risk>().ok()),
                "min_risk" => q.min_risk = v.parse::<Risk>().ok(),
                "category" => q.categories.extend(v.parse::<Category>().ok()),
                "server" if !v.is_empty() => q.server = Some(v.clone()),
                "limit" => q.limit = v.parse::<usize>().unwrap_or(50).clamp(1, 500),
                _ => {}
            }
        }
        q.risks.sort();
        q.risks.dedup();
        q.categories.sort();
        q.categories.dedup();
        SearchForm { query: q }
    }

    /// The query string of this search with one dimension replaced (for facet links).
    fn href(
        &self,
        risk: Option<Option<Risk>>,
        category: Option<Option<Category>>,
        server: Option<Option<&str>>,
    ) -> String {
        let q = &self.query;
        let mut parts = Vec::new();
        if let Some(t) = &q.text {
            parts.push(format!("q={}", url_part(t)));
        }
        match risk {
            Some(Some(r)) => parts.push(format!("risk={r}")),
            Some(None) => {}
            None => {
                parts.extend(q.risks.iter().map(|r| format!("risk={r}")));
                parts.extend(q.min_risk.map(|r| format!("min_risk={r}")));
            }
        }
        match category {
            Some(Some(c)) => parts.push(format!("category={c}")),
            Some(None) => {}
            None => parts.extend(q.categories.iter().map(|c| format!("category={c}"))),
        }
        match server {
            Some(Some(s)) => parts.push(format!("server={}", url_part(s))),
            Some(None) => {}
            None => parts.extend(q.server.as_deref().map(|s| format!("server={}", url_part(s)))),
        }
        format!("/?{}", parts.join("&"))
    }
}

/// The catalogue's front page: the search box, facets with counts, and the results.
pub(crate) fn search_page(
    site: &Site,
    form: &SearchForm,
    facets: &Facets,
    hits: &[SearchHit],
    findings: &[Vec<Finding>],
) -> String {
    let q = &form.query;
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Catalogue</h1><form class=\"search\" method=\"get\" action=\"/\" role=\"search\">\
         <label for=\"q\">Search tools</label><input id=\"q\" name=\"q\" type=\"search\" value=\"{}\" \
         placeholder=\"delete repository, refund, shell…\">",
        attr(q.text.as_deref().unwrap_or(""))
    );
    for r in &q.risks {
        let _ = write!(b, "<input type=\"hidden\" name=\"risk\" value=\"{r}\">");
    }
    for c in &q.categories {
        let _ = write!(b, "<input type=\"hidden\" name=\"category\" value=\"{c}\">");
    }
    if let Some(s) = &q.server {
        let _ = write!(b, "<input type=\"hidden\" name=\"server\" value=\"{}\">", attr(s));
    }
    b.push_str(
        "<button type=\"submit\">Search</button></form><div class=\"with-facets\"><aside aria-label=\"Filters\">",
    );
    // Facets: each link selects one value of its dimension (keeping the others); the current one is marked.
    b.push_str("<h2>Risk</h2><ul class=\"facets\" id=\"facet-risk\">");
    for (risk, n) in facets.risk.iter().rev() {
        let on = q.risks == [*risk];
        let href = form.href(Some(if on { None } else { Some(*risk) }), None, None);
        let _ = write!(
            b,
            "<li><a href=\"{}\"{}>{} <span class=\"count\">{n}</span></a></li>",
            attr(&href),
            if on { " aria-current=\"true\"" } else { "" },
            risk_badge(*risk)
        );
    }
    b.push_str("</ul><h2>Category</h2><ul class=\"facets\" id=\"facet-category\">");
    for (category, n) in facets.category.iter().rev() {
        let on = q.categories == [*category];
        let href = form.href(None, Some(if on { None } else { Some(*category) }), None);
        let _ = write!(
            b,
            "<li><a href=\"{}\"{}>{category} <span class=\"count\">{n}</span></a></li>",
            attr(&href),
            if on { " aria-current=\"true\"" } else { "" },
        );
    }
    b.push_str("</ul><h2>Server</h2><ul class=\"facets\" id=\"facet-server\">");
    for (server, n) in &facets.server {
        let on = q.server.as_deref() == Some(server.as_str());
        let href = form.href(None, None, Some(if on { None } else { Some(server) }));
        let _ = write!(
            b,
            "<li><a href=\"{}\"{}>{} <span class=\"count\">{n}</span></a></li>",
            attr(&href),
            if on { " aria-current=\"true\"" } else { "" },
            text(server)
        );
    }
    if facets.servers > facets.server.len() {
        let _ = write!(b, "<li>… and {} more</li>", facets.servers - facets.server.len());
    }
    b.push_str("</ul></aside><section aria-label=\"Results\">");
    let shown = hits.len();
    let _ = write!(
        b,
        "<p id=\"result-count\">{} tool{} match{}{}.</p>",
        facets.total,
        if facets.total == 1 { "" } else { "s" },
        if facets.total == 1 { "es" } else { "" },
        if shown < facets.total { format!("; the first {shown} are shown") } else { String::new() }
    );
    if !hits.is_empty() {
        b.push_str(
            "<table class=\"tools\" id=\"results\"><thead><tr><th scope=\"col\">Risk</th><th scope=\"col\">Category</th>\
             <th scope=\"col\">Tool</th><th scope=\"col\">Why</th><th scope=\"col\">Description</th></tr></thead><tbody>",
        );
        for (i, hit) in hits.iter().enumerate() {
            let why = evidence_words(&hit.evidence);
            let flags = findings.get(i).map(|f| finding_flags(f)).unwrap_or_default();
            let snippet = text(&hit.snippet).replace("**", "");
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td><a href=\"{}\">{}</a> <span class=\"server\">{}</span>{flags}</td>\
                 <td>{why}</td><td>{snippet}</td></tr>",
                risk_badge(hit.risk),
                category_badge(hit.category),
                attr(&site.tool_href(&hit.server, &hit.name)),
                text(&hit.name),
                text(&hit.server),
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section></div>");
    layout(site, "Catalogue", &b)
}

fn finding_flags(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return String::new();
    }
    let worst = findings.iter().map(|f| f.severity).max().unwrap_or(Risk::Low);
    format!(
        " <span class=\"flag risk-{worst}\" title=\"security findings\">⚠ {} finding{}</span>",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" }
    )
}

fn evidence_words(evidence: &[crate::model::Evidence]) -> String {
    let mut parts: Vec<String> = evidence
        .iter()
        .take(3)
        .map(|e| format!("{} “{}”", text(&e.field), text(&e.text.chars().take(40).collect::<String>())))
        .collect();
    if evidence.len() > 3 {
        parts.push(format!("+{}", evidence.len() - 3));
    }
    parts.join(", ")
}

/// Every server with its tools by risk.
pub(crate) fn servers_page(site: &Site, stats: &Stats) -> String {
    let mut b = format!(
        "<h1>Servers</h1><p>{} servers, {} tools.</p><table class=\"tools\" id=\"servers\"><thead><tr>\
         <th scope=\"col\">Server</th><th scope=\"col\">Tools</th><th scope=\"col\">Critical</th>\
         <th scope=\"col\">High</th><th scope=\"col\">Medium</th><th scope=\"col\">Low</th>\
         <th scope=\"col\">Last crawl</th></tr></thead><tbody>",
        stats.servers, stats.tools
    );
    let mut rows: Vec<_> = stats.by_server.iter().collect();
    let n = |s: &crate::store::ServerStats, r: &str| s.by_risk.get(r).copied().unwrap_or(0);
    rows.sort_by(|a, b| (n(b, "critical"), n(b, "high"), &a.server).cmp(&(n(a, "critical"), n(a, "high"), &b.server)));
    for s in rows {
        let _ = write!(
            b,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            attr(&site.server_href(&s.server)),
            text(&s.server),
            s.tools,
            n(s, "critical"),
            n(s, "high"),
            n(s, "medium"),
            n(s, "low"),
            text(s.last_outcome.as_deref().unwrap_or("")),
        );
    }
    b.push_str("</tbody></table>");
    layout(site, "Servers", &b)
}

fn tools_table(site: &Site, tools: &[ToolRecord]) -> String {
    let mut sorted: Vec<&ToolRecord> = tools.iter().collect();
    sorted.sort_by(|a, b| b.classification.risk.cmp(&a.classification.risk).then(a.tool.name.cmp(&b.tool.name)));
    let mut b = String::from(
        "<table class=\"tools\" id=\"server-tools\"><thead><tr><th scope=\"col\">Risk</th><th scope=\"col\">Category</th>\
         <th scope=\"col\">Tool</th><th scope=\"col\">Why</th><th scope=\"col\">Description</th></tr></thead><tbody>",
    );
    for t in sorted {
        let c = &t.classification;
        let description: String = t.tool.description.as_deref().unwrap_or("").chars().take(200).collect();
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td><a href=\"{}\">{}</a>{}</td><td>{}</td><td>{}</td></tr>",
            risk_badge(c.risk),
            category_badge(c.category),
            attr(&site.tool_href(&t.server, &t.tool.name)),
            text(&t.tool.name),
            finding_flags(&c.findings),
            evidence_words(&c.evidence),
            text(&description)
        );
    }
    b.push_str("</tbody></table>");
    b
}

/// One server: its tools as a risk table, findings, pin status and crawl history.
pub(crate) fn server_page(
    site: &Site,
    s: &ServerDetail,
    drift: Option<&PinDrift>,
    shared: &BTreeMap<String, Vec<String>>,
) -> String {
    let mut b = format!("<h1>{}</h1>", text(&s.name));
    let mut by_risk: BTreeMap<Risk, usize> = BTreeMap::new();
    for t in &s.tools {
        *by_risk.entry(t.classification.risk).or_default() += 1;
    }
    let summary: Vec<String> = by_risk.iter().rev().map(|(r, n)| format!("{n} {}", risk_badge(*r))).collect();
    let _ = write!(b, "<p class=\"summary\">{} tools: {}</p><dl class=\"facts\">", s.tools.len(), summary.join(" "));
    if let Some(spec) = &s.spec {
        let _ = write!(b, "<dt>Target</dt><dd><code>{}</code></dd>", text(&spec.target()));
    }
    if let Some(info) = &s.info {
        let _ = write!(b, "<dt>Reports</dt><dd>{} {}</dd>", text(&info.name), text(&info.version));
    }
    let _ = write!(
        b,
        "<dt>First seen</dt><dd>{}</dd><dt>Last seen</dt><dd>{}</dd></dl><p>Recommended policy for this server: ",
        text(&s.first_seen),
        text(&s.last_seen)
    );
    for profile in ["strict", "balanced", "permissive"] {
        let _ = write!(b, "<a download href=\"{}\">{profile}</a> ", attr(&site.policy_href(&s.name, profile)));
    }
    b.push_str("</p><h2>Tools</h2>");
    b.push_str(&tools_table(site, &s.tools));
    // Findings, most severe first.
    let mut rows: Vec<(Risk, &str, &Finding)> = Vec::new();
    for t in &s.tools {
        for f in &t.classification.findings {
            rows.push((f.severity, &t.tool.name, f));
        }
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let _ = write!(b, "<h2>Findings ({})</h2>", rows.len() + shared.len());
    if rows.is_empty() && shared.is_empty() {
        b.push_str("<p>None.</p>");
    } else {
        b.push_str("<ul class=\"findings\">");
        for (_, tool, f) in rows {
            let _ = write!(
                b,
                "<li>{} <a href=\"{}\">{}</a>: ",
                risk_badge(f.severity),
                attr(&site.tool_href(&s.name, tool)),
                text(tool)
            );
            b.push_str(&finding_body(f));
            b.push_str("</li>");
        }
        for (tool, others) in shared {
            let mut names: Vec<String> = others.iter().take(5).map(|o| text(o)).collect();
            if others.len() > 5 {
                names.push(format!("and {} more", others.len() - 5));
            }
            let _ = write!(
                b,
                "<li>{} <a href=\"{}\">{}</a> <code>duplicate-tool-name</code>: also offered by {}</li>",
                risk_badge(Risk::Medium),
                attr(&site.tool_href(&s.name, tool)),
                text(tool),
                names.join(", ")
            );
        }
        b.push_str("</ul>");
    }
    b.push_str("<h2>Pin</h2>");
    match drift {
        None => b.push_str("<p>Not pinned (<code>toolwarden pin SERVER</code> approves the current definitions).</p>"),
        Some(d) => b.push_str(&drift_summary(site, d)),
    }
    b.push_str(
        "<h2>Crawl history</h2><table id=\"runs\"><thead><tr><th scope=\"col\">At</th><th scope=\"col\">Outcome</th>\
         <th scope=\"col\">Tools</th><th scope=\"col\">Added</th><th scope=\"col\">Changed</th><th scope=\"col\">Removed</th>\
         <th scope=\"col\">Error</th></tr></thead><tbody>",
    );
    let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in &s.runs {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&r.at),
            text(&r.outcome),
            n(r.tools),
            n(r.added),
            n(r.changed),
            n(r.removed),
            text(r.error.as_deref().unwrap_or(""))
        );
    }
    b.push_str("</tbody></table>");
    layout(site, &s.name, &b)
}

pub(crate) fn drift_summary(site: &Site, d: &PinDrift) -> String {
    if d.is_clean() {
        return format!("<p>Pinned at {}; every tool is as pinned ({} tools).</p>", text(&d.pinned_at), d.unchanged);
    }
    let mut b = format!(
        "<p class=\"drift\">Pinned at {}: {} added, {} removed, {} changed, {} unchanged.</p><ul>",
        text(&d.pinned_at),
        d.added.len(),
        d.removed.len(),
        d.changed.len(),
        d.unchanged
    );
    for a in &d.added {
        let _ = write!(b, "<li>added <a href=\"{}\">{}</a></li>", attr(&site.tool_href(&d.server, a)), text(a));
    }
    for r in &d.removed {
        let _ = write!(b, "<li>removed {}</li>", text(r));
    }
    for c in &d.changed {
        let severity = c.severity.map(risk_badge).unwrap_or_default();
        let _ = write!(
            b,
            "<li>changed <a href=\"{}\">{}</a> {severity} ({}){}{}</li>",
            attr(&site.tool_href(&d.server, &c.name)),
            text(&c.name),
            text(&c.fields.join(", ")),
            c.why.as_deref().map(|w| format!(": {}", text(w))).unwrap_or_default(),
            diff_block(&c.diff)
        );
    }
    b.push_str("</ul>");
    b
}

fn finding_body(f: &Finding) -> String {
    let location =
        f.location.as_deref().map(|l| format!(" <span class=\"where\">in {}</span>", text(l))).unwrap_or_default();
    format!("<code>{}</code> {}{location}", text(&f.id), text(&f.text))
}

/// A unified diff as lines marked added and removed.
pub(crate) fn diff_block(diff: &str) -> String {
    if diff.trim().is_empty() {
        return String::new();
    }
    let mut b = String::from("<pre class=\"diff\">");
    for line in diff.lines().take(400) {
        let class = if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else {
            "ctx"
        };
        let _ = writeln!(b, "<span class=\"{class}\">{}</span>", text(line));
    }
    b.push_str("</pre>");
    b
}

/// What a tool page shows beyond the stored detail.
#[derive(Debug)]
pub(crate) struct ToolExtras<'a> {
    pub also_offered_by: &'a [String],
    /// One diff per history event (empty when there is nothing to compare).
    pub diffs: Vec<String>,
    pub profile: &'a str,
    /// The recommended rule as `{ "<name>": { … } }`, pretty-printed, and what it does.
    pub rule_json: String,
    pub rule_text: String,
}

/// One tool: verdict and why, evidence marked in the text, findings, the recommended rule, history.
pub(crate) fn tool_page(site: &Site, d: &ToolDetail, x: &ToolExtras<'_>) -> String {
    let r = &d.record;
    let c = &r.classification;
    let mut b = format!(
        "<p class=\"crumbs\"><a href=\"{}\">{}</a> /</p><h1>{}</h1>",
        attr(&site.server_href(&r.server)),
        text(&r.server),
        text(&r.tool.name)
    );
    if let Some(title) = r.tool.display_title() {
        let _ = write!(b, "<p class=\"subtitle\">{}</p>", text(&title));
    }
    if !d.current {
        b.push_str("<p class=\"drift\">This tool is no longer offered by the server; shown as last seen.</p>");
    }
    let _ = write!(
        b,
        "<p class=\"verdict\" id=\"verdict\">{} {} <span class=\"confidence\">confidence {:.2}</span></p>\
         <p class=\"rationale\" id=\"rationale\">{}</p>",
        risk_badge(c.risk),
        category_badge(c.category),
        c.confidence,
        text(&c.rationale)
    );
    if !c.factors.is_empty() {
        let _ = write!(b, "<p>Blast-radius factors: {}</p>", text(&c.factors.join(", ")));
    }
    b.push_str(
        "<h2>Why</h2><table id=\"evidence\"><thead><tr><th scope=\"col\">Rule</th><th scope=\"col\">Where</th>\
                <th scope=\"col\">Quoted</th></tr></thead><tbody>",
    );
    for e in &c.evidence {
        let _ = write!(
            b,
            "<tr><td><code>{}</code></td><td>{}</td><td><mark>{}</mark></td></tr>",
            text(&e.rule),
            text(&e.field),
            text(&e.text)
        );
    }
    b.push_str("</tbody></table>");
    let quoted = |prefix: &str| -> Vec<&str> {
        c.evidence.iter().filter(|e| e.field.starts_with(prefix)).map(|e| e.text.as_str()).collect()
    };
    let _ = write!(
        b,
        "<h2>Description</h2><div class=\"description\" id=\"description\">{}</div>",
        highlighted(r.tool.description.as_deref().unwrap_or("(none)"), &quoted("description"))
    );
    let schema = serde_json::to_string_pretty(&r.tool.input_schema).unwrap_or_default();
    let _ = write!(
        b,
        "<h2>Input schema</h2><pre class=\"schema\" id=\"schema\">{}</pre>",
        highlighted(&schema, &quoted("schema"))
    );
    if let Some(a) = &r.tool.annotations {
        let _ =
            write!(b, "<h2>Annotations</h2><pre>{}</pre>", text(&serde_json::to_string_pretty(a).unwrap_or_default()));
    }
    let _ = write!(b, "<h2>Findings ({})</h2>", c.findings.len() + usize::from(!x.also_offered_by.is_empty()));
    if c.findings.is_empty() && x.also_offered_by.is_empty() {
        b.push_str("<p>None.</p>");
    } else {
        b.push_str("<ul class=\"findings\" id=\"findings\">");
        for f in &c.findings {
            let _ = write!(b, "<li>{} {}</li>", risk_badge(f.severity), finding_body(f));
        }
        if !x.also_offered_by.is_empty() {
            let others: Vec<String> = x
                .also_offered_by
                .iter()
                .map(|o| format!("<a href=\"{}\">{}</a>", attr(&site.tool_href(o, &r.tool.name)), text(o)))
                .collect();
            let _ = write!(
                b,
                "<li>{} <code>duplicate-tool-name</code> also offered by {}: a client that loads both sees two tools of one name</li>",
                risk_badge(Risk::Medium),
                others.join(", ")
            );
        }
        b.push_str("</ul>");
    }
    let _ = write!(b, "<h2>Recommended rule</h2><p class=\"profiles\">Profile: ");
    for p in ["strict", "balanced", "permissive"] {
        if p == x.profile {
            let _ = write!(b, "<strong aria-current=\"true\">{p}</strong> ");
        } else if site.is_live() {
            let _ =
                write!(b, "<a href=\"{}&amp;profile={p}\">{p}</a> ", attr(&site.tool_href(&r.server, &r.tool.name)));
        }
    }
    let _ = write!(
        b,
        "</p><p id=\"rule-text\">{}</p><div class=\"copy\"><pre id=\"rule-json\">{}</pre>\
         <button type=\"button\" class=\"copy-button\" data-copy=\"rule-json\">Copy rule</button></div>\
         <p>Paste it into the <code>tools</code> of a policy, or <a download href=\"{}\">download the {} policy for this server</a>.</p>",
        text(&x.rule_text),
        text(&x.rule_json),
        attr(&site.policy_href(&r.server, x.profile)),
        x.profile,
    );
    let _ = write!(
        b,
        "<h2>History</h2><p>Current definition since {}.</p><ol class=\"history\" id=\"history\">",
        text(&d.since)
    );
    for (i, e) in d.history.iter().enumerate() {
        let fields = if e.changed_fields.is_empty() {
            String::new()
        } else {
            format!(" ({})", text(&e.changed_fields.join(", ")))
        };
        let _ = write!(b, "<li><time>{}</time> {}{fields}", text(&e.at), text(&e.kind));
        if let Some(diff) = x.diffs.get(i) {
            b.push_str(&diff_block(diff));
        }
        b.push_str("</li>");
    }
    b.push_str("</ol>");
    layout(site, &format!("{} / {}", r.server, r.tool.name), &b)
}

/// Shown for a page that does not exist.
pub(crate) fn not_found(site: &Site, what: &str) -> String {
    layout(
        site,
        "Not found",
        &format!("<h1>Not found</h1><p>{}</p><p><a href=\"{}\">Back to the catalogue</a></p>", text(what), site.root()),
    )
}

/// Make a message page (errors, confirmations).
pub(crate) fn message(site: &Site, title: &str, body: &str) -> String {
    layout(site, title, &format!("<h1>{}</h1><p>{}</p>", text(title), html::text(body)))
}
