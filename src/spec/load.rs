//! Loading: read a plan file, parse it, validate it, place every error.

use super::validate::validate;
use super::{locate, sha256_hex, yaml, Desired, PlanFile, SpecError, SpecErrors};
use std::path::{Path, PathBuf};

/// Checks a caller adds to loading (lint adds the validity of `lint.ignore`):
/// (key path, message) pairs, located and reported like the loader's own.
pub type ExtraCheck = fn(&PlanFile) -> Vec<(String, String)>;

/// Reads and validates one plan file.
pub fn load_file(path: &Path) -> Result<Desired, SpecErrors> {
    load_file_with(path, &[])
}

/// Reads and validates one plan file, with the callers' own checks too.
pub fn load_file_with(path: &Path, extra: &[ExtraCheck]) -> Result<Desired, SpecErrors> {
    let text =
        std::fs::read_to_string(path).map_err(|e| SpecErrors::unreadable(path, "plan file", &e))?;
    load_str_with(path, &text, extra)
}

/// Validates plan-file text; `path` is only used to name the file in errors.
pub fn load_str(path: &Path, text: &str) -> Result<Desired, SpecErrors> {
    load_str_with(path, text, &[])
}

/// [`load_str`] with the callers' own checks.
pub fn load_str_with(path: &Path, text: &str, extra: &[ExtraCheck]) -> Result<Desired, SpecErrors> {
    let plan: PlanFile = yaml::from_str(text).map_err(|e| {
        let empty = !text.lines().any(locate::is_content);
        let ((line, column), message) = if empty {
            let message = "the file is empty (nothing but blank lines and comments); expected a plan file (see `version: 1`, `cluster:`, ...)";
            ((1, 1), message.to_string())
        } else {
            (locate::place_parse_error(text, &e), e.message)
        };
        SpecErrors(vec![SpecError {
            file: path.to_path_buf(),
            line: Some(line),
            column: Some(column),
            path: e.path,
            message,
        }])
    })?;
    let mut problems = validate(&plan);
    for check in extra {
        problems.extend(check(&plan));
    }
    if !problems.is_empty() {
        return Err(SpecErrors(
            problems
                .into_iter()
                .map(|(key, message)| {
                    let at = locate::locate(text, &key);
                    SpecError {
                        file: path.to_path_buf(),
                        line: at.map(|a| a.0),
                        column: at.map(|a| a.1),
                        path: key,
                        message,
                    }
                })
                .collect(),
        ));
    }
    Ok(Desired {
        source: path.to_path_buf(),
        text: text.to_string(),
        text_sha256: sha256_hex(text.as_bytes()),
        plan,
    })
}

/// The plan files a PATH names: the file itself, or every `*.yaml`/`*.yml` in a folder (sorted).
pub fn plan_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        // Let the caller's read report a missing file with its name.
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} holds no *.yaml or *.yml plan files", path.display()),
        ));
    }
    Ok(files)
}
