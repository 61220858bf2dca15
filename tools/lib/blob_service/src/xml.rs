// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! XML bodies: the block-list request parser and small helpers for the response documents.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::error::{ErrorCode, SResult, ServiceError};

/// XML declaration that starts every response document.
pub const DECL: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";

/// Escapes text for element content and attribute values.
pub fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// Appends `<name>text</name>`.
pub fn elem(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&esc(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Appends `<name>text</name>` when `text` is set, `<name />` otherwise.
pub fn opt_elem(out: &mut String, name: &str, text: Option<&str>) {
    match text {
        Some(t) => elem(out, name, t),
        None => {
            out.push('<');
            out.push_str(name);
            out.push_str(" />");
        }
    }
}

/// Which list a Put Block List entry draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockSource {
    /// `<Committed>`.
    Committed,
    /// `<Uncommitted>`.
    Uncommitted,
    /// `<Latest>`.
    Latest,
}

/// Parses a Put Block List body: `<BlockList>` with `<Committed>`, `<Uncommitted>` and
/// `<Latest>` children holding block ids.
pub fn parse_block_list(body: &[u8]) -> SResult<Vec<(BlockSource, String)>> {
    let bad = |d: String| ServiceError::with_detail(ErrorCode::InvalidXmlDocument, d);
    let text = std::str::from_utf8(body).map_err(|_| bad("body is not UTF-8".into()))?;
    let mut reader = Reader::from_str(text);
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut current: Option<BlockSource> = None;
    let mut value = String::new();
    loop {
        match reader.read_event() {
            Err(e) => return Err(bad(e.to_string())),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => {
                let name = e.name();
                match depth {
                    0 => {
                        if name.as_ref() != b"BlockList" || seen_root {
                            return Err(bad("root element must be BlockList".into()));
                        }
                        seen_root = true;
                    }
                    1 => {
                        current = Some(match name.as_ref() {
                            b"Committed" => BlockSource::Committed,
                            b"Uncommitted" => BlockSource::Uncommitted,
                            b"Latest" => BlockSource::Latest,
                            other => {
                                return Err(bad(format!(
                                    "unexpected element {}",
                                    String::from_utf8_lossy(other)
                                )))
                            }
                        });
                        value.clear();
                    }
                    _ => return Err(bad("unexpected nesting".into())),
                }
                depth += 1;
            }
            Ok(Event::Empty(e)) => {
                if depth == 0 && e.name().as_ref() == b"BlockList" && !seen_root {
                    seen_root = true;
                } else {
                    return Err(bad("empty block id element".into()));
                }
            }
            Ok(Event::Text(t)) => {
                let s = t.unescape().map_err(|e| bad(e.to_string()))?;
                if depth == 2 {
                    value.push_str(&s);
                } else if !s.trim().is_empty() {
                    return Err(bad("unexpected text".into()));
                }
            }
            Ok(Event::CData(t)) => {
                if depth == 2 {
                    value.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    if let Some(src) = current.take() {
                        out.push((src, value.trim().to_string()));
                    }
                }
            }
            Ok(Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_)) => {}
        }
    }
    if !seen_root || depth != 0 {
        return Err(bad("incomplete document".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_three_sources_in_order() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
<BlockList><Latest>QQ==</Latest><Committed>Qg==</Committed>
<Uncommitted>Qw==</Uncommitted></BlockList>"#;
        assert_eq!(
            parse_block_list(body).unwrap(),
            vec![
                (BlockSource::Latest, "QQ==".to_string()),
                (BlockSource::Committed, "Qg==".to_string()),
                (BlockSource::Uncommitted, "Qw==".to_string()),
            ]
        );
        assert!(parse_block_list(b"<BlockList/>").unwrap().is_empty());
    }

    #[test]
    fn rejects_malformed_documents() {
        for bad in [
            &b"<BlockList><Latest>QQ==</Latest>"[..],
            b"<Other><Latest>QQ==</Latest></Other>",
            b"<BlockList><Bogus>QQ==</Bogus></BlockList>",
            b"<BlockList><Latest><X/></Latest></BlockList>",
            b"not xml at all",
            b"",
        ] {
            let e = parse_block_list(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidXmlDocument, "{:?}", bad);
        }
    }
}
