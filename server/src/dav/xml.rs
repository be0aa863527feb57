//! WebDAV XML: bounded, DTD-free parsing of PROPFIND/PROPPATCH/LOCK bodies and multistatus writing.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::locks::{LockDepth, LockInfo, LockScope};
use crate::limits::{DAV_XML_BODY_MAX, DAV_XML_DEPTH_MAX, DAV_XML_ELEMENTS_MAX, DAV_XML_PROPS_MAX};

/// The `DAV:` namespace.
pub const DAV_NS: &str = "DAV:";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Why a request body was refused: `TooLarge` is 413, everything else 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("request body larger than {DAV_XML_BODY_MAX} bytes")]
    TooLarge,
    #[error("XML nested deeper than limits.xml_depth_max")]
    TooDeep,
    #[error("XML has more than {DAV_XML_ELEMENTS_MAX} elements")]
    TooManyElements,
    #[error("request names more than limits.props_per_request_max properties")]
    TooManyProps,
    #[error("DOCTYPE, DTD and entity declarations are not accepted")]
    Dtd,
    #[error("request body is not UTF-8")]
    NotUtf8,
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("unexpected XML: {0}")]
    Unexpected(String),
}

/// A property's qualified name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PropName {
    /// Namespace URI; empty for no namespace.
    pub ns: String,
    pub name: String,
}

impl PropName {
    pub fn new(ns: &str, name: &str) -> Self {
        PropName {
            ns: ns.to_owned(),
            name: name.to_owned(),
        }
    }
    /// A property in the `DAV:` namespace.
    pub fn dav(name: &str) -> Self {
        Self::new(DAV_NS, name)
    }
    pub fn is_dav(&self) -> bool {
        self.ns == DAV_NS
    }
}

/// A PROPFIND request body (RFC 4918 §9.1, §14.20).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Propfind {
    /// `allprop`, with the `include`d extra properties; also an empty body.
    AllProp {
        include: Vec<PropName>,
    },
    PropName,
    Prop(Vec<PropName>),
}

/// A property value from PROPPATCH `set`: the whole element as a self-contained XML fragment
/// (in-scope namespace declarations and `xml:lang` copied onto it), to be returned verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropValue {
    pub name: PropName,
    pub xml: String,
    /// `xml:lang` in scope at the property element.
    pub lang: Option<String>,
}

/// One PROPPATCH instruction, in document order (RFC 4918 §9.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropPatchOp {
    Set(PropValue),
    Remove(PropName),
}

/// A LOCK request body (RFC 4918 §14.11); only write locks exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfoBody {
    pub scope: LockScope,
    /// The whole `DAV:owner` element, self-contained, or None.
    pub owner: Option<String>,
}

/// The configurable bounds of request-body parsing (`limits.xml_depth_max`,
/// `limits.props_per_request_max`); each is capped by its hard limit in `limits.rs`, which
/// guards memory and is also the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct XmlLimits {
    /// Deepest element nesting, levels.
    pub depth_max: usize,
    /// Most properties named in one request, count.
    pub props_max: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits {
            depth_max: DAV_XML_DEPTH_MAX,
            props_max: DAV_XML_PROPS_MAX,
        }
    }
}

impl XmlLimits {
    /// The limits a configuration asks for, never above the hard limits.
    pub fn from_config(l: &crate::config::LimitsConfig) -> Self {
        XmlLimits {
            depth_max: l.xml_depth_max.min(DAV_XML_DEPTH_MAX),
            props_max: l.props_per_request_max.min(DAV_XML_PROPS_MAX),
        }
    }
}

// ---------------------------------------------------------------- bounded DOM

struct Scope {
    parent: Option<usize>,
    decls: Vec<(String, String)>,
}

struct Elem {
    ns: String,
    local: String,
    parent: Option<usize>,
    /// Length of the qualified name as written (to splice declarations after it).
    qname_len: usize,
    children: Vec<usize>,
    start: usize,
    end: usize,
    scope: usize,
    lang: Option<String>,
    own_lang: bool,
    text: String,
}

struct Doc<'a> {
    src: &'a str,
    limits: XmlLimits,
    elems: Vec<Elem>,
    scopes: Vec<Scope>,
    root: Option<usize>,
}

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(e.to_string())
}

impl<'a> Doc<'a> {
    fn lookup(&self, mut scope: usize, prefix: &str) -> Option<&str> {
        loop {
            let s = self.scopes.get(scope)?;
            if let Some((_, uri)) = s.decls.iter().rev().find(|(p, _)| p == prefix) {
                return Some(uri);
            }
            scope = s.parent?;
        }
    }

