//! The archive's tar framing: POSIX ustar headers, with a pax extended header carrying the
//! exact UTF-8 name of every member whose name is not short plain ASCII (GNU tar, bsdtar and
//! Python's tarfile all read it), and the rules for member names.

use std::io::{self, Read, Write};

use tar::{EntryType, Header};

/// Longest name that fits a ustar header's `name` field (the rest go in pax).
const USTAR_NAME_MAX: usize = 100;

/// Checks a member name as the manifest and the archive hold it: relative, `/`-separated,
/// with no empty, `.` or `..` component and no NUL, so it unpacks under the target folder.
pub fn check_member(m: &str) -> Result<(), String> {
    let bad = m.is_empty()
        || m.contains('\0')
        || m.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(format!("{m:?} is not a valid archive member name"));
    }
    Ok(())
}

/// One pax record: `<len> <key>=<value>\n`, where `len` counts the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// Writes members one after the other; nothing is buffered beyond the writer's own buffer.
pub struct TarWriter<W: Write> {
    b: tar::Builder<W>,
    /// Members written with a pax header (names their ustar fallback).
    pax: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(w: W) -> Self {
        TarWriter {
            b: tar::Builder::new(w),
            pax: 0,
        }
    }

    fn header(
        &mut self,
        name: &str,
        kind: EntryType,
        size: u64,
        mtime_s: i64,
    ) -> io::Result<Header> {
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mtime(u64::try_from(mtime_s).unwrap_or(0));
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        if name.is_ascii() && name.len() <= USTAR_NAME_MAX {
            h.set_path(name)?;
        } else {
            self.pax += 1;
            let record = pax_record("path", name.as_bytes());
            let mut x = Header::new_ustar();
            x.set_entry_type(EntryType::XHeader);
            x.set_size(record.len() as u64);
            x.set_mode(0o644);
            x.set_path(format!("PaxHeaders/{}", self.pax))?;
            x.set_cksum();
            self.b.append(&x, record.as_slice())?;
            // What a reader without pax support sees instead.
            let fallback = format!("skab-pax-name-{}", self.pax);
            h.set_path(if kind == EntryType::Directory {
                format!("{fallback}/")
            } else {
                fallback
            })?;
        }
        h.set_cksum();
        Ok(h)
    }

    /// A file of `size` bytes read from `data` (exactly `size` must come).
    pub fn file(&mut self, name: &str, size: u64, mtime_s: i64, data: impl Read) -> io::Result<()> {
        let h = self.header(name, EntryType::Regular, size, mtime_s)?;
        let mut counted = Counted { inner: data, n: 0 };
        self.b.append(&h, &mut counted)?;
        if counted.n != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: {} bytes read, {size} expected", counted.n),
            ));
        }
        Ok(())
    }

    pub fn dir(&mut self, name: &str, mtime_s: i64) -> io::Result<()> {
        let h = self.header(&format!("{name}/"), EntryType::Directory, 0, mtime_s)?;
        self.b.append(&h, io::empty())
    }

    /// Writes the end-of-archive blocks and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.b.into_inner()
    }
}

struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// A member's name as read (pax `path` honoured), without a folder's trailing `/`.
pub fn member_name<R: Read>(e: &tar::Entry<'_, R>) -> Result<String, String> {
    let bytes = e.path_bytes();
    let s = std::str::from_utf8(&bytes)
        .map_err(|_| "an archive member's name is not UTF-8".to_string())?;
    Ok(s.strip_suffix('/').unwrap_or(s).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        for v in ["", "a", &"x".repeat(90), &"y".repeat(995)] {
            let r = pax_record("path", v.as_bytes());
            let (len, _) = std::str::from_utf8(&r).unwrap().split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), r.len(), "{v:?}");
        }
    }

    #[test]
    fn long_and_non_ascii_names_read_back_exactly() {
        let long = format!("files/anna/{}/ø å.txt", "d".repeat(150));
        let mut w = TarWriter::new(Vec::new());
        w.dir("files/Æble", 5).unwrap();
        w.file(&long, 3, 7, &b"abc"[..]).unwrap();
        w.file("files/a.txt", 0, 7, &b""[..]).unwrap();
        assert!(w.file("files/short", 4, 7, &b"abc"[..]).is_err());
        let bytes = w.finish().unwrap();
        let mut a = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| member_name(&e.unwrap()).unwrap())
            .collect();
        assert_eq!(
            names[..3],
            ["files/Æble".to_string(), long, "files/a.txt".into()]
        );
    }

    #[test]
    fn member_names_stay_inside() {
        assert!(check_member("files/a/b").is_ok());
        for bad in ["", "/etc", "a//b", "a/../b", "./a", "a/", "a\0b"] {
            assert!(check_member(bad).is_err(), "{bad:?}");
        }
    }
}
