//! Change ids: the 1.x grammar with its messages (`openspec new change`), the tools' 3-64 char
//! limit, and the archive's looser folder-name check.

/// Why `id` is not a valid change id for the tools, in the CLI's words; None when valid.
///
/// The tools accept 3 to 64 characters of the 1.x grammar `^[a-z0-9]+(?:-[a-z0-9]+)*$`, except
/// `archive`, which is where archived changes live and never a change.
pub fn slug_problem(id: &str) -> Option<String> {
    if let Some(p) = cli_name_problem(id) {
        return Some(p);
    }
    if id == ARCHIVE_FOLDER {
        return Some(format!(
            "'{ARCHIVE_FOLDER}' names the folder of archived changes (changes/{ARCHIVE_FOLDER}); choose another name"
        ));
    }
    let n = id.chars().count();
    if n < MIN_SLUG_CHARS {
        return Some(format!(
            "Change name is too short ({MIN_SLUG_CHARS} characters min)"
        ));
    }
    if n > MAX_SLUG_CHARS {
        return Some(format!(
            "Change name is too long ({MAX_SLUG_CHARS} characters max)"
        ));
    }
    None
}

/// The 1.x id rules in their order, first match wins (`change-utils.js`).
pub fn cli_name_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("Change name cannot be empty".into());
    }
    if id.chars().count() > 200 {
        return Some("Change name is too long (200 characters max)".into());
    }
    if is_kebab(id) {
        return None;
    }
    let msg = if id.chars().any(|c| c.is_ascii_uppercase()) {
        "Change name must be lowercase (use kebab-case)"
    } else if id.chars().any(char::is_whitespace) {
        "Change name cannot contain spaces (use hyphens instead)"
    } else if id.contains('_') {
        "Change name cannot contain underscores (use hyphens instead)"
    } else if id.starts_with('-') {
        "Change name cannot start with a hyphen"
    } else if id.ends_with('-') {
        "Change name cannot end with a hyphen"
    } else if id.contains("--") {
        "Change name cannot contain consecutive hyphens"
    } else {
        "Change name can only contain lowercase letters, numbers, and hyphens"
    };
    Some(msg.into())
}

/// The archive's own check (`folderStyleNameProblem`): not empty, not `.`/`..`, no separators.
pub fn folder_name_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("Change name must not be empty".into());
    }
    if id == "." || id == ".." {
        return Some(format!("Change name must not be '{id}'"));
    }
    if id.contains(['/', '\\']) {
        return Some("Change name must not contain path separators".into());
    }
    None
}

/// True for `^[a-z0-9]+(?:-[a-z0-9]+)*$`.
pub fn is_kebab(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Shortest slug the tools accept.
pub const MIN_SLUG_CHARS: usize = 3;
/// Longest slug the tools accept.
pub const MAX_SLUG_CHARS: usize = 64;
/// `changes/<this>` holds archived changes, so no change may be named so.
pub const ARCHIVE_FOLDER: &str = "archive";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_messages_in_order() {
        let cases = [
            ("", Some("Change name cannot be empty")),
            (
                "Add",
                Some("Change name must be lowercase (use kebab-case)"),
            ),
            (
                "a b",
                Some("Change name cannot contain spaces (use hyphens instead)"),
            ),
            (
                "a_b",
                Some("Change name cannot contain underscores (use hyphens instead)"),
            ),
            ("-ab", Some("Change name cannot start with a hyphen")),
            ("ab-", Some("Change name cannot end with a hyphen")),
            (
                "a--b",
                Some("Change name cannot contain consecutive hyphens"),
            ),
            (
                "a.b",
                Some("Change name can only contain lowercase letters, numbers, and hyphens"),
            ),
            ("2025-01-15-fix", None),
        ];
        for (id, want) in cases {
            assert_eq!(cli_name_problem(id).as_deref(), want, "{id:?}");
        }
    }

    #[test]
    fn tool_slugs_are_three_to_sixty_four_chars() {
        assert!(slug_problem("ab").is_some());
        assert!(slug_problem("abc").is_none());
        assert!(slug_problem(&"a".repeat(64)).is_none());
        assert!(slug_problem(&"a".repeat(65)).is_some());
    }
}
