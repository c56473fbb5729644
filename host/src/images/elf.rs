//! Is a binary safe to ship alone? An image holds no dynamic loader and no shared
//! libraries, so its binary must be a statically linked x86-64 Linux executable: an ELF
//! file with no `PT_INTERP` program header (static-pie binaries keep `PT_DYNAMIC` for
//! their own relocations, but name no interpreter).
//!
//! Read by hand: three fields of the ELF header and the type of each program header are
//! all this needs, which an ELF crate would add to the build for.

const PT_INTERP: u32 = 3;
const EM_X86_64: u16 = 62;

/// `Ok` for a static x86-64 executable; otherwise why not.
pub fn check_static(bytes: &[u8]) -> Result<(), String> {
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".to_owned());
    }
    // 64-bit, little-endian, x86-64.
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) || u16_at(18) != Some(EM_X86_64) {
        return Err("not a 64-bit little-endian x86-64 ELF file".to_owned());
    }
    let truncated = || "truncated ELF header".to_owned();
    let phoff = usize::try_from(u64_at(32).ok_or_else(truncated)?).map_err(|_| truncated())?;
    let phentsize = usize::from(u16_at(54).ok_or_else(truncated)?);
    let phnum = usize::from(u16_at(56).ok_or_else(truncated)?);
    let table_end = phnum
        .checked_mul(phentsize)
        .and_then(|size| size.checked_add(phoff));
    if phentsize < 4 || table_end.is_none_or(|end| end > bytes.len()) {
        return Err("truncated program header table".to_owned());
    }
    for i in 0..phnum {
        let p_type = u32_at(phoff + i * phentsize).ok_or_else(truncated)?;
        if p_type == PT_INTERP {
            return Err("it is dynamically linked (it names a program interpreter)".to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with `types` as its program headers.
    fn elf(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for t in types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            b.extend(ph);
        }
        b
    }

    #[test]
    fn a_static_binary_passes_and_a_dynamic_one_is_refused() {
        assert_eq!(check_static(&elf(&[6, 1, 2])), Ok(()));
        let e = check_static(&elf(&[6, PT_INTERP, 1])).unwrap_err();
        assert!(e.contains("dynamically linked"), "{e}");
    }

    #[test]
    fn what_is_not_an_x86_64_elf_is_refused_without_panicking() {
        assert!(check_static(b"#!/bin/sh\n").is_err());
        let mut arm = elf(&[]);
        arm[18] = 183;
        assert!(check_static(&arm).is_err());
        assert!(check_static(&elf(&[1])[..70]).is_err());
    }
}
