//! Finds the line and column of a key path (`standbys[1].slot`) in plan-file text.
//!
//! serde reports positions only for errors it raises itself; checks made after
//! parsing (and later, lint findings) still need to point at a line. This reads
//! the block-style YAML people write by hand; for anything it cannot follow it
//! answers with the nearest enclosing key it did find, never with a wrong line.

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        for index in rest.split('[') {
            if let Ok(n) = index.trim_end_matches(']').parse() {
                out.push(Segment::Index(n));
            }
        }
    }
    out
}

/// A line that holds YAML content: not blank, a comment or a document marker.
pub(super) fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#') && t != "---"
}

fn raw_indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_dash(line: &str) -> bool {
    let t = line.trim_start_matches(' ');
    t == "-" || t.starts_with("- ")
}

/// Column (0-based) where the line's key starts, looking through a leading `- `.
fn key_indent(line: &str) -> usize {
    let mut indent = raw_indent(line);
    let mut rest = &line[indent..];
    while let Some(r) = rest.strip_prefix("- ") {
        let spaces = r.len() - r.trim_start_matches(' ').len();
        indent += 2 + spaces;
        rest = &r[spaces..];
    }
    indent
}

fn key_name(line: &str) -> Option<&str> {
    let rest = &line[key_indent(line).min(line.len())..];
    let colon = rest.find(':')?;
    let after = &rest[colon + 1..];
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    Some(rest[..colon].trim_matches(|c| c == '"' || c == '\''))
}

/// `(line, column)`, both 1-based, of `path` in `text`, or of its nearest ancestor found.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    locate_occurrence(text, path, 0)
}

/// Where the key `path` names is written a second time in its mapping (the
/// duplicate YAML refuses), or where it is written the first time if the
/// second cannot be followed.
pub fn locate_duplicate(text: &str, path: &str) -> Option<(usize, usize)> {
    locate_occurrence(text, path, 1).or_else(|| locate(text, path))
}

/// [`locate`], taking the `nth` (0-based) appearance of the path's last key
/// among its siblings; `None` when there is no such appearance.
fn locate_occurrence(text: &str, path: &str, nth: usize) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let (mut lo, mut hi) = (0, lines.len());
    let mut found: Option<(usize, usize)> = None;
    let segments = segments(path);
    let last = segments.len().saturating_sub(1);
    for (position, segment) in segments.into_iter().enumerate() {
        let content = (lo..hi).filter(|&i| is_content(lines[i]));
        // Only the last key is counted; every ancestor is its first appearance.
        let skip = if position == last { nth } else { 0 };
        let fallback = if skip == 0 { found } else { None };
        match segment {
            Segment::Key(key) => {
                let Some(indent) = content.clone().map(|i| key_indent(lines[i])).min() else {
                    // No block children: the value may be a flow mapping on the parent's line.
                    return flow_key(&lines, found, key, skip).or(fallback);
                };
                let Some(at) = content
                    .clone()
                    .filter(|&i| key_indent(lines[i]) == indent && key_name(lines[i]) == Some(key))
                    .nth(skip)
                else {
                    return flow_key(&lines, found, key, skip).or(fallback);
                };
                found = Some((at + 1, indent + 1));
                lo = at + 1;
                hi = (lo..hi)
                    .find(|&i| {
                        is_content(lines[i])
                            && (raw_indent(lines[i]) < indent
                                || (raw_indent(lines[i]) == indent && !is_dash(lines[i])))
                    })
                    .unwrap_or(hi);
            }
            Segment::Index(n) => {
                let dashes: Vec<usize> = content.filter(|&i| is_dash(lines[i])).collect();
                let indent = dashes.iter().map(|&i| raw_indent(lines[i])).min()?;
                let items: Vec<usize> = dashes
                    .into_iter()
                    .filter(|&i| raw_indent(lines[i]) == indent)
                    .collect();
                let Some(&at) = items.get(n) else {
                    return found;
                };
                found = Some((at + 1, indent + 1));
                lo = at;
                hi = (at + 1..hi)
                    .find(|&i| is_content(lines[i]) && raw_indent(lines[i]) <= indent)
                    .unwrap_or(hi);
            }
        }
    }
    found
}