    fn parse(body: &'a [u8], limits: XmlLimits) -> Result<Doc<'a>, XmlError> {
        if body.len() > DAV_XML_BODY_MAX {
            return Err(XmlError::TooLarge);
        }
        let src = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
        let src = src.strip_prefix('\u{feff}').unwrap_or(src);
        let mut doc = Doc {
            src,
            limits,
            elems: Vec::new(),
            scopes: vec![Scope {
                parent: None,
                decls: vec![("xml".into(), XML_NS.into())],
            }],
            root: None,
        };
        let mut reader = Reader::from_str(src);
        reader.config_mut().check_end_names = true;
        let mut stack: Vec<usize> = Vec::new();
        loop {
            let pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
            let ev = reader.read_event().map_err(malformed)?;
            let end = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
            match ev {
                Event::DocType(_) => return Err(XmlError::Dtd),
                Event::Decl(d) => {
                    if let Some(enc) = d.encoding() {
                        let enc = enc.map_err(malformed)?;
                        if !enc.eq_ignore_ascii_case(b"utf-8") && !enc.eq_ignore_ascii_case(b"utf8")
                        {
                            return Err(XmlError::NotUtf8);
                        }
                    }
                }
                Event::Start(e) => {
                    let id = doc.open(&e, pos, &stack)?;
                    stack.push(id);
                }
                Event::Empty(e) => {
                    let id = doc.open(&e, pos, &stack)?;
                    if let Some(el) = doc.elems.get_mut(id) {
                        el.end = end;
                    }
                }
                Event::End(_) => {
                    let id = stack.pop().ok_or_else(|| malformed("unmatched end tag"))?;
                    if let Some(el) = doc.elems.get_mut(id) {
                        el.end = end;
                    }
                }
                Event::Text(t) => {
                    let text = t.unescape().map_err(malformed)?;
                    match stack.last() {
                        Some(&id) => {
                            if let Some(el) = doc.elems.get_mut(id) {
                                el.text.push_str(&text);
                            }
                        }
                        None if text.trim().is_empty() => {}
                        None => return Err(malformed("text outside the root element")),
                    }
                }
                Event::CData(c) => {
                    let text = std::str::from_utf8(&c).map_err(|_| XmlError::NotUtf8)?;
                    match stack.last().and_then(|&id| doc.elems.get_mut(id)) {
                        Some(el) => el.text.push_str(text),
                        None => return Err(malformed("CDATA outside the root element")),
                    }
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => break,
            }
        }
        if !stack.is_empty() {
            return Err(malformed("unclosed element"));
        }
        Ok(doc)
    }

    fn open(&mut self, e: &BytesStart<'_>, pos: usize, stack: &[usize]) -> Result<usize, XmlError> {
        if stack.len() >= self.limits.depth_max {
            return Err(XmlError::TooDeep);
        }
        if self.elems.len() >= DAV_XML_ELEMENTS_MAX {
            return Err(XmlError::TooManyElements);
        }
        let parent = stack.last().copied();
        if parent.is_none() && self.root.is_some() {
            return Err(malformed("more than one root element"));
        }
        let (parent_scope, parent_lang) = match parent.and_then(|p| self.elems.get(p)) {
            Some(p) => (p.scope, p.lang.clone()),
            None => (0, None),
        };
        let mut decls = Vec::new();
        let mut lang = None;
        for a in e.attributes() {
            let a = a.map_err(malformed)?;
            let key = std::str::from_utf8(a.key.as_ref()).map_err(|_| XmlError::NotUtf8)?;
            let val = a.unescape_value().map_err(malformed)?;
            if key == "xmlns" {
                decls.push((String::new(), val.into_owned()));
            } else if let Some(p) = key.strip_prefix("xmlns:") {
                if val.is_empty() {
                    return Err(malformed(format!("empty namespace for prefix {p}")));
                }
                decls.push((p.to_owned(), val.into_owned()));
            } else if key == "xml:lang" {
                lang = Some(val.into_owned());
            }
        }
        let scope = if decls.is_empty() {
            parent_scope
        } else {
            self.scopes.push(Scope {
                parent: Some(parent_scope),
                decls,
            });
            self.scopes.len() - 1
        };
        let qname = std::str::from_utf8(e.name().as_ref())
            .map_err(|_| XmlError::NotUtf8)?
            .to_owned();
        let (prefix, local) = match qname.split_once(':') {
            Some((p, l)) => (p, l),
            None => ("", qname.as_str()),
        };
        let ns = match self.lookup(scope, prefix) {
            Some(u) => u.to_owned(),
            None if prefix.is_empty() => String::new(),
            None => return Err(malformed(format!("undeclared namespace prefix {prefix}"))),
        };
        let own_lang = lang.is_some();
        let id = self.elems.len();
        self.elems.push(Elem {
            ns,
            local: local.to_owned(),
            parent,
            qname_len: qname.len(),
            children: Vec::new(),
            start: pos,
            end: pos,
            scope,
            lang: lang.or(parent_lang),
            own_lang,
            text: String::new(),
        });
        match parent.and_then(|p| self.elems.get_mut(p)) {
            Some(p) => p.children.push(id),
            None => self.root = Some(id),
        }
        Ok(id)
    }

    fn elem(&self, id: usize) -> Result<&Elem, XmlError> {
        self.elems
            .get(id)
            .ok_or_else(|| malformed("internal element index"))
    }

    fn is(&self, id: usize, ns: &str, local: &str) -> bool {
        self.elems
            .get(id)
            .is_some_and(|e| e.ns == ns && e.local == local)
    }

    fn children(&self, id: usize) -> impl Iterator<Item = usize> + '_ {
        self.elems
            .get(id)
            .map(|e| e.children.as_slice())
            .unwrap_or(&[])
            .iter()
            .copied()
    }

    fn child(&self, id: usize, local: &str) -> Option<usize> {
        self.children(id).find(|&c| self.is(c, DAV_NS, local))
    }

    fn name(&self, id: usize) -> Result<PropName, XmlError> {
        let e = self.elem(id)?;
        Ok(PropName::new(&e.ns, &e.local))
    }

    /// The element as written, with every namespace declaration in scope from its ancestors
    /// (and an inherited `xml:lang`) added to its start tag, so it stands alone.
    fn self_contained(&self, id: usize) -> Result<String, XmlError> {
        let e = self.elem(id)?;
        let raw = self
            .src
            .get(e.start..e.end)
            .ok_or_else(|| malformed("element span"))?;
        let split = 1 + e.qname_len;
        let (head, tail) = (raw.get(..split), raw.get(split..));
        let (Some(head), Some(tail)) = (head, tail) else {
            return Err(malformed("element span"));
        };
        let own: &[(String, String)] = match self.scopes.get(e.scope) {
            Some(s) if e.scope != self.parent_scope(id) => &s.decls,
            _ => &[],
        };
        let mut seen: Vec<&str> = own.iter().map(|(p, _)| p.as_str()).collect();
        let mut extra = String::new();
        let mut sc = Some(self.parent_scope(id));
        while let Some(i) = sc {
            let Some(s) = self.scopes.get(i) else { break };
            for (p, u) in s.decls.iter().rev() {
                if p == "xml" || seen.contains(&p.as_str()) {
                    continue;
                }
                seen.push(p);
                if p.is_empty() {
                    let _ = write!(extra, " xmlns=\"{}\"", escape(u.as_str()));
                } else {
                    let _ = write!(extra, " xmlns:{p}=\"{}\"", escape(u.as_str()));
                }
            }
            sc = s.parent;
        }
        if let (false, Some(l)) = (e.own_lang, &e.lang) {
            let _ = write!(extra, " xml:lang=\"{}\"", escape(l.as_str()));
        }
        Ok(format!("{head}{extra}{tail}"))
    }

    fn parent_scope(&self, id: usize) -> usize {
        self.elems
            .get(id)
            .and_then(|e| e.parent)
            .and_then(|p| self.elems.get(p))
            .map_or(0, |p| p.scope)
    }

    fn root_is(&self, local: &str) -> Result<usize, XmlError> {
        match self.root {
            Some(r) if self.is(r, DAV_NS, local) => Ok(r),
            Some(r) => {
                let e = self.elem(r)?;
                Err(XmlError::Unexpected(format!(
                    "root element {{{}}}{}, expected {{DAV:}}{local}",
                    e.ns, e.local
                )))
            }
            None => Err(XmlError::Unexpected(format!(
                "empty document, expected {{DAV:}}{local}"
            ))),
        }
    }

    fn names_in(&self, prop: usize, out: &mut Vec<PropName>) -> Result<(), XmlError> {
        for c in self.children(prop) {
            if out.len() >= self.limits.props_max {
                return Err(XmlError::TooManyProps);
            }
            out.push(self.name(c)?);
        }
        Ok(())
    }
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(|b| b.is_ascii_whitespace())
}

/// Parses a PROPFIND body; an empty body is `allprop` (RFC 4918 §9.1).
pub fn parse_propfind(body: &[u8]) -> Result<Propfind, XmlError> {
    parse_propfind_limited(body, XmlLimits::default())
}

/// As [`parse_propfind`], within `limits`.
pub fn parse_propfind_limited(body: &[u8], limits: XmlLimits) -> Result<Propfind, XmlError> {
    if is_blank(body) {
        return Ok(Propfind::AllProp {
            include: Vec::new(),
        });
    }
    let doc = Doc::parse(body, limits)?;
    let root = doc.root_is("propfind")?;
    if let Some(p) = doc.child(root, "prop") {
        let mut names = Vec::new();
        doc.names_in(p, &mut names)?;
        return Ok(Propfind::Prop(names));
    }
    if doc.child(root, "propname").is_some() {
        return Ok(Propfind::PropName);
    }
    if doc.child(root, "allprop").is_some() {
        let mut include = Vec::new();
        if let Some(inc) = doc.child(root, "include") {
            doc.names_in(inc, &mut include)?;
        }
        return Ok(Propfind::AllProp { include });
    }
    Err(XmlError::Unexpected(
        "propfind needs prop, propname or allprop".into(),
    ))
}

/// Parses a PROPPATCH body into its set/remove instructions in document order.
pub fn parse_proppatch(body: &[u8]) -> Result<Vec<PropPatchOp>, XmlError> {
    parse_proppatch_limited(body, XmlLimits::default())
}

/// As [`parse_proppatch`], within `limits`.
pub fn parse_proppatch_limited(
    body: &[u8],
    limits: XmlLimits,
) -> Result<Vec<PropPatchOp>, XmlError> {
    let doc = Doc::parse(body, limits)?;
    let root = doc.root_is("propertyupdate")?;
    let mut ops = Vec::new();
    for c in doc.children(root) {
        let set = doc.is(c, DAV_NS, "set");
        if !set && !doc.is(c, DAV_NS, "remove") {
            continue;
        }
        for p in doc.children(c).filter(|&p| doc.is(p, DAV_NS, "prop")) {
            for v in doc.children(p) {
                if ops.len() >= doc.limits.props_max {
                    return Err(XmlError::TooManyProps);
                }
                let name = doc.name(v)?;
                ops.push(if set {
                    PropPatchOp::Set(PropValue {
                        name,
                        xml: doc.self_contained(v)?,
                        lang: doc.elem(v)?.lang.clone(),
                    })
                } else {
                    PropPatchOp::Remove(name)
                });
            }
        }
    }
    if ops.is_empty() {
        return Err(XmlError::Unexpected(
            "propertyupdate without set or remove".into(),
        ));
    }
    Ok(ops)
}

/// Parses a LOCK body; None for an empty body (a refresh, RFC 4918 §9.10.2).
pub fn parse_lockinfo(body: &[u8]) -> Result<Option<LockInfoBody>, XmlError> {
    parse_lockinfo_limited(body, XmlLimits::default())
}

/// As [`parse_lockinfo`], within `limits`.
pub fn parse_lockinfo_limited(
    body: &[u8],
    limits: XmlLimits,
) -> Result<Option<LockInfoBody>, XmlError> {
    if is_blank(body) {
        return Ok(None);
    }
    let doc = Doc::parse(body, limits)?;
    let root = doc.root_is("lockinfo")?;
    let scope_el = doc
        .child(root, "lockscope")
        .ok_or_else(|| XmlError::Unexpected("lockinfo without lockscope".into()))?;
    let scope = if doc.child(scope_el, "exclusive").is_some() {
        LockScope::Exclusive
    } else if doc.child(scope_el, "shared").is_some() {
        LockScope::Shared
    } else {
        return Err(XmlError::Unexpected(
            "lockscope must be exclusive or shared".into(),
        ));
    };
    let type_el = doc
        .child(root, "locktype")
        .ok_or_else(|| XmlError::Unexpected("lockinfo without locktype".into()))?;
    if doc.child(type_el, "write").is_none() {
        return Err(XmlError::Unexpected(
            "only write locks are supported".into(),
        ));
    }
    let owner = match doc.child(root, "owner") {
        Some(o) => Some(doc.self_contained(o)?),
        None => None,
    };
    Ok(Some(LockInfoBody { scope, owner }))
}

/// A `sync-collection` REPORT body (RFC 6578 §6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncCollection {
    /// The `DAV:sync-token` text, trimmed; empty for the initial sync.
    pub token: String,
    /// `DAV:sync-level` `infinite` (else `1`, also when missing: `docs/webdav.md`).
    pub infinite: bool,
    /// `DAV:limit/DAV:nresults`, if given.
    pub nresults: Option<u64>,
    /// The properties asked for (`DAV:prop`; `allprop` also taken; none given: `getetag`).
    pub props: Propfind,
}

