//! What Lambda takes from an image and gives a function: ENTRYPOINT + CMD,
//! WORKDIR and ENV from the config, and Lambda's own variables around them.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::image::Architecture;

/// Lambda's defaults and limits (AWS quotas page).
pub const DEFAULT_MEMORY_MB: u32 = 128;
pub const DEFAULT_TIMEOUT_S: u32 = 3;
pub const DEFAULT_EPHEMERAL_MB: u32 = 512;
pub const MEMORY_RANGE: (u32, u32) = (128, 10_240);
pub const TIMEOUT_RANGE: (u32, u32) = (1, 900);
pub const EPHEMERAL_RANGE: (u32, u32) = (512, 10_240);

/// The parts of an image config Lambda honours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRunConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub architecture: Option<String>,
}

impl ImageRunConfig {
    /// Reads ENTRYPOINT, CMD, ENV and WORKDIR from config JSON.
    pub fn from_config(config: &serde_json::Value) -> ImageRunConfig {
        let c = &config["config"];
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                .unwrap_or_default()
        };
        let env = strings(&c["Env"])
            .into_iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        ImageRunConfig {
            entrypoint: strings(&c["Entrypoint"]),
            cmd: strings(&c["Cmd"]),
            env,
            workdir: c["WorkingDir"]
                .as_str()
                .filter(|w| !w.is_empty())
                .map(String::from),
            architecture: config["architecture"].as_str().map(String::from),
        }
    }

    /// The command Lambda runs: ENTRYPOINT followed by CMD.
    pub fn command(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    pub fn arch(&self) -> Option<Architecture> {
        match self.architecture.as_deref() {
            Some("amd64") => Some(Architecture::X86_64),
            Some("arm64") => Some(Architecture::Arm64),
            _ => None,
        }
    }
}

/// The function's settings: flags over `[function]` keys over Lambda's defaults.
#[derive(Debug, Clone)]
pub struct FunctionSettings {
    pub name: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub ephemeral_mb: u32,
    /// Set over the image's ENV (any variable, Lambda's own included).
    pub env: Vec<(String, String)>,
    pub region: String,
    /// The handler from the manifest, for `_HANDLER` when the image has no CMD.
    pub handler: Option<String>,
}

impl FunctionSettings {
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:012345678912:function:{}",
            self.region, self.name
        )
    }
}

const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin/:/bin:/opt/bin";
const DEFAULT_LD_LIBRARY_PATH: &str =
    "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib";

/// The environment a function process starts with: the image's ENV, then
/// the variables Lambda sets, then the user's; the Runtime API address last
/// (nothing may point the runtime elsewhere).
pub fn environment(
    image: &ImageRunConfig,
    settings: &FunctionSettings,
    runtime_api: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v));
    };
    for (k, v) in &image.env {
        set(k, v.clone());
    }
    let has = |k: &str| image.env.iter().any(|(key, _)| key == k);
    if !has("PATH") {
        set("PATH", DEFAULT_PATH.into());
    }
    if !has("LD_LIBRARY_PATH") {
        set("LD_LIBRARY_PATH", DEFAULT_LD_LIBRARY_PATH.into());
    }
    if !has("LANG") {
        set("LANG", "en_US.UTF-8".into());
    }
    let handler = image.cmd.first().cloned().or_else(|| settings.handler.clone());
    set("_HANDLER", handler.unwrap_or_default());
    set("LAMBDA_TASK_ROOT", "/var/task".into());
    set("LAMBDA_RUNTIME_DIR", "/var/runtime".into());
    set("AWS_LAMBDA_FUNCTION_NAME", settings.name.clone());
    set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", settings.memory_mb.to_string());
    set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into());
    set(
        "AWS_LAMBDA_LOG_GROUP_NAME",
        format!("/aws/lambda/{}", settings.name),
    );
    set("AWS_LAMBDA_LOG_STREAM_NAME", log_stream_name());
    set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into());
    set("AWS_REGION", settings.region.clone());
    set("AWS_DEFAULT_REGION", settings.region.clone());
    set("AWS_EXECUTION_ENV", "AWS_Lambda_Image".into());
    set("TZ", ":UTC".into());
    for (k, v) in &settings.env {
        set(k, v.clone());
    }
    set("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string());
    env
}

/// `2026/12/01/[$LATEST]<32 hex>`, as Lambda names a log stream.
fn log_stream_name() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let date = crate::image::config::rfc3339(secs);
    format!(
        "{}/{}/{}/[$LATEST]{}",
        &date[0..4],
        &date[5..7],
        &date[8..10],
        crate::runtime_api::ids::hex_id()
    )
}

/// `2026-12-01T20:00:00.123Z`.
pub fn timestamp_now() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let base = crate::image::config::rfc3339(now.as_secs());
    format!("{}.{:03}Z", base.trim_end_matches('Z'), now.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> FunctionSettings {
        FunctionSettings {
            name: "f".into(),
            memory_mb: 256,
            timeout_s: 3,
            ephemeral_mb: 512,
            env: vec![
                ("LANG".into(), "C".into()),
                ("AWS_LAMBDA_RUNTIME_API".into(), "x".into()),
            ],
            region: "eu-west-1".into(),
            handler: Some("app.handler".into()),
        }
    }

    #[test]
    fn user_variables_win_except_the_runtime_api_address() {
        let image = ImageRunConfig {
            env: vec![
                ("LANG".into(), "en".into()),
                ("PATH".into(), "/var/lang/bin:/usr/bin".into()),
            ],
            ..Default::default()
        };
        let env = environment(&image, &settings(), "127.0.0.1:1");
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("LANG"), Some("C"));
        assert_eq!(get("PATH"), Some("/var/lang/bin:/usr/bin"));
        assert_eq!(get("AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:1"));
        assert_eq!(get("_HANDLER"), Some("app.handler"));
        assert_eq!(get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), Some("256"));
        assert!(get("AWS_LAMBDA_LOG_STREAM_NAME").unwrap().contains("[$LATEST]"));
        assert_eq!(env.iter().filter(|(k, _)| k == "LANG").count(), 1);
        assert!(timestamp_now().ends_with('Z'));
    }
}
