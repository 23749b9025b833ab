//! README.md links only to files inside the repository (the external
//! interface is documented in `docs/`), and every link resolves: the file
//! exists, and so does the heading an anchor names.

use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The text outside fenced code blocks.
fn prose(markdown: &str) -> String {
    let mut inside = false;
    let mut out = String::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
            continue;
        }
        if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// GitHub's anchor of a heading: lowercase, spaces to hyphens, other
/// punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    prose(markdown)
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

/// The targets of the inline links `[text](target)`.
fn link_targets(markdown: &str) -> Vec<String> {
    let text = prose(markdown);
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|target| target.trim().to_owned())
        .collect()
}

#[test]
fn the_readme_links_only_to_files_of_the_repository_and_each_link_resolves() {
    let root = repository();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let targets = link_targets(&readme);
    assert!(!targets.is_empty());
    let text = prose(&readme);
    assert!(
        !text.contains("<http") && !text.contains("]: http"),
        "README.md has an autolink or a reference link to the web"
    );
    for target in targets {
        assert!(
            !target.contains("://") && !target.starts_with("mailto:") && !target.starts_with("//"),
            "README.md links outside the repository: {target}"
        );
        let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
        let file = if path.is_empty() {
            root.join("README.md")
        } else {
            root.join(path)
        };
        assert!(
            file.exists(),
            "README.md links to {path}, which does not exist"
        );
        if !anchor.is_empty() {
            let markdown = std::fs::read_to_string(&file).unwrap();
            assert!(
                anchors(&markdown).iter().any(|a| a == anchor),
                "README.md links to {target}: no such heading in {}",
                file.display()
            );
        }
    }
}

#[test]
fn the_link_check_sees_web_links_and_missing_headings() {
    let links = link_targets(
        "See [a](docs/a.md#x), [b](https://example.com).\n```\n[c](http://code)\n```\n",
    );
    assert_eq!(links, ["docs/a.md#x", "https://example.com"]);
    assert_eq!(
        slug(" Quick start: offline, no provider key"),
        "quick-start-offline-no-provider-key"
    );
    assert_eq!(anchors("# A `b` c\n```\n# not\n```\n"), ["a-b-c"]);
}
