//! `toolwarden site --out DIR`: the catalogue's pages as static files, for any static host.
//!
//! The same page functions as the console ([`super::pages`]) with file links: `index.html` (search),
//! `servers/index.html`, one page per server and per tool, and each server's recommended policies. Search
//! runs in the browser over an index embedded in `index.html` (a JSON script element, escaped so no text
//! can close it); without JavaScript the front page lists the most severe tools. Each page carries the
//! console's Content-Security-Policy as a meta element, since a static host may not send headers.

use std::fmt::Write;
use std::path::Path;

use super::WebError;
use super::html::{script_json, text};
use super::pages::{self, Site, ToolExtras};
use crate::catalogue::{Catalogue, ToolDetail};
use crate::policy::Profile;

/// What a site build wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SiteReport {
    pub servers: usize,
    pub tools: usize,
    pub files: usize,
}

/// The extra parts of a tool page: diffs of its history, and the recommended rule for `profile`.
pub(crate) fn tool_extras<'a>(
    catalogue: &Catalogue,
    d: &ToolDetail,
    others: &'a [String],
    profile: Profile,
) -> Result<ToolExtras<'a>, WebError> {
    let mut diffs = Vec::with_capacity(d.history.len());
    for e in &d.history {
        let diff = match (e.previous.as_deref(), e.fingerprint.as_deref()) {
            (Some(old), Some(new)) if old != new => match (catalogue.definition(old)?, catalogue.definition(new)?) {
                (Some(a), Some(b)) => crate::pin::text_diff(&a, &b),
                _ => String::new(),
            },
            _ => String::new(),
        };
        diffs.push(diff);
    }
    let policy = crate::policy::generate(std::slice::from_ref(&d.record), profile);
    let name = &d.record.tool.name;
    let rule = policy.tools.get(name).cloned().unwrap_or_default();
    let mut one = serde_json::Map::new();
    one.insert(name.clone(), serde_json::to_value(&rule).unwrap_or_default());
    Ok(ToolExtras {
        also_offered_by: others,
        diffs,
        profile: profile.as_str(),
        rule_json: serde_json::to_string_pretty(&one).unwrap_or_default(),
        rule_text: rule.describe(),
    })
}

fn write(out: &Path, rel: &str, body: &str, files: &mut usize) -> Result<(), WebError> {
    let path = out.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| WebError::Write { path: dir.to_path_buf(), source })?;
    }
    std::fs::write(&path, body).map_err(|source| WebError::Write { path: path.clone(), source })?;
    *files += 1;
    Ok(())
}

/// Static pages carry the policy in a meta element (the console sends it as a header).
fn with_meta_csp(page: String) -> String {
    page.replacen(
        "<meta charset=\"utf-8\">",
        &format!(
            "<meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
            super::CSP.replace("; frame-ancestors 'none'", "")
        ),
        1,
    )
}

/// Write the whole catalogue under `out`.
pub fn write_site(catalogue: &Catalogue, out: &Path) -> Result<SiteReport, WebError> {
    let mut report = SiteReport::default();
    let files = &mut report.files;
    write(out, "assets/style.css", super::STYLE, files)?;
    write(out, "assets/app.js", super::SCRIPT, files)?;
    let top = Site::Static { root: String::new() };
    let nested = Site::Static { root: "../".into() };
    let stats = catalogue.stats()?;
    write(out, "servers/index.html", &with_meta_csp(pages::servers_page(&nested, &stats)), files)?;
    let mut entries = Vec::new();
    let mut worst: Vec<(crate::model::Risk, String, String, String)> = Vec::new();
    for summary in catalogue.servers()? {
        let Some(server) = catalogue.server(&summary.name)? else { continue };
        report.servers += 1;
        let shared = catalogue.shared_tool_names(&server.name)?;
        let drift = catalogue.pin_drift(&server.name)?;
        let key = pages::page_key(&[&server.name]);
        write(
            out,
            &format!("servers/{key}.html"),
            &with_meta_csp(pages::server_page(&nested, &server, drift.as_ref(), &shared)),
            files,
        )?;
        for profile in Profile::ALL {
            let policy = crate::policy::generate(&server.tools, profile);
            let body = serde_json::to_string_pretty(&policy).unwrap_or_default() + "\n";
            write(out, &format!("policies/{key}-{profile}.json"), &body, files)?;
        }
        for record in &server.tools {
            let Some(detail) = catalogue.tool(&server.name, &record.tool.name)? else { continue };
            report.tools += 1;
            let others = shared.get(&record.tool.name).cloned().unwrap_or_default();
            let extras = tool_extras(catalogue, &detail, &others, Profile::Balanced)?;
            let href = top.tool_href(&server.name, &record.tool.name);
            write(out, &href, &with_meta_csp(pages::tool_page(&nested, &detail, &extras)), files)?;
            let c = &record.classification;
            let description: String = record.tool.description.as_deref().unwrap_or("").chars().take(200).collect();
            entries.push(serde_json::json!([
                record.server,
                record.tool.name,
                c.risk.as_str(),
                c.category.as_str(),
                description,
                href
            ]));
            worst.push((c.risk, record.server.clone(), record.tool.name.clone(), href));
        }
    }
    worst.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| (&a.1, &a.2).cmp(&(&b.1, &b.2))));
    let mut body = format!(
        "<h1>Catalogue</h1><p>{} tools of {} servers, classified by risk.</p>\
         <form class=\"search\" id=\"static-search\" role=\"search\"><label for=\"q\">Search tools</label>\
         <input id=\"q\" name=\"q\" type=\"search\" placeholder=\"delete repository, refund, shell…\">\
         <label>Risk <select id=\"risk\"><option value=\"\">any</option><option>critical</option><option>high</option>\
         <option>medium</option><option>low</option></select></label>\
         <label>Category <select id=\"category\"><option value=\"\">any</option><option>financial</option>\
         <option>destructive</option><option>execute</option><option>write</option><option>read</option></select></label>\
         </form><p id=\"result-count\" role=\"status\"></p><table class=\"tools\" id=\"static-results\" hidden><thead><tr>\
         <th scope=\"col\">Risk</th><th scope=\"col\">Category</th><th scope=\"col\">Tool</th><th scope=\"col\">Description</th>\
         </tr></thead><tbody></tbody></table><noscript><h2>Most severe tools</h2><ul>",
        report.tools, report.servers
    );
    for (risk, server, name, href) in worst.iter().take(200) {
        let _ = write!(
            body,
            "<li>{} <a href=\"{}\">{}</a> ({})</li>",
            pages::risk_badge(*risk),
            super::html::attr(href),
            text(name),
            text(server)
        );
    }
    let _ = write!(
        body,
        "</ul><p><a href=\"servers/index.html\">All servers</a></p></noscript>\
         <script type=\"application/json\" id=\"catalogue-data\">{}</script>",
        script_json(&serde_json::Value::Array(entries))
    );
    write(out, "index.html", &with_meta_csp(pages::layout(&top, "Catalogue", &body)), files)?;
    Ok(report)
}
