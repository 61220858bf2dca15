// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The service's XML bodies (listings, block lists, page ranges, errors),
//! read into a small element tree with quick-xml.

use quick_xml::events::Event;

use crate::Error;

/// One element: its name, its text and its children.
#[derive(Debug, Default, Clone)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) text: String,
    pub(crate) children: Vec<Node>,
}

impl Node {
    /// The first child named `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub(crate) fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The children named `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Parses a whole document into its root element.
pub(crate) fn parse(body: &[u8]) -> Result<Node, Error> {
    let bad = |e: String| Error::Protocol(format!("the service's XML: {e}"));
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut stack: Vec<Node> = vec![Node::default()];
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => stack.push(Node {
                name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                ..Default::default()
            }),
            Ok(Event::Empty(e)) => {
                let node = Node {
                    name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    ..Default::default()
                };
                if let Some(top) = stack.last_mut() {
                    top.children.push(node);
                }
            }
            Ok(Event::Text(t)) => {
                let s = t.unescape().map_err(|e| bad(e.to_string()))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Ok(Event::End(_)) => {
                let node = stack.pop().ok_or_else(|| bad("unbalanced".into()))?;
                match stack.last_mut() {
                    Some(top) => top.children.push(node),
                    None => return Err(bad("unbalanced".into())),
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(bad(e.to_string())),
        }
        buf.clear();
    }
    if stack.len() != 1 {
        return Err(bad("unclosed element".into()));
    }
    stack
        .pop()
        .and_then(|doc| doc.children.into_iter().next())
        .ok_or_else(|| bad("no root element".into()))
}

/// Escapes text for element content.
pub(crate) fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tree_of_a_listing() {
        let doc = parse(
            br#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs><Blob><Name>a&amp;b</Name><Properties><Content-Length>3</Content-Length></Properties><Metadata/></Blob><BlobPrefix><Name>d/</Name></BlobPrefix></Blobs><NextMarker/></EnumerationResults>"#,
        )
        .unwrap();
        assert_eq!(doc.name, "EnumerationResults");
        let blobs = doc.child("Blobs").unwrap();
        let b = blobs.all("Blob").next().unwrap();
        assert_eq!(b.text_of("Name"), Some("a&b"));
        assert_eq!(
            b.child("Properties").unwrap().text_of("Content-Length"),
            Some("3")
        );
        assert_eq!(
            blobs.all("BlobPrefix").next().unwrap().text_of("Name"),
            Some("d/")
        );
        assert_eq!(doc.text_of("NextMarker"), Some(""));
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(parse(b"<A><B></A>").is_err());
        assert!(parse(b"<A>").is_err());
        assert!(parse(b"").is_err());
    }
}
