//! Deterministic, seeded school-like file corpus for the chunk-size measurement and capacity bench.
//!
//! What it models (see docs/chunking.md): office documents saved in many versions with small
//! edits (zipped: the edited part is recompressed from the edit point on, later parts shift;
//! flat: bytes inserted and deleted in place), PDFs (compressed streams, text, shared fonts),
//! photos (incompressible, a few uploaded twice), and a class of pupils each editing a copy of
//! the same template.

/// SplitMix64: tiny, fast, and fixed forever (the corpus must not change with a crate version).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5eed_5eed_5eed_5eed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`lo` if the range is empty).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }

    /// `len` incompressible bytes (compressed streams, photos).
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }

    /// Incompressible bytes, `lo..hi` of them.
    pub fn bytes_between(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let len = self.range(lo, hi);
        self.bytes(len)
    }

    /// Text, `lo..hi` bytes of it.
    pub fn text_between(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let len = self.range(lo, hi);
        self.text(len)
    }

    /// `len` bytes of Danish-looking text with markup (compressible, like XML or PDF text).
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "og",
            "i",
            "at",
            "det",
            "er",
            "en",
            "til",
            "på",
            "som",
            "de",
            "med",
            "han",
            "af",
            "for",
            "ikke",
            "der",
            "var",
            "mig",
            "sig",
            "men",
            "et",
            "har",
            "om",
            "vi",
            "min",
            "elev",
            "klasse",
            "skole",
            "lærer",
            "opgave",
            "dansk",
            "matematik",
            "historie",
            "fremlæggelse",
            "afleveres",
            "fredag",
            "gruppearbejde",
            "<w:p>",
            "</w:p>",
            "<w:r>",
            "</w:r>",
            "<w:t>",
            "</w:t>",
            "BT",
            "ET",
            "Tj",
            "\n",
        ];
        let mut v = Vec::with_capacity(len + 32);
        while v.len() < len {
            let w = WORDS[self.range(0, WORDS.len())];
            v.extend_from_slice(w.as_bytes());
            v.push(b' ');
        }
        v.truncate(len);
        v
    }
}

/// What kind of file a corpus file stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// A saved version of a zipped office document (docx/pptx-like).
    OfficeVersion,
    /// A saved version of a flat (uncompressed) document: old .doc, .odt flat XML, text.
    FlatVersion,
    Pdf,
    Photo,
    /// One pupil's edited copy of the class template.
    PupilCopy,
}

/// One file of the corpus.
#[derive(Clone, Debug)]
pub struct CorpusFile {
    pub path: String,
    pub kind: FileKind,
    pub data: Vec<u8>,
}

/// How much of each kind to generate. `Default` is one school share of ~0.5 GiB.
#[derive(Clone, Debug)]
pub struct CorpusConfig {
    pub seed: u64,
    /// Zipped office documents, each saved `versions` times.
    pub office_docs: usize,
    /// Flat documents, each saved `versions` times.
    pub flat_docs: usize,
    pub versions: usize,
    pub pdfs: usize,
    pub photos: usize,
    /// Pupils in the class that each edit a copy of one template.
    pub pupils: usize,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        CorpusConfig {
            seed: 2026,
            office_docs: 16,
            flat_docs: 8,
            versions: 12,
            pdfs: 50,
            photos: 80,
            pupils: 30,
        }
    }
}

/// A zip-like office document: members stored one after another, then a directory.
#[derive(Clone, Debug)]
pub struct OfficeDoc {
    /// (name, bytes, is the main XML part that edits recompress)
    members: Vec<(String, Vec<u8>, bool)>,
}

