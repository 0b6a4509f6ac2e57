//! Splitting tool names into words, so `deleteRepo`, `delete_repo`, `delete-repo` and `repo.delete` all
//! match a search for "delete".

/// The lowercase words of an identifier: split at every non-alphanumeric character and at camelCase
/// boundaries (`HTTPServer` → `http server`, `getS3Object` → `get s3 object`).
pub(crate) fn split_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in name.split(|c: char| !c.is_alphanumeric()).filter(|p| !p.is_empty()) {
        let chars: Vec<char> = part.chars().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (prev, cur) = (chars[i - 1], chars[i]);
            let next_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
            let boundary = (cur.is_uppercase() && (prev.is_lowercase() || prev.is_numeric()))
                || (cur.is_uppercase() && prev.is_uppercase() && next_lower);
            if boundary {
                words.push(chars[start..i].iter().collect::<String>().to_lowercase());
                start = i;
            }
        }
        words.push(chars[start..].iter().collect::<String>().to_lowercase());
    }
    words
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn splits_every_naming_style() {
        assert_eq!(split_words("delete_repo"), ["delete", "repo"]);
        assert_eq!(split_words("deleteRepo"), ["delete", "repo"]);
        assert_eq!(split_words("delete-repo"), ["delete", "repo"]);
        assert_eq!(split_words("github.repos.delete"), ["github", "repos", "delete"]);
        assert_eq!(split_words("HTTPServerStart"), ["http", "server", "start"]);
        assert_eq!(split_words("getS3Object"), ["get", "s3", "object"]);
        assert_eq!(split_words("gitlab__DropDB"), ["gitlab", "drop", "db"]);
        assert!(split_words("__").is_empty());
    }
}
