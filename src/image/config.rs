//! Editing an image config as JSON that keeps every field the build does not change.
//!
//! The base config is parsed into a `serde_json::Value` with `preserve_order`,
//! so unknown fields (Healthcheck, Shell, vendor keys) and key order survive;
//! only the fields named in [`ConfigChanges`] are touched.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Architecture, Digest};

/// One new layer's history entry.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub diff_id: Digest,
    pub created_by: String,
    pub comment: Option<String>,
}

/// Everything the build changes in a config.
#[derive(Debug, Clone)]
pub struct ConfigChanges<'a> {
    pub architecture: Architecture,
    /// RFC 3339 time for `created` and the new history entries.
    pub created: String,
    pub entrypoint: Option<&'a [String]>,
    pub cmd: Option<&'a [String]>,
    pub workdir: Option<&'a str>,
    /// Set or replace these variables; the manifest wins over the base.
    pub env: &'a [(String, String)],
    pub labels: &'a BTreeMap<String, String>,
    /// New layers, in order, appended after the base's.
    pub new_layers: &'a [HistoryEntry],
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the base image config is not a JSON object: {0}")]
    NotAnObject(String),
    #[error("the base image config field {field} is malformed: {message}")]
    Malformed { field: &'static str, message: String },
    #[error(
        "the base image is built for {base_arch}, but the function's architecture is {arch}: pin a base for linux/{wanted}"
    )]
    ArchitectureMismatch {
        base_arch: String,
        arch: Architecture,
        wanted: &'static str,
    },
}

/// Applies `changes` to the exact bytes of a base config and returns the new bytes.
pub fn edit_config(base: &[u8], changes: &ConfigChanges<'_>) -> Result<Vec<u8>, ConfigError> {
    let mut root: Value =
        serde_json::from_slice(base).map_err(|e| ConfigError::NotAnObject(e.to_string()))?;
    let obj = root
        .as_object_mut()
        .ok_or_else(|| ConfigError::NotAnObject("not an object".into()))?;

    let base_diff_ids = obj
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .map(|a| a.len())
        .unwrap_or(0);

    set_platform(obj, changes.architecture)?;
    obj.insert("created".into(), Value::String(changes.created.clone()));
    edit_runtime_config(obj, changes)?;
    append_layers(obj, changes, base_diff_ids)?;

    Ok(serde_json::to_vec(&root).expect("a JSON value always serialises"))
}

fn set_platform(obj: &mut Map<String, Value>, arch: Architecture) -> Result<(), ConfigError> {
    if let Some(base_arch) = obj.get("architecture").and_then(Value::as_str)
        && !base_arch.is_empty()
        && Architecture::parse(base_arch) != Some(arch)
    {
        return Err(ConfigError::ArchitectureMismatch {
            base_arch: base_arch.to_string(),
            arch,
            wanted: arch.oci_name(),
        });
    }
    obj.insert("architecture".into(), Value::String(arch.oci_name().into()));
    obj.insert("os".into(), Value::String("linux".into()));
    Ok(())
}

/// Edits the `config` object: Entrypoint, Cmd, WorkingDir, Env, Labels.
fn edit_runtime_config(obj: &mut Map<String, Value>, changes: &ConfigChanges<'_>) -> Result<(), ConfigError> {
    let config = obj.entry("config").or_insert_with(|| Value::Object(Map::new()));
    if config.is_null() {
        *config = Value::Object(Map::new());
    }
    let config = config.as_object_mut().ok_or(ConfigError::Malformed {
        field: "config",
        message: "not an object".into(),
    })?;

    if let Some(entrypoint) = changes.entrypoint {
        config.insert("Entrypoint".into(), json!(entrypoint));
        // As in a Dockerfile: a new entrypoint drops the base's Cmd unless a
        // Cmd is given too, so the base's arguments are not passed to it.
        if changes.cmd.is_none() {
            config.remove("Cmd");
        }
    }
    if let Some(cmd) = changes.cmd {
        config.insert("Cmd".into(), json!(cmd));
    }
    if let Some(workdir) = changes.workdir {
        config.insert("WorkingDir".into(), Value::String(workdir.to_string()));
    }
    if !changes.env.is_empty() {
        let mut env: Vec<String> = match config.get("Env") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or(ConfigError::Malformed {
                    field: "config.Env",
                    message: "not a list of strings".into(),
                })?,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => {
                return Err(ConfigError::Malformed {
                    field: "config.Env",
                    message: "not a list".into(),
                });
            }
        };
        for (key, value) in changes.env {
            let entry = format!("{key}={value}");
            let prefix = format!("{key}=");
            match env.iter_mut().find(|e| e.starts_with(&prefix) || *e == key) {
                Some(existing) => *existing = entry,
                None => env.push(entry),
            }
        }
        config.insert("Env".into(), json!(env));
    }
    if !changes.labels.is_empty() {
        let labels = config
            .entry("Labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if labels.is_null() {
            *labels = Value::Object(Map::new());
        }
        let labels = labels.as_object_mut().ok_or(ConfigError::Malformed {
            field: "config.Labels",
            message: "not an object".into(),
        })?;
        for (k, v) in changes.labels {
            labels.insert(k.clone(), Value::String(v.clone()));
        }
    }
    Ok(())
}

