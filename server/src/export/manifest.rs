//! `manifest.json`: the export's open description of everything in the archive, and the rules
//! that tie archive members to it. Every field is specified in `docs/export.md`.

use serde::{Deserialize, Serialize};

/// `format` of every manifest.
pub const FORMAT: &str = "skab-export";
/// The manifest version this Skab writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's name in the archive; always its first member.
pub const MANIFEST_NAME: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// When the consistent view was taken (RFC 3339, UTC).
    pub exported_at: String,
    pub skab_version: String,
    pub tenant: TenantRec,
    /// Set when only one user was exported (`--user`).
    pub user: Option<String>,
    pub with_password_hashes: bool,
    pub accounts: Vec<Account>,
    pub groups: Vec<Group>,
    /// Every stored tree of the tenant (homes, hand-ins, other spaces).
    pub trees: Vec<Tree>,
    pub handins: Vec<Handin>,
    pub receipt_keys: ReceiptKeys,
    /// Shared spaces of the tenant (their files are the trees of kind `space`, `_space_<name>`);
    /// empty in a one-user export.
    pub spaces: Vec<SpaceRec>,
    /// Folders of homes shared by their owners (in a one-user export: that user's shares).
    pub shares: Vec<ShareRec>,
    pub totals: Totals,
}

/// A shared space: its owner, and grants such as `group:9a=read`, `user:anna=write`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceRec {
    pub name: String,
    pub owner: String,
    pub grants: Vec<String>,
    /// Unix seconds.
    pub created_unix: u64,
}

/// A folder of `owner`'s home shared with a user or group (`user:NAME` / `group:NAME`),
/// `read` or `write`. `id` is the OCS share id at export time (an import keeps it when free).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareRec {
    pub id: u64,
    pub owner: String,
    /// The folder's path in the owner's home, segments joined by `/`.
    pub path: String,
    pub with: String,
    pub perm: String,
    pub created_unix: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRec {
    pub name: String,
    /// Unix seconds; `None` when the tenant has no entry in the user database.
    pub created_unix: Option<u64>,
    pub quota: Quota,
}

/// A quota: the configured default, none, or a number of logical bytes of live files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quota {
    Default,
    Unlimited,
    Bytes(u64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub user: String,
    pub disabled: bool,
    pub created_unix: u64,
    /// Argon2id PHC string, only with `--with-password-hashes`.
    pub password_hash: Option<String>,
    /// Sorted.
    pub groups: Vec<String>,
    /// App tokens (their secrets are never stored; listed for the record only).
    pub tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub id: String,
    pub label: String,
    pub created_unix: u64,
    pub last_used_unix: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub created_unix: u64,
    /// Sorted.
    pub members: Vec<String>,
}

/// What a stored tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TreeKind {
    /// A user's home (`files/<user>/`).
    Home,
    /// A hand-in's collection (`handins/<handin>/`).
    Handin,
    /// Any other space of the tenant (`spaces/<name>/`).
    Space,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    /// The engine's name of the space (user name, `_handin_<h>`, ...).
    pub name: String,
    pub kind: TreeKind,
    /// Archive folder of its live entries, e.g. `files/anna`.
    pub dir: String,
    pub quota: Quota,
    pub root_props: Vec<Prop>,
    /// Live entries, parents before children, names sorted.
    pub entries: Vec<Entry>,
    /// Oldest first.
    pub trash: Vec<TrashItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// `/`-separated, relative to the tree (or to the trash item), exact names (NFC UTF-8).
    pub path: String,
    pub kind: Kind,
    /// The archive member holding it.
    pub member: String,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Files only.
    pub size: Option<u64>,
    /// Files only: BLAKE3 of the bytes, hex.
    pub blake3: Option<String>,
    pub props: Vec<Prop>,
    /// Files only: earlier contents, oldest first.
    pub versions: Vec<Version>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    pub member: String,
    pub size: u64,
    pub blake3: String,
    /// The file's mtime while this content was current.
    pub mtime_ns: i64,
    /// When it stopped being current.
    pub superseded_ns: i64,
}

/// A WebDAV dead property: `{ns}name` and its raw XML value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prop {
    pub ns: String,
    pub name: String,
    /// The value as stored (XML text), when it is UTF-8.
    pub value: Option<String>,
    /// The value in standard base64, when it is not UTF-8.
    pub value_base64: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrashItem {
    /// Position in the trash, 1 = oldest.
    pub index: u64,
    /// Where it was when deleted, relative to the tree.
    pub original_path: String,
    pub deleted_ns: i64,
    /// The item (path `""`) and everything inside it.
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handin {
    pub name: String,
    /// The tree holding its files.
    pub tree: String,
    pub owner: String,
    pub group: String,
    pub opens_unix: Option<u64>,
    pub closes_unix: u64,
    /// `refuse` or `mark`.
    pub late: String,
    pub created_unix: u64,
    /// Every receipt issued, oldest first, as the uploader got it.
    pub receipts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptKeys {
    /// The tenant's receipt verification key (`skab-ed25519:...`), if it has one.
    pub public: Option<String>,
    /// The signing key's 32-byte seed, base64, only with `--with-receipt-key`.
    pub secret_seed_base64: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// File members in the archive (live files, versions, trashed files).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Manifest {
    /// Every file member the manifest names, with its size and BLAKE3.
    pub fn files(&self) -> Vec<(&str, u64, &str)> {
        let mut out = Vec::new();
        fn add<'a>(out: &mut Vec<(&'a str, u64, &'a str)>, e: &'a Entry) {
            if let (Some(size), Some(hash)) = (e.size, e.blake3.as_deref()) {
                out.push((e.member.as_str(), size, hash));
            }
            for v in &e.versions {
                out.push((v.member.as_str(), v.size, v.blake3.as_str()));
            }
        }
        for t in &self.trees {
            for e in &t.entries {
                add(&mut out, e);
            }
            for item in &t.trash {
                for e in &item.entries {
                    add(&mut out, e);
                }
            }
        }
        out
    }

    /// Every folder member the manifest names.
    pub fn dirs(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for t in &self.trees {
            out.push(t.dir.as_str());
            let all = t
                .entries
                .iter()
                .chain(t.trash.iter().flat_map(|i| i.entries.iter()));
            out.extend(
                all.filter(|e| e.kind == Kind::Dir)
                    .map(|e| e.member.as_str()),
            );
        }
        out
    }

    /// Checks what the schema cannot: format, version, kinds and member names.
    pub fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("not a Skab export (format {:?})", self.format));
        }
        if self.version != VERSION {
            return Err(format!(
                "manifest version {} is not one this skab reads (it reads {VERSION})",
                self.version
            ));
        }
        for t in &self.trees {
            for e in t
                .entries
                .iter()
                .chain(t.trash.iter().flat_map(|i| i.entries.iter()))
            {
                let file = e.kind == Kind::File;
                if file != (e.size.is_some() && e.blake3.is_some())
                    || (!file && !e.versions.is_empty())
                {
                    return Err(format!(
                        "{}: size, blake3 and versions are for files only",
                        e.member
                    ));
                }
            }
        }
        for (m, _, h) in self.files() {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{m}: blake3 is not 64 hex digits"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for m in self.files().into_iter().map(|f| f.0).chain(self.dirs()) {
            crate::export::tarball::check_member(m)?;
            if !seen.insert(m) {
                return Err(format!("{m}: named twice"));
            }
        }
        Ok(())
    }
}
