//! The template files, embedded in the binary. Each runtime's directory under
//! templates/ holds its own files; templates/common holds what every project
//! gets. Files stored without a leading dot (`dockerignore`) are written with
//! one, so the template tree itself is not affected by them.

use super::TemplateRuntime;

/// One file of a template: where it goes in the project and its text.
#[derive(Debug, Clone, Copy)]
pub struct TemplateFile {
    pub path: &'static str,
    pub contents: &'static str,
    pub executable: bool,
}

macro_rules! file {
    ($dest:literal, $src:literal) => {
        TemplateFile {
            path: $dest,
            contents: include_str!(concat!("../../templates/", $src)),
            executable: false,
        }
    };
}

const COMMON: &[TemplateFile] = &[
    file!("buildspec.yml", "common/buildspec.yml"),
    file!(".gitignore", "common/gitignore"),
];

const PYTHON: &[TemplateFile] = &[
    file!("lambda-img.toml", "python3.12/lambda-img.toml"),
    file!("src/app.py", "python3.12/src/app.py"),
    file!("requirements.txt", "python3.12/requirements.txt"),
    file!(".dockerignore", "python3.12/dockerignore"),
    file!("Makefile", "python3.12/Makefile"),
];

const NODE: &[TemplateFile] = &[
    file!("lambda-img.toml", "nodejs20.x/lambda-img.toml"),
    file!("src/index.mjs", "nodejs20.x/src/index.mjs"),
    file!("package.json", "nodejs20.x/package.json"),
    file!("package-lock.json", "nodejs20.x/package-lock.json"),
    file!(".dockerignore", "nodejs20.x/dockerignore"),
    file!("Makefile", "nodejs20.x/Makefile"),
];

const JAVA: &[TemplateFile] = &[
    file!("lambda-img.toml", "java21/lambda-img.toml"),
    file!(
        "src/main/java/example/Handler.java",
        "java21/src/main/java/example/Handler.java"
    ),
    file!("lib/README.md", "java21/lib/README.md"),
    file!(".dockerignore", "java21/dockerignore"),
    file!("Makefile", "java21/Makefile"),
];

const PROVIDED: &[TemplateFile] = &[
    file!("lambda-img.toml", "provided.al2023/lambda-img.toml"),
    file!("src/main.rs", "provided.al2023/src/main.rs"),
    file!("Cargo.toml", "provided.al2023/Cargo.toml"),
    file!(".dockerignore", "provided.al2023/dockerignore"),
    file!("Makefile", "provided.al2023/Makefile"),
];

/// Every file of the runtime's template, the runtime's own first.
pub fn files(runtime: TemplateRuntime) -> Vec<TemplateFile> {
    let own = match runtime {
        TemplateRuntime::Python312 => PYTHON,
        TemplateRuntime::Nodejs20 => NODE,
        TemplateRuntime::Java21 => JAVA,
        TemplateRuntime::ProvidedAl2023 => PROVIDED,
    };
    own.iter().chain(COMMON).copied().collect()
}
