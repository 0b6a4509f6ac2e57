//! Turning names and prose into words the rules can look up.
//!
//! Tool names come in every convention (`delete_issue`, `deleteIssue`, `delete-issue`, `github.delete_issue`,
//! `API-delete-a-block`, `HTTPRequestSend`), so a name is split into lowercase words first and every rule speaks
//! words. Verbs appear inflected in prose (`Deletes`, `deleting`, `created`), so lookups try a few cheap
//! de-inflections instead of carrying every form in the rule files.

/// Longest name (in bytes) we look at; longer names are cut, not rejected.
pub(crate) const MAX_NAME: usize = 256;
/// Most words taken from one name.
pub(crate) const MAX_NAME_WORDS: usize = 32;

/// Split an identifier into lowercase words: snake, kebab, dotted, slashed, spaced and camel case.
pub(crate) fn split_name(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    for_each_word(name, |w| words.push(w.to_lowercase()));
    words
}

/// The words of an identifier, lowercased and joined by single spaces (`dryRun` → `dry run`), in one string.
pub(crate) fn joined_words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for_each_word(name, |w| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(w.chars().flat_map(char::to_lowercase));
    });
    out
}

/// Call `f` with each word of an identifier as written (at most [`MAX_NAME_WORDS`], from its first
/// [`MAX_NAME`] bytes): parts between non-alphanumeric characters, split again at camel-case humps
/// (`getHTTPResponse2` → `get`, `HTTP`, `Response2`).
fn for_each_word(name: &str, mut f: impl FnMut(&str)) {
    let mut count = 0;
    for part in truncate(name, MAX_NAME).split(|c: char| !c.is_alphanumeric()).filter(|p| !p.is_empty()) {
        let mut start = 0;
        let mut chars = part.char_indices().peekable();
        let mut prev: Option<char> = None;
        while let Some((i, cur)) = chars.next() {
            if let Some(p) = prev {
                let next_lower = chars.peek().is_some_and(|(_, c)| c.is_lowercase());
                let boundary = (p.is_lowercase() && cur.is_uppercase())
                    || (p.is_uppercase() && cur.is_uppercase() && next_lower)
                    || (p.is_ascii_digit() && cur.is_uppercase());
                if boundary {
                    if count == MAX_NAME_WORDS {
                        return;
                    }
                    f(&part[start..i]);
                    count += 1;
                    start = i;
                }
            }
            prev = Some(cur);
        }
        if count == MAX_NAME_WORDS {
            return;
        }
        f(&part[start..]);
        count += 1;
    }
}

/// The forms a word may have come from, most likely first: `deletes` → `deletes`, `delete`; `running` → `run`.
#[cfg(test)]
pub(crate) fn lemmas(word: &str) -> Vec<String> {
    let mut forms: Vec<String> = Vec::new();
    find_lemma(word, |w| {
        if !forms.iter().any(|f| f == w) {
            forms.push(w.to_string());
        }
        None::<()>
    });
    forms
}

/// Try `lookup` on a word and then on the forms it may have come from (see [`lemmas`]), stopping at the first
/// hit. Slices where it can, one small buffer where a letter must be added, so the common miss is cheap.
pub(crate) fn find_lemma<T>(word: &str, mut lookup: impl FnMut(&str) -> Option<T>) -> Option<T> {
    if let Some(t) = lookup(word) {
        return Some(t);
    }
    if word.len() < 4 {
        return word.strip_suffix('s').filter(|s| s.len() >= 2).and_then(&mut lookup);
    }
    let mut buf = String::with_capacity(word.len() + 1);
    let mut joined = |stem: &str, tail: char, lookup: &mut dyn FnMut(&str) -> Option<T>| {
        buf.clear();
        buf.push_str(stem);
        buf.push(tail);
        lookup(&buf)
    };
    if let Some(stem) = word.strip_suffix("ies")
        && let Some(t) = joined(stem, 'y', &mut lookup)
    {
        return Some(t);
    }
    if let Some(stem) = word.strip_suffix("es")
        && let Some(t) = lookup(stem)
    {
        return Some(t);
    }
    if !word.ends_with("ss")
        && let Some(stem) = word.strip_suffix('s')
        && let Some(t) = lookup(stem)
    {
        return Some(t);
    }
    for suffix in ["ing", "ed"] {
        let Some(stem) = word.strip_suffix(suffix).filter(|s| s.len() >= 2) else { continue };
        if let Some(t) = lookup(stem) {
            return Some(t);
        }
        if let Some(t) = joined(stem, 'e', &mut lookup) {
            return Some(t);
        }
        let b = stem.as_bytes();
        if b.len() >= 3
            && b[b.len() - 1] == b[b.len() - 2]
            && let Some(t) = lookup(&stem[..stem.len() - 1])
        {
            return Some(t);
        }
        if suffix == "ed"
            && let Some(s) = stem.strip_suffix('i')
            && let Some(t) = joined(s, 'y', &mut lookup)
        {
            return Some(t);
        }
    }
    None
}

pub(crate) use crate::model::text::truncate_bytes as truncate;

/// Quote at most `max` characters of untrusted text for evidence (whitespace and control characters collapsed).
pub(crate) fn quote(text: &str, max: usize) -> String {
    crate::model::text::collapse(text, max, |c| if c.is_whitespace() || c.is_control() { ' ' } else { c })
}

/// A word of prose with its byte span in the (lowercased) text it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word<'a> {
    pub(crate) text: &'a str,
    pub(crate) start: usize,
}

/// The words of the first sentence of a description, lowercased text in, spans out.
///
/// The first sentence is where authors say what a tool does ("Deletes a branch."); later sentences give advice
/// ("use list_branches first") whose verbs are not what the tool does. A vendor prefix such as `Notion | ` is
/// skipped, and the sentence ends at `. `, a newline or `:`-less end of text.
pub(crate) fn first_sentence(lower: &str, max: usize) -> &str {
    let text = truncate(lower, max);
    let mut text = text.trim_start();
    if let Some(bar) = truncate(text, 48).find("| ") {
        text = text[bar + 2..].trim_start();
    }
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let end = match b {
            b'\n' => true,
            b'.' | b'!' | b'?' | b';' => bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()),
            _ => false,
        };
        if end && i > 0 {
            return &text[..i];
        }
    }
    text
}

/// Split prose into words (letters, digits, `'`), keeping separators that join verbs (`,`, `/`) as words.
pub(crate) fn prose_words(text: &str) -> Vec<Word<'_>> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        let is_word = c.is_alphanumeric() || c == '\'';
        match (is_word, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                push_word(text, s, i, &mut words);
                start = None;
            }
            _ => {}
        }
        if !is_word && (c == ',' || c == '/') {
            words.push(Word { text: &text[i..i + 1], start: i });
        }
    }
    if let Some(s) = start {
        push_word(text, s, text.len(), &mut words);
    }
    words
}

/// A word without the quotes around it (`'delete'` → `delete`, `don't` stays).
fn push_word<'a>(text: &'a str, start: usize, end: usize, words: &mut Vec<Word<'a>>) {
    let raw = &text[start..end];
    let trimmed = raw.trim_start_matches('\'');
    let start = start + (raw.len() - trimmed.len());
    let trimmed = trimmed.trim_end_matches('\'');
    if !trimmed.is_empty() {
        words.push(Word { text: trimmed, start });
    }
}