impl OfficeDoc {
    /// A document with a compressed main part of `main_len` bytes and `images` embedded photos.
    pub fn new(rng: &mut Rng, main_len: usize, images: usize) -> OfficeDoc {
        let mut members = vec![
            ("[Content_Types].xml".to_string(), rng.text(1500), false),
            (
                "word/styles.xml".to_string(),
                rng.bytes_between(8_000, 40_000),
                false,
            ),
            ("word/document.xml".to_string(), rng.bytes(main_len), true),
        ];
        for i in 0..images {
            let len = rng.range(100_000, 700_000);
            members.push((format!("word/media/image{i}.jpeg"), rng.bytes(len), false));
        }
        OfficeDoc { members }
    }

    /// A small text edit saved: the main part keeps its bytes before the edit point and is new
    /// (recompressed) after it, a few bytes longer or shorter.
    pub fn edit_text(&mut self, rng: &mut Rng) {
        for (_, bytes, main) in &mut self.members {
            if *main {
                let at = rng.range(0, bytes.len());
                let new_len = (bytes.len() - at + rng.range(0, 400)).saturating_sub(150);
                bytes.truncate(at);
                bytes.extend(rng.bytes(new_len));
            }
        }
    }

    /// Replaces (or adds) an embedded photo.
    pub fn replace_image(&mut self, rng: &mut Rng) {
        let len = rng.range(100_000, 700_000);
        let images: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].0.contains("media"))
            .collect();
        match images.get(rng.range(0, images.len())) {
            Some(&i) => self.members[i].1 = rng.bytes(len),
            None => self
                .members
                .push(("word/media/new.jpeg".into(), rng.bytes(len), false)),
        }
    }

    /// The file's bytes: local headers (with each member's length and checksum), members, and
    /// the central directory.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut dir = Vec::new();
        for (name, bytes, _) in &self.members {
            let sum = bytes.iter().fold(0u32, |a, &b| a.rotate_left(5) ^ b as u32);
            let header = [
                &b"PK\x03\x04"[..],
                &sum.to_le_bytes(),
                &(bytes.len() as u32).to_le_bytes(),
            ];
            dir.extend(header.concat());
            dir.extend(name.as_bytes());
            dir.extend((out.len() as u32).to_le_bytes());
            out.extend(header.concat());
            out.extend(name.as_bytes());
            out.extend(bytes);
        }
        out.extend(dir);
        out
    }
}

/// A flat document edited in place: bytes inserted, deleted or overwritten (shifting the rest).
/// Returns the number of bytes the edit wrote or removed.
pub fn edit_flat(rng: &mut Rng, doc: &mut Vec<u8>) -> usize {
    let at = rng.range(0, doc.len());
    match rng.range(0, 3) {
        0 => {
            let ins = rng.text_between(1, 300);
            let n = ins.len();
            doc.splice(at..at, ins);
            n
        }
        1 => {
            let end = (at + rng.range(1, 300)).min(doc.len());
            doc.drain(at..end);
            end - at
        }
        _ => {
            let end = (at + rng.range(1, 60)).min(doc.len());
            let new = rng.text(end - at);
            doc.splice(at..end, new);
            end - at
        }
    }
}

/// A PDF: text objects and compressed content streams, plus embedded fonts from a shared pool.
fn pdf(rng: &mut Rng, fonts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n".to_vec();
    for obj in 0..rng.range(3, 30) {
        out.extend(format!("{obj} 0 obj\n<< /Length ... >>\nstream\n").as_bytes());
        if rng.range(0, 3) == 0 {
            out.extend(rng.text_between(2_000, 30_000));
        } else {
            out.extend(rng.bytes_between(5_000, 120_000));
        }
        out.extend(b"\nendstream\nendobj\n");
    }
    for _ in 0..rng.range(1, 4) {
        out.extend(&fonts[rng.range(0, fonts.len())]);
    }
    out.extend(b"xref\ntrailer\n%%EOF\n");
    out
}

