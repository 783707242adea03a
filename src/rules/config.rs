//! The fields of an image config that rules and `inspect` read, taken
//! leniently from the JSON (base configs may lack fields or hold `null`).

use serde::Serialize;
use serde_json::Value;

/// One `history` entry of an image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub empty_layer: bool,
}

/// The config fields the rules and `inspect` use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageConfig {
    pub architecture: Option<String>,
    pub os: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    pub env: Vec<String>,
    /// Fields Lambda ignores that this config sets (`User=sbx`, `ExposedPorts=8080/tcp`).
    #[serde(skip)]
    pub ignored: Vec<String>,
    /// `None` when the config has no history (AWS base images: `"history": null`).
    #[serde(skip)]
    pub history: Option<Vec<HistoryEntry>>,
}

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        // Some tools write a lone string; Lambda would run it through no shell.
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn non_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    }
}

impl ImageConfig {
    /// Reads a config from its JSON bytes; `Err` says why it is not an object.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, String> {
        let json: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
        let Some(top) = json.as_object() else {
            return Err("not a JSON object".into());
        };
        let inner = top.get("config").or_else(|| top.get("container_config"));
        let get = |k: &str| inner.and_then(|c| c.get(k));
        let mut ignored = Vec::new();
        if let Some(user) = get("User").and_then(Value::as_str).filter(|u| !u.is_empty()) {
            ignored.push(format!("User={user}"));
        }
        for key in ["ExposedPorts", "Volumes"] {
            if non_empty(get(key)) {
                let names = get(key)
                    .and_then(Value::as_object)
                    .map(|o| o.keys().cloned().collect::<Vec<_>>().join(","))
                    .unwrap_or_default();
                ignored.push(format!("{key}={names}"));
            }
        }
        if non_empty(get("Healthcheck")) {
            ignored.push("Healthcheck".into());
        }
        let history = match top.get("history") {
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|h| HistoryEntry {
                        created: string(h.get("created")),
                        created_by: string(h.get("created_by")),
                        comment: string(h.get("comment")),
                        empty_layer: h.get("empty_layer").and_then(Value::as_bool).unwrap_or(false),
                    })
                    .collect(),
            ),
            _ => None,
        };
        Ok(ImageConfig {
            architecture: string(top.get("architecture")),
            os: string(top.get("os")),
            variant: string(top.get("variant")),
            created: string(top.get("created")),
            entrypoint: strings(get("Entrypoint")),
            cmd: strings(get("Cmd")),
            workdir: string(get("WorkingDir")).filter(|w| !w.is_empty()),
            env: strings(get("Env")),
            ignored,
            history,
        })
    }

    /// The value of `name` in the config's environment.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find_map(|e| e.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
    }

    /// The history entry of each layer, skipping `empty_layer` entries; `None`
    /// where history is missing or shorter than the layer list.
    pub fn layer_history(&self, layer_count: usize) -> Vec<Option<HistoryEntry>> {
        let mut out: Vec<Option<HistoryEntry>> = self
            .history
            .iter()
            .flatten()
            .filter(|h| !h.empty_layer)
            .take(layer_count)
            .cloned()
            .map(Some)
            .collect();
        out.resize(layer_count, None);
        out
    }

    /// The program Lambda execs: ENTRYPOINT[0], else CMD[0].
    pub fn program(&self) -> Option<&str> {
        self.entrypoint
            .first()
            .or_else(|| self.cmd.first())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_aws_shaped_config_with_null_history() {
        let c = ImageConfig::parse(
            br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/lambda-entrypoint.sh"],
            "Cmd":null,"Env":["LAMBDA_TASK_ROOT=/var/task"],"WorkingDir":"/var/task","User":""},"history":null}"#,
        )
        .unwrap();
        assert_eq!(c.program(), Some("/lambda-entrypoint.sh"));
        assert!(c.cmd.is_empty() && c.ignored.is_empty() && c.history.is_none());
        assert_eq!(c.env_var("LAMBDA_TASK_ROOT"), Some("/var/task"));
        assert_eq!(c.layer_history(2), vec![None, None]);
    }

    #[test]
    fn history_skips_empty_layers() {
        let c = ImageConfig::parse(
            br#"{"config":{"User":"1000","ExposedPorts":{"8080/tcp":{}}},"history":[{"created_by":"a"},{"created_by":"ENV x","empty_layer":true},{"created_by":"b"}]}"#,
        )
        .unwrap();
        let h = c.layer_history(2);
        assert_eq!(h[1].as_ref().unwrap().created_by.as_deref(), Some("b"));
        assert_eq!(c.ignored, vec!["User=1000", "ExposedPorts=8080/tcp"]);
    }
}
