//! Where a JSON path (`tools.x.deny_if[0].conditions[1].op`) is in a policy's text, so that errors found
//! after parsing (a regex that does not compile, a counter defined twice) still point at a line and column.
//!
//! serde forgets positions once a value is built, so this is a second, tolerant pass over the text: a small
//! JSON tokenizer, and for YAML a reader of block-style indentation (the style people write by hand; flow
//! style inside YAML is located at its parent). Anything it cannot follow is simply not located: the path alone
//! still names the place.

use std::collections::HashMap;

type Positions = HashMap<String, (usize, usize)>;
/// (path, where written again, where first), 1-based lines and columns.
pub(crate) type Duplicates = Vec<(String, (usize, usize), (usize, usize))>;

/// Path → 1-based (line, column) of the key (for object members) or the value (for array elements).
#[derive(Debug, Default)]
pub(crate) struct Locations {
    map: HashMap<String, (usize, usize)>,
    /// Object keys written twice: (path, where again, where first). serde keeps only the last silently.
    pub(crate) duplicates: Duplicates,
}

impl Locations {
    pub(crate) fn of_json(text: &str) -> Locations {
        let mut scanner = JsonScanner {
            chars: text.char_indices().peekable(),
            line: 1,
            col: 1,
            out: HashMap::new(),
            duplicates: Vec::new(),
        };
        scanner.skip_ws();
        scanner.value(String::new(), 0);
        Locations { map: scanner.out, duplicates: scanner.duplicates }
    }

    pub(crate) fn of_yaml(text: &str) -> Locations {
        let (map, duplicates) = yaml_block_locations(text);
        Locations { map, duplicates }
    }

    /// The position of `path`, or of its nearest located ancestor.
    pub(crate) fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path;
        loop {
            if let Some(pos) = self.map.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

/// Deeper than any policy (serde_json itself refuses past 128).
const MAX_DEPTH: usize = 160;

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

struct JsonScanner<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    line: usize,
    col: usize,
    out: HashMap<String, (usize, usize)>,
    duplicates: Duplicates,
}

impl JsonScanner<'_> {
    fn bump(&mut self) -> Option<char> {
        let (_, c) = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().map(|(_, c)| *c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn string(&mut self) -> String {
        let mut s = String::new();
        self.bump(); // opening quote
        while let Some(c) = self.bump() {
            match c {
                '"' => break,
                '\\' => {
                    if let Some(e) = self.bump() {
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                }
                c => s.push(c),
            }
        }
        s
    }

    /// Scan one value whose path is `path`. The text may be one that serde refused for nesting too deep, so
    /// the scanner bounds its own recursion and simply stops locating below that depth.
    fn value(&mut self, path: String, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match self.peek() {
            Some('{') => {
                self.bump();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some('"') => {
                            let pos = (self.line, self.col);
                            let key = self.string();
                            let child = join_key(&path, &key);
                            match self.out.get(&child) {
                                Some(first) => self.duplicates.push((child.clone(), pos, *first)),
                                None => {
                                    self.out.insert(child.clone(), pos);
                                }
                            }
                            self.skip_ws();
                            if self.peek() == Some(':') {
                                self.bump();
                            }
                            self.skip_ws();
                            self.value(child, depth + 1);
                            self.skip_ws();
                            if self.peek() == Some(',') {
                                self.bump();
                            }
                        }
                        Some('}') => {
                            self.bump();
                            return;
                        }
                        _ => return,
                    }
                }
            }
            Some('[') => {
                self.bump();
                let mut index = 0;
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some(']') => {
                            self.bump();
                            return;
                        }
                        None => return,
                        _ => {
                            let child = format!("{path}[{index}]");
                            self.out.entry(child.clone()).or_insert((self.line, self.col));
                            self.value(child, depth + 1);
                            index += 1;
                            self.skip_ws();
                            if self.peek() == Some(',') {
                                self.bump();
                            } else if self.peek() != Some(']') {
                                return;
                            }
                        }
                    }
                }
            }
            Some('"') => {
                self.string();
            }
            Some(_) => {
                while self.peek().is_some_and(|c| !matches!(c, ',' | '}' | ']') && !c.is_whitespace()) {
                    self.bump();
                }
            }
            None => {}
        }
    }
}