/// Calls `f` with every file of the corpus, in a fixed order.
pub fn generate(cfg: &CorpusConfig, mut f: impl FnMut(CorpusFile)) {
    let mut rng = Rng::new(cfg.seed);
    for d in 0..cfg.office_docs {
        let main_len = rng.range(20_000, 250_000);
        let images = rng.range(0, 4);
        let mut doc = OfficeDoc::new(&mut rng, main_len, images);
        for v in 0..cfg.versions {
            if v > 0 {
                for _ in 0..rng.range(1, 3) {
                    doc.edit_text(&mut rng);
                }
                if rng.range(0, 8) == 0 {
                    doc.replace_image(&mut rng);
                }
            }
            let path = format!("/docs/office{d}/v{v}.docx");
            f(CorpusFile {
                path,
                kind: FileKind::OfficeVersion,
                data: doc.serialize(),
            });
        }
    }
    for d in 0..cfg.flat_docs {
        let mut doc = rng.text_between(200_000, 3_000_000);
        for v in 0..cfg.versions {
            if v > 0 {
                for _ in 0..rng.range(1, 4) {
                    edit_flat(&mut rng, &mut doc);
                }
            }
            let path = format!("/docs/flat{d}/v{v}.odt");
            f(CorpusFile {
                path,
                kind: FileKind::FlatVersion,
                data: doc.clone(),
            });
        }
    }
    let fonts: Vec<Vec<u8>> = (0..6).map(|_| rng.bytes_between(40_000, 200_000)).collect();
    for p in 0..cfg.pdfs {
        let data = pdf(&mut rng, &fonts);
        f(CorpusFile {
            path: format!("/pdf/{p}.pdf"),
            kind: FileKind::Pdf,
            data,
        });
    }
    let mut last_photo = Vec::new();
    for p in 0..cfg.photos {
        // One photo in ten is the previous one uploaded again.
        if p == 0 || rng.range(0, 10) != 0 {
            last_photo = rng.bytes_between(800_000, 4_000_000);
        }
        let path = format!("/photos/{p}.jpg");
        f(CorpusFile {
            path,
            kind: FileKind::Photo,
            data: last_photo.clone(),
        });
    }
    let template = OfficeDoc::new(&mut rng, 120_000, 5);
    for pupil in 0..cfg.pupils {
        let mut doc = template.clone();
        for _ in 0..rng.range(1, 5) {
            doc.edit_text(&mut rng);
        }
        if rng.range(0, 3) == 0 {
            doc.replace_image(&mut rng);
        }
        let path = format!("/class/7b/pupil{pupil}/opgave.pptx");
        f(CorpusFile {
            path,
            kind: FileKind::PupilCopy,
            data: doc.serialize(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> CorpusConfig {
        CorpusConfig {
            seed: 1,
            office_docs: 2,
            flat_docs: 1,
            versions: 3,
            pdfs: 2,
            photos: 3,
            pupils: 3,
        }
    }

    #[test]
    fn deterministic_and_complete() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        generate(&small(), |f| a.push(f));
        generate(&small(), |f| b.push(f));
        assert_eq!(a.len(), 2 * 3 + 3 + 2 + 3 + 3);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.path, y.path);
            assert_eq!(x.data, y.data);
        }
        let mut c = Vec::new();
        generate(&CorpusConfig { seed: 2, ..small() }, |f| c.push(f));
        assert_ne!(a[0].data, c[0].data);
    }

    #[test]
    fn versions_share_a_prefix_and_differ() {
        let mut v = Vec::new();
        generate(&small(), |f| v.push(f));
        let (v0, v1) = (&v[0].data, &v[1].data);
        assert_ne!(v0, v1);
        let common = v0.iter().zip(v1.iter()).take_while(|(a, b)| a == b).count();
        assert!(
            common > 1000,
            "a version must keep the bytes before its edit: {common}"
        );
    }

    #[test]
    fn flat_edit_changes_length_or_bytes() {
        let mut rng = Rng::new(3);
        let mut doc = rng.text(10_000);
        for _ in 0..20 {
            let before = doc.clone();
            let n = edit_flat(&mut rng, &mut doc);
            assert!(n > 0);
            assert_ne!(before, doc);
        }
    }
}