/// The `nth` (0-based) appearance of a key inside `{ ... }` on the line found so far.
fn flow_key(
    lines: &[&str],
    found: Option<(usize, usize)>,
    key: &str,
    nth: usize,
) -> Option<(usize, usize)> {
    let (line, _) = found?;
    let text = lines[line - 1];
    let open = text.find('{')?;
    let needle = format!("{key}:");
    let mut from = open;
    let mut seen = 0;
    while let Some(pos) = text[from..].find(&needle) {
        let at = from + pos;
        let before = text[..at].chars().last();
        if matches!(before, Some('{') | Some(' ') | Some(',')) {
            if seen == nth {
                return Some((line, at + 1));
            }
            seen += 1;
        }
        from = at + needle.len();
    }
    None
}

/// Where a parse error is: at the offending key, not where the parser noticed.
///
/// serde_yaml places a duplicate key and a missing key at the start of their
/// mapping, a second document nowhere; this places them on the second
/// appearance of the key, on the key whose mapping lacks one, and on the `---`
/// that starts the second document. Anything else keeps the parser's place,
/// or the key path's place when the parser gave none.
pub fn place_parse_error(text: &str, e: &super::yaml::YamlError) -> (usize, usize) {
    let child = |key: &str| match e.path.as_str() {
        "" => key.to_string(),
        parent => format!("{parent}.{key}"),
    };
    let placed = if let Some(key) = super::yaml::duplicate_key(&e.message) {
        locate_duplicate(text, &child(key))
    } else if super::yaml::is_missing_key(&e.message) && !e.path.is_empty() {
        locate(text, &e.path)
    } else if super::yaml::is_second_document(&e.message) {
        second_document(text)
    } else {
        None
    };
    let first_content = || {
        text.lines()
            .position(is_content)
            .map_or((1, 1), |i| (i + 1, 1))
    };
    placed
        .or(e.line.map(|l| (l, e.column.unwrap_or(1))))
        .or_else(|| locate(text, &e.path))
        .unwrap_or_else(first_content)
}

/// The `---` line that ends the first document (the one after some content).
fn second_document(text: &str) -> Option<(usize, usize)> {
    let mut content = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if (t == "---" || t.starts_with("--- ")) && content {
            return Some((i + 1, 1));
        }
        content |= is_content(line);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{locate, locate_duplicate};

    const TEXT: &str = "\
version: 1
cluster: orders
# a comment
archive:
  bucket: b
  wal_retention: 35d
  base_backups: { every: 1d, keep: 7 }
standbys:
  - name: a
    slot: a_slot
  - name: b
    slot: b_slot
settings:
  wal_level: replica
";

    #[test]
    fn finds_nested_keys_items_and_flow_keys() {
        assert_eq!(locate(TEXT, "cluster"), Some((2, 1)));
        assert_eq!(locate(TEXT, "archive.wal_retention"), Some((6, 3)));
        assert_eq!(locate(TEXT, "archive.base_backups.keep"), Some((7, 30)));
        assert_eq!(locate(TEXT, "standbys[1]"), Some((11, 3)));
        assert_eq!(locate(TEXT, "standbys[1].slot"), Some((12, 5)));
        assert_eq!(locate(TEXT, "standbys[0].name"), Some((9, 5)));
        assert_eq!(locate(TEXT, "settings.wal_level"), Some((14, 3)));
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        assert_eq!(locate(TEXT, "archive.object_lock"), Some((4, 1)));
        assert_eq!(locate(TEXT, "standbys[7].name"), Some((8, 1)));
        assert_eq!(locate(TEXT, "nothing"), None);
    }

    #[test]
    fn finds_the_second_appearance_of_a_duplicated_key() {
        let text = "version: 1\ncluster: a\nobjectives:\n  rpo: 5m\n  rto: 1h\n  rpo: 6m\ncluster: b\nflow: { a: 1, b: 2, a: 3 }\n";
        assert_eq!(locate_duplicate(text, "cluster"), Some((7, 1)));
        assert_eq!(locate_duplicate(text, "objectives.rpo"), Some((6, 3)));
        assert_eq!(locate_duplicate(text, "flow.a"), Some((8, 21)));
        // Not written twice (a key the parser saw through an anchor): its first place.
        assert_eq!(locate_duplicate(text, "version"), Some((1, 1)));
    }

    #[test]
    fn reads_sequences_at_the_parent_indent() {
        let text = "standbys:\n- name: a\n- name: b\n  slot: s\nendpoint:\n  ttl: 30s\n";
        assert_eq!(locate(text, "standbys[1].slot"), Some((4, 3)));
        assert_eq!(locate(text, "endpoint.ttl"), Some((6, 3)));
    }
}
