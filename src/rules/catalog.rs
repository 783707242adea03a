//! Every Lambda rule as data: a stable id, a name, a severity, what it means,
//! how to fix it and where the fact comes from (see shared/LAMBDA-FACTS.md).

use super::{Rule, Severity};

const AWS_IMAGES: &str = "AWS Lambda developer guide, images-create";
const FIELD_TAR: &str =
    "field: aspect-build/rules_aws#145, nlewo/nix2container#54, awslabs/aws-lambda-web-adapter#236";
const AWS_NONROOT: &str = "AWS: functions run as a non-root user on a read-only filesystem";

pub const INDEX_NOT_MANIFEST: Rule = Rule {
    id: "LI001",
    name: "index-not-manifest",
    severity: Severity::Error,
    summary: "the reference is an image index or manifest list; Lambda accepts only a single-platform image manifest",
    fix: "deploy the digest of the platform's own manifest, or push without an index (docker buildx --provenance=false)",
    source: "AWS: Lambda does not support multi-architecture container images; field: docker/buildx#1533",
};
pub const MANIFEST_MEDIA_TYPE: Rule = Rule {
    id: "LI002",
    name: "manifest-media-type",
    severity: Severity::Error,
    summary: "the manifest, config or a layer has a media type Lambda does not accept",
    fix: "rebuild the image as an OCI or Docker V2 schema 2 image with gzip layers",
    source: AWS_IMAGES,
};
pub const MEDIA_TYPE_MIX: Rule = Rule {
    id: "LI003",
    name: "media-type-mix",
    severity: Severity::Error,
    summary: "the manifest mixes Docker and OCI media types",
    fix: "convert every descriptor to one family (e.g. skopeo copy --format oci)",
    source: "field: bazel-contrib/rules_img#518",
};
pub const LAYER_NOT_GZIP: Rule = Rule {
    id: "LI004",
    name: "layer-not-gzip",
    severity: Severity::Error,
    summary: "a layer is uncompressed or zstd-compressed; only gzip layers are known to deploy",
    fix: "recompress the layer with gzip (skopeo copy --dest-compress-format gzip)",
    source: "field: bazel-contrib/rules_oci#645, #777 (UnsupportedImageLayerDetected)",
};
pub const IMAGE_TOO_LARGE: Rule = Rule {
    id: "LI010",
    name: "image-too-large",
    severity: Severity::Error,
    summary: "the uncompressed layers add up to more than Lambda's 10 GiB image size quota",
    fix: "drop unneeded files or dependencies, or use a smaller base image",
    source: "AWS quota: container image code package size 10 GB (uncompressed, all layers)",
};
pub const MANIFEST_TOO_LARGE: Rule = Rule {
    id: "LI011",
    name: "manifest-too-large",
    severity: Severity::Error,
    summary: "the manifest is larger than the 25,400-byte budget",
    fix: "merge layers (each layer adds about 200 bytes) and drop annotations",
    source: "project limit (seed requirement); ECR's own cap is 4 MiB",
};
pub const MANY_LAYERS: Rule = Rule {
    id: "LI012",
    name: "many-layers",
    severity: Severity::Warning,
    summary: "the image has more than 100 layers",
    fix: "merge layers: every layer costs pull time and manifest bytes",
    source: "field: openai/tart#890; overlay runtimes stop at 127 layers",
};
pub const TOO_MANY_LAYERS: Rule = Rule {
    id: "LI013",
    name: "too-many-layers",
    severity: Severity::Error,
    summary: "the image has more than 127 layers, past what overlay runtimes mount",
    fix: "merge layers until there are at most 127",
    source: "overlayfs lower-directory limit; field: openai/tart#890",
};
pub const OS_NOT_LINUX: Rule = Rule {
    id: "LI020",
    name: "os-not-linux",
    severity: Severity::Error,
    summary: "the image config's os is not linux",
    fix: "use a linux base image",
    source: AWS_IMAGES,
};
pub const ARCH_UNSUPPORTED: Rule = Rule {
    id: "LI021",
    name: "architecture-unsupported",
    severity: Severity::Error,
    summary: "the image config's architecture is neither amd64 nor arm64",
    fix: "build the image for linux/amd64 (x86_64) or linux/arm64",
    source: AWS_IMAGES,
};
pub const ARCH_MISMATCH: Rule = Rule {
    id: "LI022",
    name: "architecture-mismatch",
    severity: Severity::Error,
    summary: "the image's architecture (config or ELF binary) is not the function's",
    fix: "build for the function's architecture or change the function's architecture",
    source: "field: aws/aws-lambda-base-images#26, #34, #61 (exec format error at invoke)",
};
pub const NO_ENTRYPOINT: Rule = Rule {
    id: "LI030",
    name: "no-entrypoint",
    severity: Severity::Error,
    summary: "the image config has neither ENTRYPOINT nor CMD, so Lambda has nothing to run",
    fix: "set an entrypoint (e.g. /lambda-entrypoint.sh or /var/runtime/bootstrap) or a CMD",
    source: "AWS: Lambda honours ENTRYPOINT, CMD, WORKDIR and ENV",
};
pub const ENTRYPOINT_NOT_ABSOLUTE: Rule = Rule {
    id: "LI031",
    name: "entrypoint-not-absolute",
    severity: Severity::Error,
    summary: "the entrypoint is not an absolute path",
    fix: "write the entrypoint as an absolute path, e.g. /var/runtime/bootstrap",
    source: "AWS troubleshooting: container image entrypoint must be an absolute path",
};
pub const ENTRYPOINT_SYMLINK: Rule = Rule {
    id: "LI032",
    name: "entrypoint-symlink",
    severity: Severity::Error,
    summary: "the entrypoint is a symbolic link",
    fix: "point the entrypoint at the file itself, not a link to it",
    source: "AWS troubleshooting: entrypoint must not be a symlink",
};
pub const ENTRYPOINT_MISSING: Rule = Rule {
    id: "LI033",
    name: "entrypoint-missing",
    severity: Severity::Error,
    summary: "the entrypoint does not exist in the image's flattened filesystem",
    fix: "add the file to a layer, or fix the entrypoint path",
    source: "AWS: the entrypoint is exec'd at init",
};
pub const ENTRYPOINT_NOT_EXECUTABLE: Rule = Rule {
    id: "LI034",
    name: "entrypoint-not-executable",
    severity: Severity::Error,
    summary: "the entrypoint is not a regular file executable by other users (o+x)",
    fix: "chmod 0755 the entrypoint before adding it to the image",
    source: AWS_NONROOT,
};
pub const HARD_LINK: Rule = Rule {
    id: "LI040",
    name: "hard-link",
    severity: Severity::Error,
    summary: "a layer holds hard-link entries, which Lambda's unpacker rejects",
    fix: "write hard links as regular files (lambda-img layers never contain them)",
    source: FIELD_TAR,
};
pub const MISSING_PARENT: Rule = Rule {
    id: "LI041",
    name: "missing-parent",
    severity: Severity::Error,
    summary: "a layer has entries whose parent directory has no earlier entry in the same layer",
    fix: "write every ancestor directory before its children in each layer",
    source: FIELD_TAR,
};
pub const UNSAFE_ENTRY_NAME: Rule = Rule {
    id: "LI042",
    name: "unsafe-entry-name",
    severity: Severity::Error,
    summary: "a layer has entries whose names are absolute or contain `..`, which an unpacker may write outside the image root",
    fix: "rebuild the layer with relative names below the root (tar -C ROOT .), or use another base image",
    source: "OCI image spec: layer changesets use relative paths; CVE-2019-14271 and tar path-traversal advisories",
};
pub const DIRECTORY_REPLACED: Rule = Rule {
    id: "LI043",
    name: "directory-replaced",
    severity: Severity::Error,
    summary: "a layer replaces a directory of a lower layer with a file or symlink, hiding everything below it",
    fix: "write the file inside the directory instead (e.g. `[[layer]] destination = \"/var/task/\"`), or rename it",
    source: "podman/runc: `workdir \"/var/task\" exists but is not a directory`; OCI image spec: changesets",
};
pub const DANGLING_SYMLINK: Rule = Rule {
    id: "LI044",
    name: "dangling-symlink",
    severity: Severity::Warning,
    summary: "a symbolic link's target does not exist in the final image (base and every layer)",
    fix: "add the target to a layer, fix the link, or exclude it; targets under /proc, /sys, /dev, /run and /tmp are not checked",
    source: "lambda-img: links are stored, never followed, and resolve inside the image at run time",
};
pub const SCRIPT_INTERPRETER_MISSING: Rule = Rule {
    id: "LI045",
    name: "script-interpreter-missing",
    severity: Severity::Error,
    summary: "a #! script entrypoint or bootstrap names an interpreter that does not exist in the image",
    fix: "add the interpreter to the image, or change the #! line to one the image has (e.g. #!/bin/sh)",
    source: "Linux execve(2): ENOENT when the #! interpreter is missing; Lambda reports Runtime.InvalidEntrypoint",
};
pub const ELF_INTERPRETER_MISSING: Rule = Rule {
    id: "LI046",
    name: "elf-interpreter-missing",
    severity: Severity::Error,
    summary: "a dynamically linked ELF entrypoint or bootstrap needs a loader (PT_INTERP) the image lacks, e.g. a glibc binary on scratch",
    fix: "link the program statically (musl, CGO_ENABLED=0), or build on a base that has its C library",
    source: "Linux execve(2): ENOENT when the PT_INTERP loader is missing; Lambda reports Runtime.InvalidEntrypoint",
};
pub const UNREADABLE_FILE: Rule = Rule {
    id: "LI050",
    name: "unreadable-file",
    severity: Severity::Error,
    summary: "files under /var/task, /opt or /var/runtime are not readable by other users",
    fix: "chmod o+r (e.g. 0644, 0755 for executables) before adding the files",
    source: AWS_NONROOT,
};
pub const UNENTERABLE_DIR: Rule = Rule {
    id: "LI051",
    name: "unenterable-dir",
    severity: Severity::Error,
    summary: "directories under /var/task, /opt or /var/runtime cannot be entered by other users",
    fix: "chmod o+rx the directories (e.g. 0755)",
    source: AWS_NONROOT,
};
pub const HANDLER_NOT_FOUND: Rule = Rule {
    id: "LI060",
    name: "handler-not-found",
    severity: Severity::Warning,
    summary: "the handler cannot be found for the runtime",
    fix: "check the handler string (module.function) against the files in /var/task",
    source: "AWS: handler naming for Python (module.function) and Node.js (file.function)",
};
pub const IGNORED_CONFIG: Rule = Rule {
    id: "LI070",
    name: "ignored-config-field",
    severity: Severity::Info,
    summary: "the image config sets fields Lambda ignores (User, ExposedPorts, Healthcheck, Volumes)",
    fix: "nothing to do; drop the fields to avoid surprise",
    source: "AWS: Lambda honours ENTRYPOINT, CMD, WORKDIR and ENV only",
};
pub const CONFIG_INVALID: Rule = Rule {
    id: "LI071",
    name: "config-invalid",
    severity: Severity::Error,
    summary: "the image config is not a JSON object Lambda can read",
    fix: "rebuild the image with a valid config",
    source: "OCI image spec: image config",
};
pub const CONTENT_NOT_CHECKED: Rule = Rule {
    id: "LI090",
    name: "content-not-checked",
    severity: Severity::Info,
    summary: "some layers could not be read, so the filesystem rules were skipped",
    fix: "fix the layer errors above, then check again",
    source: "lambda-img",
};
pub const BASE_LAGS: Rule = Rule {
    id: "LI091",
    name: "base-lags-tag",
    severity: Severity::Warning,
    summary: "the image records a base digest that its tag no longer names: the base has a newer build",
    fix: "run `lambda-img pin --recursive` and rebuild (`lambda-img build --recursive`) to pick up the new base",
    source: "lambda-img (AWS patches the OS and runtime of its base images under the same tags)",
};