/// Block-style YAML: `key:` lines and `- ` items, nested by indentation.
fn yaml_block_locations(text: &str) -> (Positions, Duplicates) {
    // Each open container: (indent of its entries, path, next sequence index).
    struct Frame {
        indent: usize,
        path: String,
        next_index: usize,
        /// A sequence written at its key's own indentation (`key:\n- item`).
        indentless: bool,
    }
    let mut out = HashMap::new();
    let mut duplicates = Vec::new();
    let mut stack: Vec<Frame> = vec![Frame { indent: 0, path: String::new(), next_index: 0, indentless: false }];
    // The path of the last key seen, which a deeper indentation opens.
    let mut last: Option<(usize, String)> = None;
    // Inside a block scalar (`key: |`): lines indented deeper than its key are text, not structure.
    let mut block_scalar_of: Option<usize> = None;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        let mut indent = raw.len() - trimmed.len();
        if let Some(key_indent) = block_scalar_of {
            if indent > key_indent {
                continue;
            }
            block_scalar_of = None;
        }
        if trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let mut rest = trimmed;
        // Close or open containers according to indentation.
        let is_item = rest.starts_with("- ") || rest == "-";
        if let Some((last_indent, last_path)) = last.take()
            && (indent > last_indent || (indent == last_indent && is_item))
        {
            stack.push(Frame { indent, path: last_path, next_index: 0, indentless: indent == last_indent });
        }
        while stack.len() > 1
            && stack.last().is_some_and(|f| indent < f.indent || (indent == f.indent && f.indentless && !is_item))
        {
            stack.pop();
        }
        // Sequence items: `- value` or `- key: value` (the item's keys sit two columns right).
        while let Some(after) = rest.strip_prefix("- ").or_else(|| (rest == "-").then_some("")) {
            let frame = stack.last_mut().expect("root frame");
            let item = format!("{}[{}]", frame.path, frame.next_index);
            frame.next_index += 1;
            out.entry(item.clone()).or_insert((line_no, indent + 1));
            let inner = after.trim_start();
            let inner_indent = indent + (rest.len() - inner.len());
            if inner.is_empty() {
                last = Some((indent, item));
                rest = "";
                break;
            }
            stack.push(Frame { indent: inner_indent, path: item, next_index: 0, indentless: false });
            indent = inner_indent;
            rest = inner;
        }
        if rest.is_empty() {
            continue;
        }
        if let Some(key) = yaml_key(rest) {
            let value = rest.split_once(':').map_or("", |(_, v)| v).trim();
            if value.starts_with('|') || value.starts_with('>') {
                block_scalar_of = Some(indent);
            }
            let path = join_key(&stack.last().map_or(String::new(), |f| f.path.clone()), &key);
            match out.get(&path) {
                Some(first) => duplicates.push((path.clone(), (line_no, indent + 1), *first)),
                None => {
                    out.insert(path.clone(), (line_no, indent + 1));
                }
            }
            last = Some((indent, path));
        }
    }
    (out, duplicates)
}

/// The key of a `key: value` or `key:` line, unquoted.
fn yaml_key(line: &str) -> Option<String> {
    let (key, rest) = if let Some(stripped) = line.strip_prefix('"') {
        let end = stripped.find('"')?;
        (stripped[..end].to_string(), &stripped[end + 1..])
    } else if let Some(stripped) = line.strip_prefix('\'') {
        let end = stripped.find('\'')?;
        (stripped[..end].to_string(), &stripped[end + 1..])
    } else {
        let end = line.find(':')?;
        (line[..end].trim_end().to_string(), &line[end..])
    };
    let rest = rest.trim_start();
    (rest == ":" || rest.starts_with(": ")).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_point_at_keys_and_items() {
        let text = "{\n  \"tools\": {\n    \"a\": {\"deny_if\": [\n      {\"conditions\": [{\"path\": \"args.x\", \"op\": \"gt\"}]}\n    ]}\n  }\n}";
        let loc = Locations::of_json(text);
        assert_eq!(loc.find("tools"), Some((2, 3)));
        assert_eq!(loc.find("tools.a.deny_if[0]"), Some((4, 7)));
        assert_eq!(loc.find("tools.a.deny_if[0].conditions[0].op"), Some((4, 42)));
        // An unknown descendant falls back to its nearest ancestor.
        assert_eq!(loc.find("tools.a.deny_if[0].conditions[0].op.zzz"), Some((4, 42)));
    }

    #[test]
    fn keys_written_twice_are_found() {
        let json = Locations::of_json("{\"tools\": {\"a\": {}, \"b\": {},\n \"a\": {\"action\": \"deny\"}}}");
        assert_eq!(json.duplicates, [("tools.a".to_string(), (2, 2), (1, 12))]);
        let yaml = Locations::of_yaml("tools:\n  a: {}\n  b:\n    action: deny\n  a:\n    action: allow\n");
        assert_eq!(yaml.duplicates, [("tools.a".to_string(), (5, 3), (2, 3))]);
        // Text in a block scalar is not structure.
        let yaml =
            Locations::of_yaml("tools:\n  a:\n    reason: |\n      Note: one\n      Note: two\n    action: deny\n");
        assert!(yaml.duplicates.is_empty(), "{:?}", yaml.duplicates);
        assert_eq!(yaml.find("tools.a.action"), Some((6, 5)));
    }

    #[test]
    fn yaml_block_paths_follow_indentation() {
        let text = "version: \"1\"\ntools:\n  create_refund:\n    deny_if:\n      - conditions:\n          - path: args.amount\n            op: greater\n        on_deny: no\n  \"*\":\n    limits:\n      - counter: all\n";
        let loc = Locations::of_yaml(text);
        assert_eq!(loc.find("version"), Some((1, 1)));
        assert_eq!(loc.find("tools.create_refund.deny_if[0]"), Some((5, 7)));
        assert_eq!(loc.find("tools.create_refund.deny_if[0].conditions[0].path"), Some((6, 13)));
        assert_eq!(loc.find("tools.create_refund.deny_if[0].conditions[0].op"), Some((7, 13)));
        assert_eq!(loc.find("tools.create_refund.deny_if[0].on_deny"), Some((8, 9)));
        assert_eq!(loc.find("tools.*.limits[0].counter"), Some((11, 9)));
    }
}
