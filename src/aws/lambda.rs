//! Lambda's control plane for an image function: read its configuration,
//! point it at a new image, publish a version, move an alias.

use aws_config::Region;

use super::session::sdk_error;
use super::{AwsError, AwsSession};

/// What deploy needs to know about a function (`GetFunction`), as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    pub arn: String,
    /// `Image` or `Zip`.
    pub package_type: Option<String>,
    /// `x86_64` / `arm64`, as Lambda spells them.
    pub architectures: Vec<String>,
    pub image_uri: Option<String>,
    pub resolved_image_uri: Option<String>,
    pub revision_id: Option<String>,
    pub version: Option<String>,
    pub code_sha256: Option<String>,
    pub state: Option<String>,
    /// `InProgress`, `Successful`, `Failed`.
    pub last_update_status: Option<String>,
    pub last_update_status_reason: Option<String>,
    pub last_update_status_reason_code: Option<String>,
}

/// One `UpdateFunctionCode` by image.
#[derive(Debug, Clone)]
pub struct UpdateRequest<'a> {
    pub function: &'a str,
    pub image_uri: &'a str,
    /// The revision read before: Lambda refuses the update if it changed.
    pub revision_id: Option<&'a str>,
}

/// What happened to an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasChange {
    pub name: String,
    pub arn: String,
    /// The version it pointed at before; `None` when it was created.
    pub previous_version: Option<String>,
    pub version: String,
}

fn info_from(
    config: Option<&aws_sdk_lambda::types::FunctionConfiguration>,
    code: Option<&aws_sdk_lambda::types::FunctionCodeLocation>,
) -> FunctionInfo {
    let mut info = FunctionInfo::default();
    if let Some(c) = config {
        info.name = c.function_name().unwrap_or_default().to_string();
        info.arn = c.function_arn().unwrap_or_default().to_string();
        info.package_type = c.package_type().map(|p| p.as_str().to_string());
        info.architectures = c.architectures().iter().map(|a| a.as_str().to_string()).collect();
        info.revision_id = c.revision_id().map(str::to_string);
        info.version = c.version().map(str::to_string);
        info.code_sha256 = c.code_sha256().map(str::to_string);
        info.state = c.state().map(|s| s.as_str().to_string());
        info.last_update_status = c.last_update_status().map(|s| s.as_str().to_string());
        info.last_update_status_reason = c.last_update_status_reason().map(str::to_string);
        info.last_update_status_reason_code =
            c.last_update_status_reason_code().map(|s| s.as_str().to_string());
    }
    if let Some(code) = code {
        info.image_uri = code.image_uri().map(str::to_string);
        info.resolved_image_uri = code.resolved_image_uri().map(str::to_string);
    }
    info
}

impl AwsSession {
    fn lambda(&self, region: Option<&str>) -> Result<aws_sdk_lambda::Client, AwsError> {
        let region = self.region_or_default(region)?;
        let config = aws_sdk_lambda::config::Builder::from(self.config())
            .region(Region::new(region))
            .build();
        Ok(aws_sdk_lambda::Client::from_conf(config))
    }

    /// `GetFunction` for `$LATEST`.
    pub fn get_function(&self, region: Option<&str>, function: &str) -> Result<FunctionInfo, AwsError> {
        let client = self.lambda(region)?;
        let out = self
            .block_on(client.get_function().function_name(function).send())
            .map_err(|e| sdk_error("Lambda", "GetFunction", e))?;
        Ok(info_from(out.configuration(), out.code()))
    }

    /// `UpdateFunctionCode` with an image URI (no publish: that waits for the update).
    pub fn update_function_code(
        &self,
        region: Option<&str>,
        request: &UpdateRequest<'_>,
    ) -> Result<FunctionInfo, AwsError> {
        let client = self.lambda(region)?;
        let mut call = client
            .update_function_code()
            .function_name(request.function)
            .image_uri(request.image_uri)
            .publish(false);
        if let Some(rev) = request.revision_id {
            call = call.revision_id(rev);
        }
        let out = self
            .block_on(call.send())
            .map_err(|e| sdk_error("Lambda", "UpdateFunctionCode", e))?;
        let config = aws_sdk_lambda::types::FunctionConfiguration::builder()
            .set_function_name(out.function_name().map(str::to_string))
            .set_function_arn(out.function_arn().map(str::to_string))
            .set_revision_id(out.revision_id().map(str::to_string))
            .set_last_update_status(out.last_update_status().cloned())
            .set_code_sha256(out.code_sha256().map(str::to_string))
            .build();
        Ok(info_from(Some(&config), None))
    }

    /// `PublishVersion` of what `$LATEST` is now; `code_sha256` (the image
    /// manifest digest's hex) and `revision_id` make Lambda refuse if the
    /// code changed since.
    pub fn publish_version(
        &self,
        region: Option<&str>,
        function: &str,
        code_sha256: &str,
        revision_id: Option<&str>,
        description: &str,
    ) -> Result<String, AwsError> {
        let client = self.lambda(region)?;
        let mut call = client
            .publish_version()
            .function_name(function)
            .code_sha256(code_sha256)
            .description(description);
        if let Some(rev) = revision_id {
            call = call.revision_id(rev);
        }
        let out = self
            .block_on(call.send())
            .map_err(|e| sdk_error("Lambda", "PublishVersion", e))?;
        out.version().map(str::to_string).ok_or(AwsError::Incomplete {
            service: "Lambda",
            operation: "PublishVersion",
            what: "Version",
        })
    }

    /// Points alias `name` at `version`, creating it when missing.
    pub fn set_alias(
        &self,
        region: Option<&str>,
        function: &str,
        name: &str,
        version: &str,
    ) -> Result<AliasChange, AwsError> {
        let client = self.lambda(region)?;
        let current = self.block_on(client.get_alias().function_name(function).name(name).send());
        match current {
            Ok(alias) => {
                let mut call = client
                    .update_alias()
                    .function_name(function)
                    .name(name)
                    .function_version(version);
                if let Some(rev) = alias.revision_id() {
                    call = call.revision_id(rev);
                }
                let out = self
                    .block_on(call.send())
                    .map_err(|e| sdk_error("Lambda", "UpdateAlias", e))?;
                Ok(AliasChange {
                    name: name.to_string(),
                    arn: out.alias_arn().unwrap_or_default().to_string(),
                    previous_version: alias.function_version().map(str::to_string),
                    version: version.to_string(),
                })
            }
            Err(e) => {
                let err = sdk_error("Lambda", "GetAlias", e);
                if err.code() != Some("ResourceNotFoundException") {
                    return Err(err);
                }
                let out = self
                    .block_on(
                        client
                            .create_alias()
                            .function_name(function)
                            .name(name)
                            .function_version(version)
                            .send(),
                    )
                    .map_err(|e| sdk_error("Lambda", "CreateAlias", e))?;
                Ok(AliasChange {
                    name: name.to_string(),
                    arn: out.alias_arn().unwrap_or_default().to_string(),
                    previous_version: None,
                    version: version.to_string(),
                })
            }
        }
    }
}