/// Appends the new diff_ids and one history entry per new layer.
fn append_layers(
    obj: &mut Map<String, Value>,
    changes: &ConfigChanges<'_>,
    base_layers: usize,
) -> Result<(), ConfigError> {
    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    let rootfs = rootfs.as_object_mut().ok_or(ConfigError::Malformed {
        field: "rootfs",
        message: "not an object".into(),
    })?;
    rootfs
        .entry("type")
        .or_insert_with(|| Value::String("layers".into()));
    let diff_ids = rootfs
        .entry("diff_ids")
        .or_insert_with(|| Value::Array(Vec::new()));
    if diff_ids.is_null() {
        *diff_ids = Value::Array(Vec::new());
    }
    let diff_ids = diff_ids.as_array_mut().ok_or(ConfigError::Malformed {
        field: "rootfs.diff_ids",
        message: "not a list".into(),
    })?;
    diff_ids.extend(
        changes
            .new_layers
            .iter()
            .map(|l| Value::String(l.diff_id.to_string())),
    );

    let history = obj.entry("history").or_insert(Value::Null);
    if history.is_null() {
        // AWS base images ship `"history": null`. Tools that pair history
        // entries with layers expect one non-empty entry per base layer, so
        // the missing ones are stood in for before ours are added.
        let placeholders = (0..base_layers)
            .map(|_| json!({"created_by": "(base image layer; the base config has no history)"}))
            .collect();
        *history = Value::Array(placeholders);
    }
    let history = history.as_array_mut().ok_or(ConfigError::Malformed {
        field: "history",
        message: "not a list".into(),
    })?;
    for layer in changes.new_layers {
        let mut entry = Map::new();
        entry.insert("created".into(), Value::String(changes.created.clone()));
        entry.insert("created_by".into(), Value::String(layer.created_by.clone()));
        if let Some(comment) = &layer.comment {
            entry.insert("comment".into(), Value::String(comment.clone()));
        }
        history.push(Value::Object(entry));
    }
    Ok(())
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (`1980-01-01T00:00:00Z`).
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's published algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes<'a>(
        env: &'a [(String, String)],
        labels: &'a BTreeMap<String, String>,
        layers: &'a [HistoryEntry],
    ) -> ConfigChanges<'a> {
        ConfigChanges {
            architecture: Architecture::X86_64,
            created: rfc3339(315_532_800),
            entrypoint: None,
            cmd: None,
            workdir: None,
            env,
            labels,
            new_layers: layers,
        }
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(315_532_800), "1980-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn keeps_unknown_fields_and_order_and_merges_env() {
        let base = br#"{"zzz":1,"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","LANG=C"],"Healthcheck":{"Test":["NONE"]},"Cmd":null,"Entrypoint":["/lambda-entrypoint.sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},"history":null,"vendor":{"x":true}}"#;
        let env = vec![
            ("LANG".to_string(), "en_US.UTF-8".to_string()),
            ("NEW".to_string(), "1".to_string()),
        ];
        let labels = BTreeMap::from([("team".to_string(), "a".to_string())]);
        let layers = vec![HistoryEntry {
            diff_id: Digest::of(b"l"),
            created_by: "code".into(),
            comment: None,
        }];
        let mut c = changes(&env, &labels, &layers);
        let cmd = vec!["app.handler".to_string()];
        c.cmd = Some(&cmd);
        let out = edit_config(base, &c).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "zzz", "key order kept: {keys:?}");
        assert_eq!(v["vendor"]["x"], true);
        assert_eq!(v["config"]["Healthcheck"]["Test"][0], "NONE");
        assert_eq!(
            v["config"]["Env"],
            json!(["PATH=/bin", "LANG=en_US.UTF-8", "NEW=1"])
        );
        assert_eq!(v["config"]["Entrypoint"], json!(["/lambda-entrypoint.sh"]));
        assert_eq!(v["config"]["Cmd"], json!(["app.handler"]));
        assert_eq!(v["config"]["Labels"]["team"], "a");
        assert_eq!(v["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["history"].as_array().unwrap().len(),
            2,
            "placeholder for the base layer + ours"
        );
        assert_eq!(v["created"], "1980-01-01T00:00:00Z");
    }

    #[test]
    fn refuses_a_base_of_another_architecture() {
        let base = br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let labels = BTreeMap::new();
        let err = edit_config(base, &changes(&[], &labels, &[])).unwrap_err();
        assert!(err.to_string().contains("arm64"), "{err}");
    }

    #[test]
    fn new_entrypoint_drops_base_cmd() {
        let base = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["old"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let labels = BTreeMap::new();
        let ep = vec!["/var/runtime/bootstrap".to_string()];
        let mut c = changes(&[], &labels, &[]);
        c.entrypoint = Some(&ep);
        let v: Value = serde_json::from_slice(&edit_config(base, &c).unwrap()).unwrap();
        assert!(v["config"].get("Cmd").is_none());
    }
}
