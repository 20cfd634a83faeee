//! A YAML document as a tree that remembers where every node came from.
//!
//! Definitions are checked long after parsing (a view names an entity declared in another
//! file), and every problem must point at a line and column. Serde-style deserializers lose
//! positions once a value is typed, so this module builds its own small tree from the
//! event stream of `saphyr-parser`, keeping a [`Loc`] on each node. Mapping keys keep
//! their order (for stable messages) and duplicates are reported, not silently merged.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diagnostic::{Diagnostic, Diagnostics, Loc};

/// A YAML node with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub loc: Loc,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An empty value (`key:` with nothing after it) or `~` / `null`.
    Null,
    /// Any scalar; `quoted` tells `"true"` (a string) from `true`.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Key/value pairs in file order; keys are scalars.
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The text of a scalar node (quoted or not).
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// A short description of the node's kind, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Parses one YAML document. An empty file is an empty mapping.
///
/// A syntax error yields no tree; problems that leave a usable tree (a duplicate key, an
/// alias) are returned beside it, so the rest of the file is still checked.
pub fn parse(file: &Path, text: &str) -> (Option<Node>, Diagnostics) {
    let file: Arc<Path> = Arc::from(file);
    let mut builder = Builder {
        file: &file,
        stack: Vec::new(),
        root: None,
        problems: Diagnostics::default(),
    };
    let mut parser = Parser::new_from_str(text);
    let mut documents = 0;
    while let Some(next) = parser.next_event() {
        match next {
            Ok((event, span)) => {
                if matches!(event, Event::DocumentStart(_)) {
                    documents += 1;
                    if documents > 1 {
                        let loc = loc_of(&file, span);
                        builder.problems.push(Diagnostic::new(
                            &loc,
                            "a definition file holds one YAML document; split the others into their own files",
                        ));
                        break;
                    }
                }
                builder.event(event, span);
            }
            Err(e) => {
                let m = e.marker();
                let loc = Loc::new(&file, m.line(), m.col() + 1);
                builder
                    .problems
                    .push(Diagnostic::new(&loc, format!("invalid YAML: {}", e.info())));
                return (None, builder.problems);
            }
        }
    }
    let root = builder.root.unwrap_or(Node {
        loc: Loc::new(&file, 1, 1),
        value: Value::Map(Vec::new()),
    });
    (Some(root), builder.problems)
}

fn loc_of(file: &Arc<Path>, span: Span) -> Loc {
    Loc::new(file, span.start.line(), span.start.col() + 1)
}

enum Open {
    Seq(Loc, Vec<Node>),
    /// Entries so far, a key waiting for its value, and the line of each key seen (so a
    /// duplicate is found in O(1), keeping big files linear).
    Map(Loc, Vec<(Node, Node)>, Option<Node>, HashMap<String, usize>),
}

struct Builder<'a> {
    file: &'a Arc<Path>,
    stack: Vec<Open>,
    root: Option<Node>,
    problems: Diagnostics,
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, span: Span) {
        let loc = loc_of(self.file, span);
        match event {
            Event::Scalar(text, style, _, tag) => {
                let quoted = !matches!(style, ScalarStyle::Plain) || tag.is_some();
                let value = if !quoted && matches!(text.as_ref(), "" | "~" | "null" | "Null" | "NULL") {
                    Value::Null
                } else {
                    Value::Scalar {
                        text: text.into_owned(),
                        quoted,
                    }
                };
                self.add(Node { loc, value });
            }
            Event::SequenceStart(..) => self.stack.push(Open::Seq(loc, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Open::Map(loc, Vec::new(), None, HashMap::new())),
            Event::SequenceEnd => {
                if let Some(Open::Seq(loc, items)) = self.stack.pop() {
                    self.add(Node {
                        loc,
                        value: Value::Seq(items),
                    });
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map(loc, entries, _, _)) = self.stack.pop() {
                    self.add(Node {
                        loc,
                        value: Value::Map(entries),
                    });
                }
            }
            Event::Alias(_) => {
                self.problems.push(Diagnostic::new(
                    &loc,
                    "YAML aliases (`*name`) are not supported in definitions",
                ));
                self.add(Node {
                    loc,
                    value: Value::Null,
                });
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::DocumentEnd => {}
        }
    }

    fn add(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq(_, items)) => items.push(node),
            Some(Open::Map(_, entries, pending, seen)) => match pending.take() {
                None => {
                    match node.as_str() {
                        None => self.problems.push(Diagnostic::new(
                            &node.loc,
                            format!("mapping keys must be plain names, found {}", node.kind()),
                        )),
                        Some(key) => {
                            if let Some(first) = seen.get(key) {
                                self.problems.push(Diagnostic::new(
                                    &node.loc,
                                    format!("duplicate key `{key}` (first defined at line {first})"),
                                ));
                            } else {
                                seen.insert(key.to_string(), node.loc.line);
                            }
                        }
                    }
                    *pending = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Node {
        let (root, problems) = parse(Path::new("t.yaml"), text);
        assert!(problems.is_empty(), "{problems}");
        root.expect("valid yaml")
    }

    #[test]
    fn keeps_locations_of_keys_and_values() {
        let root = parse_ok("a:\n  b: 1\n  c: \"x\"\n");
        let a = &root.as_map().unwrap()[0];
        assert_eq!((a.0.loc.line, a.0.loc.column), (1, 1));
        let inner = a.1.as_map().unwrap();
        assert_eq!((inner[1].0.loc.line, inner[1].0.loc.column), (3, 3));
        assert_eq!((inner[1].1.loc.line, inner[1].1.loc.column), (3, 6));
        assert_eq!(
            inner[1].1.value,
            Value::Scalar {
                text: "x".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn empty_values_are_null_and_empty_files_are_maps() {
        let root = parse_ok("a:\nb: ~\n");
        assert!(root.as_map().unwrap().iter().all(|(_, v)| v.is_null()));
        assert_eq!(parse_ok("").value, Value::Map(Vec::new()));
        assert_eq!(parse_ok("# only a comment\n").value, Value::Map(Vec::new()));
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_lines() {
        let (root, err) = parse(Path::new("t.yaml"), "a: 1\nb: 2\na: 3\n");
        assert_eq!(
            err.to_string(),
            "t.yaml:3:1: error: duplicate key `a` (first defined at line 1)\n1 error"
        );
        assert_eq!(
            root.unwrap().as_map().unwrap().len(),
            3,
            "the tree is kept for further checks"
        );
    }

    #[test]
    fn syntax_errors_name_the_position() {
        let (root, err) = parse(Path::new("t.yaml"), "a: [1, 2\nb: 3\n");
        assert!(root.is_none());
        assert_eq!(err.len(), 1);
        assert!(err.to_string().starts_with("t.yaml:"), "{err}");
        assert!(err.to_string().contains("invalid YAML"), "{err}");
    }
}
