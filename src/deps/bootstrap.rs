//! A custom runtime's bootstrap: checked to be an ELF executable for the
//! function's architecture before it goes into a layer.

use std::io::Read;
use std::path::Path;

use super::DepsError;
use crate::elf::{EM_AARCH64, EM_X86_64, ElfProblem, machine_name};
use crate::image::Architecture;

/// Checks that `path` is an ELF file whose `e_machine` fits `arch`.
pub fn check_elf(path: &Path, arch: Architecture) -> Result<(), DepsError> {
    let mut head = [0u8; 20];
    let mut f = std::fs::File::open(path).map_err(|source| DepsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let n = read_full(&mut f, &mut head).map_err(|source| DepsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let not_elf = |why: &str| DepsError::NotElf {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    let machine = match crate::elf::parse(&head[..n]) {
        Ok(h) => h.machine,
        Err(ElfProblem::NotElf) => {
            return Err(not_elf(if head.starts_with(b"#!") {
                "it is a script; Lambda runs it, but lambda-img cannot check its architecture, so ship it in [[layer]] with mode = \"0755\""
            } else {
                "no ELF header"
            }));
        }
        Err(ElfProblem::UnknownByteOrder) => return Err(not_elf("unknown ELF byte order")),
    };
    let expected = match arch {
        Architecture::X86_64 => EM_X86_64,
        Architecture::Arm64 => EM_AARCH64,
    };
    if machine != expected {
        return Err(DepsError::WrongMachine {
            path: path.to_path_buf(),
            found: machine_name(machine),
            expected: machine_name(expected),
            arch: arch.to_string(),
        });
    }
    Ok(())
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(machine: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
        h.resize(18, 0);
        h.extend_from_slice(&machine.to_le_bytes());
        h.resize(64, 0);
        h
    }

    #[test]
    fn machine_must_match_the_architecture() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bootstrap");
        std::fs::write(&p, elf(EM_AARCH64)).unwrap();
        check_elf(&p, Architecture::Arm64).unwrap();
        let err = check_elf(&p, Architecture::X86_64).unwrap_err().to_string();
        assert!(
            err.contains("bootstrap") && err.contains("EM_AARCH64") && err.contains("EM_X86_64"),
            "{err}"
        );
        std::fs::write(&p, "#!/bin/sh\necho hi\n").unwrap();
        let err = check_elf(&p, Architecture::X86_64).unwrap_err().to_string();
        assert!(err.contains("script"), "{err}");
        // The host's own executable is an ELF for the host.
        let exe = std::env::current_exe().unwrap();
        if cfg!(target_arch = "x86_64") {
            check_elf(&exe, Architecture::X86_64).unwrap();
        }
    }
}