/// Parses a REPORT body within `limits`: `Ok(None)` when it asks for a report other than
/// `sync-collection`.
pub fn parse_report(body: &[u8], limits: XmlLimits) -> Result<Option<SyncCollection>, XmlError> {
    let doc = Doc::parse(body, limits)?;
    match doc.root {
        Some(r) if doc.is(r, DAV_NS, "sync-collection") => {}
        Some(_) => return Ok(None),
        None => return Err(XmlError::Unexpected("empty REPORT body".into())),
    }
    let root = doc.root_is("sync-collection")?;
    let text = |local: &str| -> Result<Option<String>, XmlError> {
        match doc.child(root, local) {
            Some(c) => Ok(Some(doc.elem(c)?.text.trim().to_string())),
            None => Ok(None),
        }
    };
    let token = text("sync-token")?.unwrap_or_default();
    let infinite = match text("sync-level")?.as_deref() {
        None | Some("1") => false,
        Some("infinite") | Some("infinity") => true,
        Some(_) => {
            return Err(XmlError::Unexpected(
                "sync-level must be 1 or infinite".into(),
            ))
        }
    };
    let nresults = match doc
        .child(root, "limit")
        .and_then(|l| doc.child(l, "nresults"))
    {
        Some(n) => Some(
            doc.elem(n)?
                .text
                .trim()
                .parse::<u64>()
                .map_err(|_| XmlError::Unexpected("nresults must be a number".into()))?,
        ),
        None => None,
    };
    let props = if let Some(p) = doc.child(root, "prop") {
        let mut names = Vec::new();
        doc.names_in(p, &mut names)?;
        Propfind::Prop(names)
    } else if doc.child(root, "allprop").is_some() {
        Propfind::AllProp {
            include: Vec::new(),
        }
    } else {
        Propfind::Prop(vec![PropName::dav("getetag")])
    };
    Ok(Some(SyncCollection {
        token,
        infinite,
        nresults,
        props,
    }))
}

