//! The one place that calls the YAML library.
//!
//! serde_yaml is marked deprecated upstream; keeping every call here means a swap
//! to a maintained fork (serde_yml, serde_norway, ...) changes this file alone.

use serde::de::DeserializeOwned;

/// A YAML error with its position and key path separated from the message.
#[derive(Debug)]
pub struct YamlError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub path: String,
    pub message: String,
}

pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_yaml::from_str(text).map_err(|err| {
        let location = err.location();
        let mut message = err.to_string();
        // serde_yaml appends " at line L column C"; we report the position separately.
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        // ...and prefixes the key path as "a.b[0].c: message".
        let mut path = String::new();
        if let Some((head, tail)) = message.split_once(": ") {
            if !head.is_empty() && !head.contains(' ') {
                path = head.to_string();
                message = tail.to_string();
            }
        }
        message = plain_words(&message);
        YamlError {
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            path,
            message,
        }
    })
}

/// serde's words for Rust types, in the words of a plan file's reader.
fn plain_words(message: &str) -> String {
    if message.contains("more than one document") {
        return SECOND_DOCUMENT.to_string();
    }
    if let Some((key, _)) = message
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.split_once('`'))
    {
        // serde's words for a struct; the same wording as unique_map's for a map.
        return format!("duplicate key `{key}`: {DUPLICATE}");
    }
    let mut out = message.to_string();
    if let Some(at) = out.find("expected struct ") {
        out.replace_range(at.., "expected a mapping of keys");
    }
    for int in ["u8", "u16", "u32", "u64", "usize", "i32", "i64"] {
        if out.ends_with(&format!("expected {int}")) {
            let cut = out.len() - int.len();
            out.replace_range(cut.., "a whole number");
        }
    }
    out
}

/// The key of a "given twice" error (a struct's field, which [`plain_words`]
/// has reworded, or a [`unique_map`] key).
pub fn duplicate_key(message: &str) -> Option<&str> {
    message
        .strip_prefix("duplicate key `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(key, _)| key)
}

pub fn is_missing_key(message: &str) -> bool {
    message.starts_with("missing field `")
}

/// Why a key given twice is refused, for struct fields and maps alike.
const DUPLICATE: &str =
    "a key may appear once in a mapping (YAML forbids a second; pgdr will not pick one)";

const SECOND_DOCUMENT: &str =
    "a second YAML document starts here (`---`); a plan file is one document";

pub fn is_second_document(message: &str) -> bool {
    message == SECOND_DOCUMENT
}

/// Deserialises a map that refuses a key given twice: YAML forbids it, and
/// serde's maps would otherwise keep the last silently (`settings:` with
/// `work_mem` twice must not pick one for the user).
pub fn unique_map<'de, D, K, V>(
    deserializer: D,
) -> Result<std::collections::BTreeMap<K, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: serde::Deserialize<'de> + Ord + std::fmt::Display,
    V: serde::Deserialize<'de>,
{
    struct Visitor<K, V>(std::marker::PhantomData<(K, V)>);
    impl<'de, K, V> serde::de::Visitor<'de> for Visitor<K, V>
    where
        K: serde::Deserialize<'de> + Ord + std::fmt::Display,
        V: serde::Deserialize<'de>,
    {
        type Value = std::collections::BTreeMap<K, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a mapping")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = std::collections::BTreeMap::new();
            while let Some(key) = map.next_key::<K>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate key `{key}`: {DUPLICATE}"
                    )));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Visitor(std::marker::PhantomData))
}
