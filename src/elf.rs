//! The one ELF header reader: what the rules and the dependency checks need
//! from an executable's first bytes (its machine, and the dynamic loader its
//! PT_INTERP program header names). Pure: works on bytes already read.

/// Bytes to keep of a program whose loader is wanted: the ELF header,
/// program headers and the PT_INTERP string sit well inside 4 KiB in every
/// linker's output.
pub const PROGRAM_HEAD: usize = 4096;
/// Bytes up to and including `e_machine`.
pub const MACHINE_HEAD: usize = 20;

pub const EM_386: u16 = 3;
pub const EM_ARM: u16 = 40;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
pub const EM_RISCV: u16 = 243;

const PT_INTERP: u32 = 3;

/// What is wrong with bytes that should be an ELF header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfProblem {
    /// No `\x7fELF` magic (a script, or data), or fewer than 20 bytes.
    NotElf,
    /// `EI_DATA` is neither 1 (little-endian) nor 2 (big-endian).
    UnknownByteOrder,
}

/// What PT_INTERP says about how a binary is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loader {
    /// No PT_INTERP: a static binary, started by the kernel alone.
    Static,
    /// The dynamic loader the kernel runs first.
    Path(String),
    /// The bytes given end before the program headers do.
    Unknown,
}

/// The facts of an ELF header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfHeader {
    pub machine: u16,
    little: bool,
    class64: bool,
}

/// Reads the header from a file's first bytes.
pub fn parse(head: &[u8]) -> Result<ElfHeader, ElfProblem> {
    if head.len() < MACHINE_HEAD || &head[..4] != b"\x7fELF" {
        return Err(ElfProblem::NotElf);
    }
    let little = match head[5] {
        1 => true,
        2 => false,
        _ => return Err(ElfProblem::UnknownByteOrder),
    };
    let bytes = [head[18], head[19]];
    let machine = if little {
        u16::from_le_bytes(bytes)
    } else {
        u16::from_be_bytes(bytes)
    };
    Ok(ElfHeader {
        machine,
        little,
        class64: head[4] == 2,
    })
}

/// `e_machine` when `head` is an ELF header of a known byte order.
pub fn machine(head: &[u8]) -> Option<u16> {
    parse(head).ok().map(|h| h.machine)
}

/// A readable name for an `e_machine` value.
pub fn machine_name(m: u16) -> String {
    match m {
        EM_X86_64 => "x86_64 (EM_X86_64)".into(),
        EM_AARCH64 => "arm64 (EM_AARCH64)".into(),
        EM_386 => "i386 (EM_386)".into(),
        EM_ARM => "arm (EM_ARM)".into(),
        EM_RISCV => "riscv (EM_RISCV)".into(),
        other => format!("ELF machine {other}"),
    }
}

impl ElfHeader {
    fn uint(&self, head: &[u8], at: usize, len: usize) -> Option<u64> {
        let b = head.get(at..at + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if self.little { b[len - 1 - i] } else { b[i] };
            v = (v << 8) | byte as u64;
        }
        Some(v)
    }

    /// The loader named by PT_INTERP (`/lib64/ld-linux-x86-64.so.2`).
    pub fn loader(&self, head: &[u8]) -> Loader {
        self.read_loader(head).unwrap_or(Loader::Unknown)
    }

    fn read_loader(&self, head: &[u8]) -> Option<Loader> {
        let (phoff, phentsize, phnum) = if self.class64 {
            (
                self.uint(head, 32, 8)?,
                self.uint(head, 54, 2)?,
                self.uint(head, 56, 2)?,
            )
        } else {
            (
                self.uint(head, 28, 4)?,
                self.uint(head, 42, 2)?,
                self.uint(head, 44, 2)?,
            )
        };
        for i in 0..phnum {
            let at = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
            if self.uint(head, at, 4)? as u32 != PT_INTERP {
                continue;
            }
            let (offset, size) = if self.class64 {
                (self.uint(head, at + 8, 8)?, self.uint(head, at + 32, 8)?)
            } else {
                (self.uint(head, at + 4, 4)?, self.uint(head, at + 16, 4)?)
            };
            let start = usize::try_from(offset).ok()?;
            let bytes = head.get(start..start.checked_add(usize::try_from(size).ok()?)?)?;
            let text = bytes.split(|b| *b == 0).next().unwrap_or_default();
            return Some(Loader::Path(String::from_utf8_lossy(text).into_owned()));
        }
        Some(Loader::Static)
    }
}

/// The interpreter of a `#!` script's first line (`/bin/sh` of `#!/bin/sh -e`),
/// or `None` when `head` is not a script.
pub fn shebang(head: &[u8]) -> Option<String> {
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    line.split_whitespace().next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_host_binary_machine_and_loader() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let h = parse(&exe[..PROGRAM_HEAD]).unwrap();
        if cfg!(target_arch = "x86_64") {
            assert_eq!(h.machine, EM_X86_64);
        }
        let Loader::Path(interp) = h.loader(&exe[..PROGRAM_HEAD]) else {
            panic!("the test binary is dynamically linked")
        };
        assert!(interp.starts_with("/lib") && interp.contains("ld-"), "{interp}");
        // busybox-static has no loader.
        if let Ok(busybox) = std::fs::read("/bin/busybox") {
            let h = parse(&busybox).unwrap();
            assert_eq!(h.loader(&busybox[..PROGRAM_HEAD]), Loader::Static);
        }
        assert_eq!(h.loader(&exe[..24]), Loader::Unknown);
    }

    #[test]
    fn byte_order_and_scripts() {
        let mut h = vec![0x7f, b'E', b'L', b'F', 2, 2, 1, 0];
        h.resize(18, 0);
        h.extend_from_slice(&EM_AARCH64.to_be_bytes());
        assert_eq!(machine(&h), Some(EM_AARCH64));
        h[5] = 7;
        assert_eq!(parse(&h), Err(ElfProblem::UnknownByteOrder));
        assert_eq!(machine(&h), None, "an unknown byte order has no machine");
        assert_eq!(parse(b"#!/bin/sh\n"), Err(ElfProblem::NotElf));
        assert_eq!(shebang(b"#!/bin/sh -e\necho"), Some("/bin/sh".into()));
        assert_eq!(shebang(b"#! /usr/bin/env python3\n"), Some("/usr/bin/env".into()));
        assert_eq!(shebang(b"\x7fELF"), None);
    }
}