// ---------------------------------------------------------------- writing

/// RFC 4918 §16 / RFC 4331 precondition and postcondition codes for `DAV:error` bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DavCondition {
    PropfindFiniteDepth,
    /// With the hrefs of the locked resources.
    LockTokenSubmitted(Vec<String>),
    /// With the hrefs of the conflicting locks' roots.
    NoConflictingLock(Vec<String>),
    LockTokenMatchesRequestUri,
    CannotModifyProtectedProperty,
    PreservedLiveProperties,
    NoExternalEntities,
    /// RFC 4331 §6: the quota would be exceeded.
    QuotaNotExceeded,
    /// RFC 4331 §6: not enough space on the server.
    SufficientDiskSpace,
    /// RFC 6578 §3.2: the sync token is not (or no longer) valid here.
    ValidSyncToken,
    /// RFC 6578 §3.6 / RFC 5323: more results than the limit (or than the server answers).
    NumberOfMatchesWithinLimits,
    /// RFC 3253 §3.6: a report the resource does not support.
    SupportedReport,
}

impl DavCondition {
    fn write(&self, out: &mut String) {
        let (name, hrefs): (&str, &[String]) = match self {
            DavCondition::PropfindFiniteDepth => ("propfind-finite-depth", &[]),
            DavCondition::LockTokenSubmitted(h) => ("lock-token-submitted", h),
            DavCondition::NoConflictingLock(h) => ("no-conflicting-lock", h),
            DavCondition::LockTokenMatchesRequestUri => ("lock-token-matches-request-uri", &[]),
            DavCondition::CannotModifyProtectedProperty => {
                ("cannot-modify-protected-property", &[])
            }
            DavCondition::PreservedLiveProperties => ("preserved-live-properties", &[]),
            DavCondition::NoExternalEntities => ("no-external-entities", &[]),
            DavCondition::QuotaNotExceeded => ("quota-not-exceeded", &[]),
            DavCondition::SufficientDiskSpace => ("sufficient-disk-space", &[]),
            DavCondition::ValidSyncToken => ("valid-sync-token", &[]),
            DavCondition::NumberOfMatchesWithinLimits => ("number-of-matches-within-limits", &[]),
            DavCondition::SupportedReport => ("supported-report", &[]),
        };
        if hrefs.is_empty() {
            let _ = write!(out, "<D:{name}/>");
        } else {
            let _ = write!(out, "<D:{name}>");
            for h in hrefs {
                let _ = write!(out, "<D:href>{}</D:href>", escape(h.as_str()));
            }
            let _ = write!(out, "</D:{name}>");
        }
    }
}

const XML_HEAD: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";

/// A whole `DAV:error` response body for 403/409/423/507 answers.
pub fn error_body(cond: &DavCondition) -> String {
    let mut out = String::from(XML_HEAD);
    out.push_str("<D:error xmlns:D=\"DAV:\">");
    cond.write(&mut out);
    out.push_str("</D:error>");
    out
}

fn status_line(s: StatusCode) -> std::borrow::Cow<'static, str> {
    match s {
        StatusCode::OK => "HTTP/1.1 200 OK".into(),
        StatusCode::NOT_FOUND => "HTTP/1.1 404 Not Found".into(),
        _ => format!(
            "HTTP/1.1 {} {}",
            s.as_u16(),
            s.canonical_reason().unwrap_or("")
        )
        .into(),
    }
}

/// Appends `text` as XML character data: only `<`, `>` and `&` need escaping there.
fn push_text(buf: &mut String, text: &str) {
    if text.bytes().any(|b| matches!(b, b'<' | b'>' | b'&')) {
        buf.push_str(&quick_xml::escape::partial_escape(text));
    } else {
        buf.push_str(text);
    }
}

/// Appends `n` in decimal without the formatting machinery.
fn push_u64(buf: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits are written above, so this never falls back to "".
    buf.push_str(std::str::from_utf8(&digits[i..]).unwrap_or(""));
}

/// Builds a 207 Multi-Status body response by response, straight into one buffer.
pub struct Multistatus {
    buf: String,
}

impl Default for Multistatus {
    fn default() -> Self {
        Self::new()
    }
}

impl Multistatus {
    pub fn new() -> Self {
        Self::with_capacity(4096)
    }

    /// A builder whose buffer starts with room for about `bytes` (a hint, capped at
    /// `MULTISTATUS_PREALLOC_MAX`), so that a long answer is not copied as it grows.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = String::with_capacity(bytes.min(crate::limits::MULTISTATUS_PREALLOC_MAX));
        buf.push_str(XML_HEAD);
        buf.push_str("<D:multistatus xmlns:D=\"DAV:\">");
        Multistatus { buf }
    }

    /// Starts a `DAV:response` for an (already encoded) href. Inside, call `propstat`s or one
    /// `status`, then optionally `error` and `description`, in that order (RFC 4918 §14.24).
    pub fn response(&mut self, href: &str) -> ResponseWriter<'_> {
        self.buf.push_str("<D:response><D:href>");
        push_text(&mut self.buf, href);
        self.buf.push_str("</D:href>");
        ResponseWriter { buf: &mut self.buf }
    }

    /// Bytes written so far (to stream large multistatus bodies in pieces).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Closes the document with a `DAV:sync-token` (RFC 6578 §6.4) after the responses.
    pub fn finish_with_sync_token(mut self, token: &str) -> String {
        self.buf.push_str("<D:sync-token>");
        push_text(&mut self.buf, token);
        self.buf.push_str("</D:sync-token>");
        self.finish()
    }

    /// Closes the document and returns the rest of the body.
    pub fn finish(mut self) -> String {
        self.buf.push_str("</D:multistatus>");
        self.buf
    }
}

/// One open `DAV:response`; closed when dropped.
pub struct ResponseWriter<'a> {
    buf: &'a mut String,
}

