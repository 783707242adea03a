//! What the kernel needs to start a program: a `#!` script's interpreter and
//! a dynamically linked ELF binary's loader (PT_INTERP) must exist in the
//! image, or exec fails at init with ENOENT, as a glibc binary on scratch does.

use super::Finding;
use super::catalog::{ELF_INTERPRETER_MISSING, SCRIPT_INTERPRETER_MISSING};
use super::flat::{FlatView, Node};

/// Checks the program `label` names (`entrypoint /lambda-entrypoint.sh`).
pub(super) fn check_program(view: &FlatView, label: &str, node: &Node, out: &mut Vec<Finding>) {
    let Some(head) = node.head() else { return };
    // Only a whole first line names the interpreter (a short head may cut it).
    if head.starts_with(b"#!") && head.contains(&b'\n') {
        let Some(interp) = crate::elf::shebang(head) else {
            return;
        };
        if interp.starts_with('/') && view.resolve_file(&interp).is_none() {
            out.push(Finding::new(
                &SCRIPT_INTERPRETER_MISSING,
                format!(
                    "{label} is a script whose interpreter {interp} (its #! line) does not exist in the image"
                ),
            ));
        }
        return;
    }
    let Ok(elf) = crate::elf::parse(head) else { return };
    if let crate::elf::Loader::Path(loader) = elf.loader(head)
        && view.resolve_file(&loader).is_none()
    {
        out.push(Finding::new(
            &ELF_INTERPRETER_MISSING,
            format!(
                "{label} is a dynamically linked ELF binary whose loader {loader} (PT_INTERP) does not exist in the image"
            ),
        ));
    }
}
