//! Helpers for untrusted text: tool names, descriptions and schemas come from strangers, so every module that
//! reads or prints them bounds and cleans them the same way.

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Characters that render as nothing or reorder text: zero-width, bidi controls, tag characters, soft hyphen.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}' | '\u{00AD}' | '\u{180E}')
}

/// Make untrusted text safe for one table cell or log line: control characters (including ESC, so no terminal
/// escape sequences), bidi controls and zero-width characters are replaced with U+FFFD, whitespace runs
/// collapse to one space, and the result is cut at `max` characters with an ellipsis.
pub fn clean(text: &str, max: usize) -> String {
    collapse(text, max, |c| {
        if c.is_whitespace() {
            ' '
        } else if c.is_control() || is_invisible(c) {
            '\u{FFFD}'
        } else {
            c
        }
    })
}

/// At most `max` characters of `text`, each passed through `map`; runs of spaces (after mapping) collapse to one,
/// leading and trailing ones are dropped, and a cut is marked with an ellipsis.
pub(crate) fn collapse(text: &str, max: usize, map: impl Fn(char) -> char) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(4)));
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars().map(map) {
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        if count == max {
            out.push('…');
            break;
        }
        out.push(c);
        count += 1;
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_removes_escapes_and_bounds_length() {
        assert_eq!(clean("a\u{1b}[31mred\n\nb", 100), "a\u{FFFD}[31mred b");
        assert_eq!(clean("abcdef", 3), "abc…");
        assert_eq!(clean("x\u{202E}y\u{E0041}", 10), "x\u{FFFD}y\u{FFFD}");
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate_bytes("héllo", 2), "h");
        assert_eq!(truncate_bytes("héllo", 3), "hé");
        assert_eq!(truncate_bytes("abc", 10), "abc");
    }
}