impl ResponseWriter<'_> {
    /// A `propstat` group: the properties written by `f`, all with `status`.
    pub fn propstat(
        &mut self,
        status: StatusCode,
        f: impl FnOnce(&mut PropWriter<'_>),
    ) -> &mut Self {
        self.buf.push_str("<D:propstat><D:prop>");
        f(&mut PropWriter { buf: self.buf });
        self.buf.push_str("</D:prop><D:status>");
        self.buf.push_str(&status_line(status));
        self.buf.push_str("</D:status></D:propstat>");
        self
    }

    /// A response-level status (no propstat), e.g. a failed member of a DELETE.
    pub fn status(&mut self, status: StatusCode) -> &mut Self {
        let _ = write!(self.buf, "<D:status>{}</D:status>", status_line(status));
        self
    }

    pub fn error(&mut self, cond: &DavCondition) -> &mut Self {
        self.buf.push_str("<D:error>");
        cond.write(self.buf);
        self.buf.push_str("</D:error>");
        self
    }

    pub fn description(&mut self, text: &str) -> &mut Self {
        let _ = write!(
            self.buf,
            "<D:responsedescription>{}</D:responsedescription>",
            escape(text)
        );
        self
    }
}

impl Drop for ResponseWriter<'_> {
    fn drop(&mut self) {
        self.buf.push_str("</D:response>");
    }
}

/// Writes properties inside one `DAV:prop`.
pub struct PropWriter<'a> {
    buf: &'a mut String,
}

/// RFC 3339 UTC timestamp (`creationdate`, RFC 4918 §15.1).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = crate::http::date::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

fn timeout_value(info: &LockInfo) -> String {
    let r = info.remaining;
    format!("Second-{}", r.as_secs() + u64::from(r.subsec_nanos() > 0))
}

impl PropWriter<'_> {
    fn open(&mut self, name: &PropName) {
        if name.is_dav() {
            self.buf.push_str("<D:");
            self.buf.push_str(&name.name);
        } else if name.ns.is_empty() {
            let _ = write!(self.buf, "<{} xmlns=\"\"", name.name);
        } else {
            let _ = write!(
                self.buf,
                "<X:{} xmlns:X=\"{}\"",
                name.name,
                escape(name.ns.as_str())
            );
        }
    }
    fn close(&mut self, name: &PropName) {
        if name.is_dav() {
            self.buf.push_str("</D:");
            self.buf.push_str(&name.name);
            self.buf.push('>');
        } else if name.ns.is_empty() {
            let _ = write!(self.buf, "</{}>", name.name);
        } else {
            let _ = write!(self.buf, "</X:{}>", name.name);
        }
    }

    /// An empty property element (propname answers, 404/403 propstats, PROPPATCH results).
    pub fn empty(&mut self, name: &PropName) {
        self.open(name);
        self.buf.push_str("/>");
    }

    /// A property with escaped text content.
    pub fn text(&mut self, name: &PropName, text: &str) {
        self.open(name);
        self.buf.push('>');
        push_text(self.buf, text);
        self.close(name);
    }

    /// A dead property exactly as stored (`PropValue::xml`).
    pub fn raw(&mut self, xml: &str) {
        self.buf.push_str(xml);
    }

    fn dav_text(&mut self, name: &str, text: &str) {
        self.buf.push_str("<D:");
        self.buf.push_str(name);
        self.buf.push('>');
        push_text(self.buf, text);
        self.buf.push_str("</D:");
        self.buf.push_str(name);
        self.buf.push('>');
    }

    pub fn resourcetype(&mut self, collection: bool) {
        self.buf.push_str(if collection {
            "<D:resourcetype><D:collection/></D:resourcetype>"
        } else {
            "<D:resourcetype/>"
        });
    }

    /// `getetag`; the tag is quoted if it is not already.
    pub fn getetag(&mut self, etag: &str) {
        self.buf.push_str("<D:getetag>");
        let quoted = etag.starts_with('"') || etag.starts_with("W/\"");
        if !quoted {
            self.buf.push('"');
        }
        push_text(self.buf, etag);
        if !quoted {
            self.buf.push('"');
        }
        self.buf.push_str("</D:getetag>");
    }

    /// `getlastmodified` as an RFC 1123 (IMF-fixdate) date.
    pub fn getlastmodified(&mut self, t: SystemTime) {
        self.buf.push_str("<D:getlastmodified>");
        crate::http::date::push_imf_fixdate(self.buf, t);
        self.buf.push_str("</D:getlastmodified>");
    }

    /// `creationdate` as RFC 3339.
    pub fn creationdate(&mut self, t: SystemTime) {
        self.dav_text("creationdate", &rfc3339(t));
    }

    pub fn getcontentlength(&mut self, n: u64) {
        self.buf.push_str("<D:getcontentlength>");
        push_u64(self.buf, n);
        self.buf.push_str("</D:getcontentlength>");
    }

    pub fn getcontenttype(&mut self, ct: &str) {
        self.dav_text("getcontenttype", ct);
    }

    pub fn displayname(&mut self, name: &str) {
        self.dav_text("displayname", name);
    }

    /// RFC 4331 `quota-available-bytes`.
    pub fn quota_available_bytes(&mut self, n: u64) {
        let _ = write!(
            self.buf,
            "<D:quota-available-bytes>{n}</D:quota-available-bytes>"
        );
    }

    /// RFC 4331 `quota-used-bytes`.
    pub fn quota_used_bytes(&mut self, n: u64) {
        let _ = write!(self.buf, "<D:quota-used-bytes>{n}</D:quota-used-bytes>");
    }

    /// `supportedlock`: exclusive and shared write locks.
    pub fn supportedlock(&mut self) {
        self.buf.push_str(
            "<D:supportedlock>\
             <D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>\
             <D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>\
             </D:supportedlock>",
        );
    }

    /// `lockdiscovery` with one `activelock` per lock; `root_href` encodes a lock's root.
    pub fn lockdiscovery(&mut self, locks: &[LockInfo], root_href: impl Fn(&LockInfo) -> String) {
        if locks.is_empty() {
            self.buf.push_str("<D:lockdiscovery/>");
            return;
        }
        self.buf.push_str("<D:lockdiscovery>");
        for l in locks {
            write_activelock(self.buf, l, &root_href(l));
        }
        self.buf.push_str("</D:lockdiscovery>");
    }
}

