//! HTML from untrusted text. Every string that came from a server (names, descriptions, schemas, findings,
//! arguments) reaches a page through [`text`] or [`highlighted`], which escape it and make invisible
//! characters visible; nothing else writes server text into markup, so a description holding `<script>`
//! renders as those characters. Attribute values go through [`attr`], URL parts through [`url_part`].

use std::fmt::Write;

use crate::model::text::is_invisible;

/// The most characters of one untrusted text a page shows (a 1 MB description must not make a 5 MB page).
pub(crate) const MAX_SHOWN: usize = 64 * 1024;

/// Escape for element content and quoted attribute values.
pub(crate) fn attr(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

/// One character of untrusted text as markup: escaped, and shown as a marked code point when it would be
/// invisible or would move text around (zero-width, bidi controls, tag characters, control characters).
fn push_visible(out: &mut String, c: char) {
    if is_invisible(c) || (c.is_control() && c != '\n' && c != '\t') {
        let _ = write!(out, "<span class=\"invisible\" title=\"hidden character\">U+{:04X}</span>", c as u32);
    } else {
        push_escaped(out, c);
    }
}

/// Untrusted text as markup, bounded to [`MAX_SHOWN`] characters.
pub(crate) fn text(text: &str) -> String {
    highlighted(text, &[])
}

/// Untrusted text with every case-insensitive occurrence of `needles` in `<mark>`, escaped and bounded like
/// [`text`]. Used to show which words of a description or schema the classifier's evidence quotes.
pub(crate) fn highlighted(text: &str, needles: &[&str]) -> String {
    let (shown, cut) = match text.char_indices().nth(MAX_SHOWN) {
        Some((i, _)) => (&text[..i], true),
        None => (text, false),
    };
    let lower = shown.to_ascii_lowercase();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for needle in needles.iter().map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()) {
        let mut from = 0;
        while let Some(at) = lower[from..].find(&needle) {
            let start = from + at;
            ranges.push((start, start + needle.len()));
            from = start + needle.len();
            if ranges.len() > 200 {
                break;
            }
        }
    }
    ranges.sort_unstable();
    let mut out = String::with_capacity(shown.len() + 16);
    let mut at = 0;
    for (start, end) in ranges {
        if start < at || !shown.is_char_boundary(start) || !shown.is_char_boundary(end) {
            continue;
        }
        shown[at..start].chars().for_each(|c| push_visible(&mut out, c));
        out.push_str("<mark>");
        shown[start..end].chars().for_each(|c| push_visible(&mut out, c));
        out.push_str("</mark>");
        at = end;
    }
    shown[at..].chars().for_each(|c| push_visible(&mut out, c));
    if cut {
        let _ = write!(out, "<span class=\"cut\"> … (cut at {MAX_SHOWN} characters)</span>");
    }
    out
}

/// Percent-encode one URL component (query value or path segment).
pub(crate) fn url_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decode `a=1&b=x+y` (a query string or a form body) into pairs; malformed escapes are kept as typed.
pub(crate) fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .take(256)
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
                let hex = hex.and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// JSON to embed in `<script type="application/json">`: `<`, `>` and `&` escaped so no text can close the
/// element.
pub(crate) fn script_json(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_untrusted_text_stays_text() {
        assert_eq!(text("<script>alert('x')</script>"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
        assert_eq!(attr("\" onmouseover=\"x"), "&quot; onmouseover=&quot;x");
    }

    #[test]
    fn invisible_characters_are_shown() {
        let out = text("ok\u{200B}go\u{202E}");
        assert!(out.contains("U+200B") && out.contains("U+202E"), "{out}");
        assert!(!out.contains('\u{200B}'));
    }

    #[test]
    fn evidence_is_marked_without_breaking_escapes() {
        let out = highlighted("Permanently DELETE a <b> record", &["delete", "b>"]);
        assert_eq!(out, "Permanently <mark>DELETE</mark> a &lt;<mark>b&gt;</mark> record");
    }

    #[test]
    fn long_text_is_cut() {
        let long = "a".repeat(MAX_SHOWN + 10);
        let out = text(&long);
        assert!(out.contains("cut at"));
        assert!(out.len() < MAX_SHOWN + 100);
    }

    #[test]
    fn pairs_decode_and_urls_encode() {
        let pairs = parse_pairs("q=delete+repo&risk=high&risk=critical&x=%3Cb%3E&bad=%zz&end=%4");
        assert_eq!(pairs[0], ("q".into(), "delete repo".into()));
        assert_eq!(pairs[2], ("risk".into(), "critical".into()));
        assert_eq!(pairs[3], ("x".into(), "<b>".into()));
        assert_eq!(pairs[4], ("bad".into(), "%zz".into()));
        assert_eq!(pairs[5], ("end".into(), "%4".into()));
        assert_eq!(url_part("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(decode(&url_part("x&y=é")), "x&y=é");
    }

    #[test]
    fn embedded_json_cannot_close_its_script() {
        let v = serde_json::json!({"d": "</script><script>alert(1)</script>"});
        assert!(!script_json(&v).contains("</script>"));
    }
}