/// Every rule, in id order.
pub static RULES: &[Rule] = &[
    INDEX_NOT_MANIFEST,
    MANIFEST_MEDIA_TYPE,
    MEDIA_TYPE_MIX,
    LAYER_NOT_GZIP,
    IMAGE_TOO_LARGE,
    MANIFEST_TOO_LARGE,
    MANY_LAYERS,
    TOO_MANY_LAYERS,
    OS_NOT_LINUX,
    ARCH_UNSUPPORTED,
    ARCH_MISMATCH,
    NO_ENTRYPOINT,
    ENTRYPOINT_NOT_ABSOLUTE,
    ENTRYPOINT_SYMLINK,
    ENTRYPOINT_MISSING,
    ENTRYPOINT_NOT_EXECUTABLE,
    HARD_LINK,
    MISSING_PARENT,
    UNSAFE_ENTRY_NAME,
    DIRECTORY_REPLACED,
    DANGLING_SYMLINK,
    SCRIPT_INTERPRETER_MISSING,
    ELF_INTERPRETER_MISSING,
    UNREADABLE_FILE,
    UNENTERABLE_DIR,
    HANDLER_NOT_FOUND,
    IGNORED_CONFIG,
    CONFIG_INVALID,
    CONTENT_NOT_CHECKED,
    BASE_LAGS,
];

/// What remembered findings depend on besides the image: the version and the
/// set of rules, so a new rule is never hidden by a scan kept from before it.
pub fn catalog_key() -> String {
    let ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
    format!("{} {}", env!("CARGO_PKG_VERSION"), ids.join(","))
}

/// The rule with this id or name.
pub fn rule(id_or_name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id_or_name || r.name == id_or_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_unique() {
        let mut ids: Vec<_> = RULES.iter().map(|r| r.id).collect();
        let mut names: Vec<_> = RULES.iter().map(|r| r.name).collect();
        ids.sort();
        ids.dedup();
        names.sort();
        names.dedup();
        assert_eq!(ids.len(), RULES.len());
        assert_eq!(names.len(), RULES.len());
        assert_eq!(rule("hard-link").unwrap().id, "LI040");
    }
}