fn write_activelock(out: &mut String, l: &LockInfo, root_href: &str) {
    let scope = match l.scope {
        LockScope::Exclusive => "exclusive",
        LockScope::Shared => "shared",
    };
    let depth = match l.depth {
        LockDepth::Zero => "0",
        LockDepth::Infinity => "infinity",
    };
    let _ = write!(
        out,
        "<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:{scope}/></D:lockscope><D:depth>{depth}</D:depth>"
    );
    if let Some(o) = &l.owner {
        out.push_str(o);
    }
    let _ = write!(
        out,
        "<D:timeout>{}</D:timeout><D:locktoken><D:href>{}</D:href></D:locktoken><D:lockroot><D:href>{}</D:href></D:lockroot></D:activelock>",
        timeout_value(l),
        escape(l.token.as_str()),
        escape(root_href)
    );
}

/// The body of a successful LOCK (RFC 4918 §9.10.1): `prop` with the new lock's lockdiscovery.
pub fn lock_response_body(l: &LockInfo, root_href: &str) -> String {
    let mut out = String::from(XML_HEAD);
    out.push_str("<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery>");
    write_activelock(&mut out, l, root_href);
    out.push_str("</D:lockdiscovery></D:prop>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dav::path::SpacePath;
    use std::time::Duration;

    #[test]
    fn configured_limits_are_smaller_bounds() {
        let strict = XmlLimits {
            depth_max: 4,
            props_max: 2,
        };
        let deep = format!(
            "<propfind xmlns=\"DAV:\"><prop>{}{}</prop></propfind>",
            "<a>".repeat(3),
            "</a>".repeat(3)
        );
        assert!(parse_propfind(deep.as_bytes()).is_ok());
        assert_eq!(
            parse_propfind_limited(deep.as_bytes(), strict),
            Err(XmlError::TooDeep)
        );
        let three = "<propfind xmlns=\"DAV:\"><prop><a/><b/><c/></prop></propfind>";
        assert!(parse_propfind(three.as_bytes()).is_ok());
        assert_eq!(
            parse_propfind_limited(three.as_bytes(), strict),
            Err(XmlError::TooManyProps)
        );
        let patch = "<propertyupdate xmlns=\"DAV:\"><set><prop><a>1</a><b>2</b><c>3</c></prop></set></propertyupdate>";
        assert_eq!(
            parse_proppatch_limited(patch.as_bytes(), strict),
            Err(XmlError::TooManyProps)
        );
        let lock = format!(
            "<lockinfo xmlns=\"DAV:\"><lockscope><exclusive/></lockscope><locktype><write/></locktype><owner>{}x{}</owner></lockinfo>",
            "<o>".repeat(4),
            "</o>".repeat(4)
        );
        assert!(parse_lockinfo(lock.as_bytes()).is_ok());
        assert_eq!(
            parse_lockinfo_limited(lock.as_bytes(), strict),
            Err(XmlError::TooDeep)
        );
        let mut config = crate::config::LimitsConfig::default();
        assert_eq!(XmlLimits::from_config(&config), XmlLimits::default());
        config.xml_depth_max = 1_000_000;
        config.props_per_request_max = 1_000_000;
        assert_eq!(XmlLimits::from_config(&config), XmlLimits::default());
    }

    #[test]
    fn propfind_forms() {
        assert_eq!(
            parse_propfind(b"").unwrap(),
            Propfind::AllProp { include: vec![] }
        );
        assert_eq!(
            parse_propfind(b"  \r\n").unwrap(),
            Propfind::AllProp { include: vec![] }
        );
        let body = br#"<?xml version="1.0" encoding="utf-8" ?>
            <D:propfind xmlns:D="DAV:"><D:prop xmlns:R="http://ns.example.com/boxschema/">
              <R:bigbox/> <R:author/> <D:getetag/> <nons xmlns=""/>
            </D:prop></D:propfind>"#;
        assert_eq!(
            parse_propfind(body).unwrap(),
            Propfind::Prop(vec![
                PropName::new("http://ns.example.com/boxschema/", "bigbox"),
                PropName::new("http://ns.example.com/boxschema/", "author"),
                PropName::dav("getetag"),
                PropName::new("", "nons"),
            ])
        );
        let body = br#"<propfind xmlns="DAV:"><propname/></propfind>"#;
        assert_eq!(parse_propfind(body).unwrap(), Propfind::PropName);
        let body = br#"<D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:supported-live-property-set/><D:supported-report-set/></D:include></D:propfind>"#;
        assert_eq!(
            parse_propfind(body).unwrap(),
            Propfind::AllProp {
                include: vec![
                    PropName::dav("supported-live-property-set"),
                    PropName::dav("supported-report-set")
                ]
            }
        );
        // Windows sends a BOM sometimes.
        let body = "\u{feff}<propfind xmlns=\"DAV:\"><allprop/></propfind>";
        assert!(matches!(
            parse_propfind(body.as_bytes()).unwrap(),
            Propfind::AllProp { .. }
        ));
    }

    #[test]
    fn propfind_errors() {
        assert!(matches!(
            parse_propfind(b"<propfind xmlns=\"DAV:\"/>"),
            Err(XmlError::Unexpected(_))
        ));
        assert!(matches!(
            parse_propfind(b"<foo/>"),
            Err(XmlError::Unexpected(_))
        ));
        assert!(matches!(
            parse_propfind(b"<propfind xmlns=\"DAV:\"><prop>"),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse_propfind(b"<a></b>"),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse_propfind(b"<x:a/>"),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse_propfind(b"<a/><b/>"),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse_propfind(b"<a>&bogus;</a>"),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse_propfind(b"<a x='1' x='2'/>"),
            Err(XmlError::Malformed(_))
        ));
        assert_eq!(parse_propfind(b"<a>\xff</a>"), Err(XmlError::NotUtf8));
        assert_eq!(
            parse_propfind(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>"),
            Err(XmlError::NotUtf8)
        );
        let e = parse_propfind(b"<propfind xmlns=\"DAV:\"><prop>")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("malformed XML"), "{e}");
    }

    #[test]
    fn refuses_dtd_bombs_and_external_entities() {
        let laughs = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<D:propfind xmlns:D="DAV:"><D:prop><x xmlns="y">&lol3;</x></D:prop></D:propfind>"#;
        assert_eq!(parse_propfind(laughs), Err(XmlError::Dtd));
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="y">&xxe;</x></D:prop></D:set></D:propertyupdate>"#;
        assert_eq!(parse_proppatch(xxe), Err(XmlError::Dtd));
        assert_eq!(
            parse_lockinfo(b"<!DOCTYPE lockinfo SYSTEM \"http://evil/x.dtd\"><lockinfo/>"),
            Err(XmlError::Dtd)
        );
        // An entity reference with no declaration is just malformed.
        let bare = br#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="y">&xxe;</x></D:prop></D:set></D:propertyupdate>"#;
        assert!(matches!(parse_proppatch(bare), Err(XmlError::Malformed(_))));
    }

    #[test]
    fn limits_enforced() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(DAV_XML_DEPTH_MAX + 1),
            "</a>".repeat(DAV_XML_DEPTH_MAX + 1)
        );
        assert_eq!(parse_propfind(deep.as_bytes()), Err(XmlError::TooDeep));
        let many = format!(
            "<propfind xmlns=\"DAV:\"><prop>{}</prop></propfind>",
            "<x/>".repeat(DAV_XML_ELEMENTS_MAX)
        );
        assert_eq!(
            parse_propfind(many.as_bytes()),
            Err(XmlError::TooManyElements)
        );
        let props = format!(
            "<propfind xmlns=\"DAV:\"><prop>{}</prop></propfind>",
            "<x/>".repeat(DAV_XML_PROPS_MAX + 1)
        );
        assert_eq!(
            parse_propfind(props.as_bytes()),
            Err(XmlError::TooManyProps)
        );
        let ok = format!(
            "<propfind xmlns=\"DAV:\"><prop>{}</prop></propfind>",
            "<x/>".repeat(DAV_XML_PROPS_MAX)
        );
        assert!(parse_propfind(ok.as_bytes()).is_ok());
        let big = vec![b' '; DAV_XML_BODY_MAX + 1];
        assert_eq!(parse_proppatch(&big), Err(XmlError::TooLarge));
    }

    #[test]
    fn proppatch_keeps_order_and_raw_values() {
        let body = r#"<?xml version="1.0" encoding="utf-8" ?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="http://ns.example.com/standards/z39.50/" xml:lang="da">
  <D:set><D:prop>
    <Z:Authors><Z:Author>Jim &amp; Roy</Z:Author><Z:Author>Æble</Z:Author></Z:Authors>
  </D:prop></D:set>
  <D:remove><D:prop><Z:Copyright-Owner/></D:prop></D:remove>
  <D:set><D:prop><Q:x xmlns:Q="urn:q" xml:lang="en"><![CDATA[<raw>]]></Q:x><D:displayname>n</D:displayname></D:prop></D:set>
</D:propertyupdate>"#;
        let ops = parse_proppatch(body.as_bytes()).unwrap();
        assert_eq!(ops.len(), 4);
        let PropPatchOp::Set(a) = &ops[0] else {
            panic!("{ops:?}")
        };
        assert_eq!(
            a.name,
            PropName::new("http://ns.example.com/standards/z39.50/", "Authors")
        );
        assert_eq!(a.lang.as_deref(), Some("da"));
        assert!(a.xml.starts_with("<Z:Authors xmlns:D=\"DAV:\" xmlns:Z=\"http://ns.example.com/standards/z39.50/\" xml:lang=\"da\">") || a.xml.starts_with("<Z:Authors xmlns:Z=\"http://ns.example.com/standards/z39.50/\" xmlns:D=\"DAV:\" xml:lang=\"da\">"), "{}", a.xml);
        assert!(
            a.xml.ends_with(
                "<Z:Author>Jim &amp; Roy</Z:Author><Z:Author>Æble</Z:Author></Z:Authors>"
            ),
            "{}",
            a.xml
        );
        assert_eq!(
            ops[1],
            PropPatchOp::Remove(PropName::new(
                "http://ns.example.com/standards/z39.50/",
                "Copyright-Owner"
            ))
        );
        let PropPatchOp::Set(q) = &ops[2] else {
            panic!()
        };
        assert_eq!(q.lang.as_deref(), Some("en"));
        assert!(q.xml.starts_with("<Q:x xmlns:"), "{}", q.xml);
        assert!(
            q.xml
                .contains(" xmlns:Z=\"http://ns.example.com/standards/z39.50/\""),
            "{}",
            q.xml
        );
        assert!(
            q.xml.contains(" xmlns:Q=\"urn:q\" xml:lang=\"en\">"),
            "{}",
            q.xml
        );
        assert_eq!(
            q.xml.matches("xml:lang").count(),
            1,
            "own xml:lang not duplicated"
        );
        assert!(q.xml.contains("<![CDATA[<raw>]]>"));
        assert!(matches!(&ops[3], PropPatchOp::Set(v) if v.name == PropName::dav("displayname")));

        // The self-contained value parses on its own to the same name.
        let again = format!(
            "<D:propfind xmlns:D=\"DAV:\"><D:prop>{}</D:prop></D:propfind>",
            a.xml
        );
        assert_eq!(
            parse_propfind(again.as_bytes()).unwrap(),
            Propfind::Prop(vec![a.name.clone()])
        );

        assert!(matches!(
            parse_proppatch(b"<propertyupdate xmlns=\"DAV:\"/>"),
            Err(XmlError::Unexpected(_))
        ));
    }

    #[test]
    fn default_namespace_is_carried_into_values() {
        let body = br#"<propertyupdate xmlns="DAV:"><set><prop xmlns="urn:x"><color>red</color></prop></set></propertyupdate>"#;
        // `prop` in urn:x is not DAV:prop, so nothing is set.
        assert!(parse_proppatch(body).is_err());
        let body = br#"<propertyupdate xmlns="DAV:"><set><prop><color xmlns="urn:x"><shade>dark</shade></color><size>1</size></prop></set></propertyupdate>"#;
        let ops = parse_proppatch(body).unwrap();
        let PropPatchOp::Set(c) = &ops[0] else {
            panic!()
        };
        assert_eq!(c.name, PropName::new("urn:x", "color"));
        assert_eq!(c.xml, "<color xmlns=\"urn:x\"><shade>dark</shade></color>");
        let PropPatchOp::Set(s) = &ops[1] else {
            panic!()
        };
        assert_eq!(s.name, PropName::dav("size"));
        assert_eq!(s.xml, "<size xmlns=\"DAV:\">1</size>");
    }

    #[test]
    fn lockinfo_forms() {
        assert_eq!(parse_lockinfo(b"").unwrap(), None);
        let body = br#"<?xml version="1.0" encoding="utf-8" ?>
<D:lockinfo xmlns:D='DAV:'><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>
<D:owner><D:href>http://example.org/~ejw/contact.html</D:href></D:owner></D:lockinfo>"#;
        let li = parse_lockinfo(body).unwrap().unwrap();
        assert_eq!(li.scope, LockScope::Exclusive);
        assert_eq!(li.owner.as_deref(), Some("<D:owner xmlns:D=\"DAV:\"><D:href>http://example.org/~ejw/contact.html</D:href></D:owner>"));
        let body = br#"<lockinfo xmlns="DAV:"><lockscope><shared/></lockscope><locktype><write/></locktype></lockinfo>"#;
        assert_eq!(
            parse_lockinfo(body).unwrap(),
            Some(LockInfoBody {
                scope: LockScope::Shared,
                owner: None
            })
        );
        let bad = br#"<lockinfo xmlns="DAV:"><lockscope><shared/></lockscope><locktype><read/></locktype></lockinfo>"#;
        assert!(matches!(parse_lockinfo(bad), Err(XmlError::Unexpected(_))));
        let bad = br#"<lockinfo xmlns="DAV:"><locktype><write/></locktype></lockinfo>"#;
        assert!(matches!(parse_lockinfo(bad), Err(XmlError::Unexpected(_))));
    }

    fn info() -> LockInfo {
        LockInfo {
            token: "opaquelocktoken:e71d4fae-5dec-22d6-fea5-00a0c91e6be4".into(),
            root: SpacePath::from_segments(["a & b"]).unwrap(),
            scope: LockScope::Exclusive,
            depth: LockDepth::Infinity,
            owner: Some("<D:owner xmlns:D=\"DAV:\">Anna</D:owner>".into()),
            principal: "anna".into(),
            timeout: Duration::from_secs(600),
            remaining: Duration::from_millis(599_500),
            created_resource: false,
        }
    }

    #[test]
    fn multistatus_writer() {
        let mut ms = Multistatus::new();
        {
            let mut r = ms.response("/dav/t/u/a%20b/");
            r.propstat(StatusCode::OK, |p| {
                p.resourcetype(true);
                p.getetag("abc");
                p.getetag("\"q\"");
                p.getcontentlength(42);
                p.getcontenttype("text/plain; charset=\"utf-8\"");
                p.displayname("Tom & <Jerry>");
                p.getlastmodified(UNIX_EPOCH + Duration::from_secs(784_111_777));
                p.creationdate(UNIX_EPOCH + Duration::from_secs(784_111_777));
                p.quota_available_bytes(10);
                p.quota_used_bytes(5);
                p.text(&PropName::new("urn:x", "color"), "<red>");
                p.raw("<Z:a xmlns:Z=\"urn:z\">v</Z:a>");
            })
            .propstat(StatusCode::NOT_FOUND, |p| {
                p.empty(&PropName::new("urn:x", "missing"));
                p.empty(&PropName::new("", "bare"));
            });
        }
        ms.response("/dav/t/u/locked")
            .status(StatusCode::LOCKED)
            .error(&DavCondition::LockTokenSubmitted(vec!["/dav/t/u/".into()]))
            .description("locked by someone");
        let body = ms.finish();
        for want in [
            "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/dav/t/u/a%20b/</D:href><D:propstat><D:prop>",
            "<D:resourcetype><D:collection/></D:resourcetype>",
            "<D:getetag>\"abc\"</D:getetag>",
            "<D:getetag>\"q\"</D:getetag>",
            "<D:getcontentlength>42</D:getcontentlength>",
            "<D:displayname>Tom &amp; &lt;Jerry&gt;</D:displayname>",
            "<D:getlastmodified>Sun, 06 Nov 1994 08:49:37 GMT</D:getlastmodified>",
            "<D:creationdate>1994-11-06T08:49:37Z</D:creationdate>",
            "<D:quota-available-bytes>10</D:quota-available-bytes><D:quota-used-bytes>5</D:quota-used-bytes>",
            "<X:color xmlns:X=\"urn:x\">&lt;red&gt;</X:color>",
            "<Z:a xmlns:Z=\"urn:z\">v</Z:a>",
            "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>",
            "<X:missing xmlns:X=\"urn:x\"/><bare xmlns=\"\"/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status>",
            "<D:response><D:href>/dav/t/u/locked</D:href><D:status>HTTP/1.1 423 Locked</D:status><D:error><D:lock-token-submitted><D:href>/dav/t/u/</D:href></D:lock-token-submitted></D:error><D:responsedescription>locked by someone</D:responsedescription></D:response></D:multistatus>",
        ] {
            assert!(body.contains(want), "missing {want}\nin {body}");
        }
        // The output is well-formed and round-trips through our own parser.
        let doc = Doc::parse(body.as_bytes(), XmlLimits::default()).unwrap();
        assert!(doc.root_is("multistatus").is_ok());
        assert_eq!(
            doc.elems.iter().filter(|e| e.local == "response").count(),
            2
        );
    }

    #[test]
    fn lock_bodies() {
        let l = info();
        let body = lock_response_body(&l, "/dav/t/u/a%20%26%20b/");
        for want in [
            "<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery><D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:exclusive/></D:lockscope><D:depth>infinity</D:depth>",
            "<D:owner xmlns:D=\"DAV:\">Anna</D:owner><D:timeout>Second-600</D:timeout>",
            "<D:locktoken><D:href>opaquelocktoken:e71d4fae-5dec-22d6-fea5-00a0c91e6be4</D:href></D:locktoken>",
            "<D:lockroot><D:href>/dav/t/u/a%20%26%20b/</D:href></D:lockroot></D:activelock></D:lockdiscovery></D:prop>",
        ] {
            assert!(body.contains(want), "missing {want}\nin {body}");
        }
        assert!(Doc::parse(body.as_bytes(), XmlLimits::default()).is_ok());
        let mut ms = Multistatus::new();
        ms.response("/x").propstat(StatusCode::OK, |p| {
            p.lockdiscovery(&[], |_| String::new());
            p.supportedlock();
        });
        let b = ms.finish();
        assert!(b.contains("<D:lockdiscovery/>") && b.contains("<D:shared/>"));
        let e = error_body(&DavCondition::NoConflictingLock(vec!["/dav/t/u/a".into()]));
        assert!(e.ends_with("<D:error xmlns:D=\"DAV:\"><D:no-conflicting-lock><D:href>/dav/t/u/a</D:href></D:no-conflicting-lock></D:error>"));
        assert!(
            error_body(&DavCondition::PropfindFiniteDepth).contains("<D:propfind-finite-depth/>")
        );
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "2024-02-29T23:59:59Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1969-12-31T23:59:59Z"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn parsers_never_panic(s in "(<[a-zD:/!?&;=\"' ]{0,12}>|[a-z&;<>]{0,4}){0,12}") {
            let _ = parse_propfind(s.as_bytes());
            let _ = parse_proppatch(s.as_bytes());
            let _ = parse_lockinfo(s.as_bytes());
        }
    }
}
