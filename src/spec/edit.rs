//! Edits a plan file's text in place, keeping everything else as written
//! (comments, order, quoting): after a role change, the plan file's primary
//! and the promoted standby exchange their servers.
//!
//! Only single-line scalar values are edited (`postgres: "host=… "`,
//! `instance: db-2`, also inside `{ … }`); anything else is refused, and the
//! caller prints the change for a person to make.

use super::locate::locate;
use std::ops::Range;

/// The byte range of the scalar value of `path` (`standbys[0].postgres`), as
/// written (quotes included), or why it cannot be edited.
pub fn value_span(text: &str, path: &str) -> Result<Range<usize>, String> {
    let key = path.rsplit('.').next().unwrap_or(path);
    let (line, column) =
        locate(text, path).ok_or_else(|| format!("`{path}` is not in the file"))?;
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    let line_text = text[line_start..].lines().next().unwrap_or_default();
    let at = line_start + column - 1;
    let rest = &text[at..line_start + line_text.len()];
    let after_key = rest
        .strip_prefix(key)
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(|| format!("`{path}` is not in the file"))?;
    let spaces = after_key.len() - after_key.trim_start().len();
    let start = at + key.len() + 1 + spaces;
    let value = &text[start..line_start + line_text.len()];
    let len = match value.chars().next() {
        None | Some('|') | Some('>') => {
            return Err(format!(
                "`{path}` is not a one-line value (a block scalar or on the next line)"
            ))
        }
        Some(q @ ('"' | '\'')) => {
            let mut escaped = false;
            let close = value[1..]
                .char_indices()
                .find(|&(_, c)| {
                    let end = c == q && !escaped;
                    escaped = q == '"' && c == '\\' && !escaped;
                    end
                })
                .ok_or_else(|| format!("`{path}`: the quoted value does not end on its line"))?;
            close.0 + 2
        }
        Some(_) => {
            let inline_flow = text[line_start..at].contains('{');
            let end = value
                .char_indices()
                .find(|&(i, c)| {
                    (c == '#' && value[..i].ends_with(' '))
                        || (inline_flow && (c == ',' || c == '}'))
                })
                .map_or(value.len(), |(i, _)| i);
            value[..end].trim_end().len()
        }
    };
    Ok(start..start + len)
}

/// Exchanges the values of `a` and `b`, each kept exactly as written.
pub fn swap_values(text: &str, a: &str, b: &str) -> Result<String, String> {
    let ra = value_span(text, a)?;
    let rb = value_span(text, b)?;
    let (first, second) = if ra.start < rb.start {
        (ra, rb)
    } else {
        (rb, ra)
    };
    if first.end > second.start {
        return Err(format!("`{a}` and `{b}` overlap"));
    }
    Ok(format!(
        "{}{}{}{}{}",
        &text[..first.start],
        &text[second.clone()],
        &text[first.end..second.start],
        &text[first.clone()],
        &text[second.end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"version: 1
cluster: orders   # the orders database
primary:
  # the writer
  postgres: "host=10.0.0.1 port=5432 user=dr"   # primary
  rds: { instance: orders-1, multi_az: true }
standbys:
  - name: b
    postgres: 'host=10.0.0.2 port=5432 user=dr'
    rds: { instance: orders-2 }
  - name: c
    postgres: host=10.0.0.3 # bare
"#;

    #[test]
    fn values_are_found_quoted_bare_and_inside_braces() {
        let at = |p| &TEXT[value_span(TEXT, p).unwrap()];
        assert_eq!(
            at("primary.postgres"),
            "\"host=10.0.0.1 port=5432 user=dr\""
        );
        assert_eq!(
            at("standbys[0].postgres"),
            "'host=10.0.0.2 port=5432 user=dr'"
        );
        assert_eq!(at("standbys[1].postgres"), "host=10.0.0.3");
        assert_eq!(at("primary.rds.instance"), "orders-1");
        assert_eq!(at("standbys[0].rds.instance"), "orders-2");
        assert!(value_span(TEXT, "standbys[1].rds.instance").is_err());
    }

    #[test]
    fn swapping_keeps_comments_and_everything_else() {
        let swapped = swap_values(TEXT, "primary.postgres", "standbys[0].postgres").unwrap();
        assert_eq!(
            swapped,
            TEXT.replace("\"host=10.0.0.1 port=5432 user=dr\"", "@")
                .replace(
                    "'host=10.0.0.2 port=5432 user=dr'",
                    "\"host=10.0.0.1 port=5432 user=dr\""
                )
                .replace('@', "'host=10.0.0.2 port=5432 user=dr'")
        );
        let back = swap_values(&swapped, "primary.postgres", "standbys[0].postgres").unwrap();
        assert_eq!(back, TEXT);
        let rds = swap_values(TEXT, "primary.rds.instance", "standbys[0].rds.instance").unwrap();
        assert!(
            rds.contains("rds: { instance: orders-2, multi_az: true }"),
            "{rds}"
        );
        assert!(rds.contains("rds: { instance: orders-1 }"), "{rds}");
    }

    #[test]
    fn a_block_value_is_refused() {
        let text = "primary:\n  postgres: >\n    host=a\n";
        assert!(value_span(text, "primary.postgres")
            .unwrap_err()
            .contains("one-line"));
    }
}
