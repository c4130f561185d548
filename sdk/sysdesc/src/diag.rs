//! Diagnostics: `FILE:LINE:COL: message`.

use crate::model::Pos;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// One error in a system description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as named by the caller.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
    /// What is wrong: the element and the rule.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at `line:col` of `file`.
    pub fn new(file: &str, line: u32, col: u32, message: String) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            line,
            col,
            message,
        }
    }
}

impl core::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Collects diagnostics, turning node and attribute ranges into positions.
pub(crate) struct Diags<'a, 'input> {
    file: &'a str,
    doc: &'a roxmltree::Document<'input>,
    list: Vec<Diagnostic>,
}

impl<'a, 'input> Diags<'a, 'input> {
    pub fn new(file: &'a str, doc: &'a roxmltree::Document<'input>) -> Self {
        Diags {
            file,
            doc,
            list: Vec::new(),
        }
    }

    pub fn pos_of(&self, node: roxmltree::Node) -> Pos {
        let p = self.doc.text_pos_at(node.range().start);
        Pos {
            line: p.row,
            col: p.col,
        }
    }

    /// The position of attribute `attr` of `node`, or of the node.
    pub fn pos_attr(&self, node: roxmltree::Node, attr: &str) -> Pos {
        match node.attributes().find(|a| a.name() == attr) {
            Some(a) => {
                let p = self.doc.text_pos_at(a.range_qname().start);
                Pos {
                    line: p.row,
                    col: p.col,
                }
            }
            None => self.pos_of(node),
        }
    }

    pub fn at(&mut self, pos: Pos, message: String) {
        self.list
            .push(Diagnostic::new(self.file, pos.line, pos.col, message));
    }

    pub fn into_vec(mut self) -> Vec<Diagnostic> {
        self.list.sort_by_key(|d| (d.line, d.col));
        self.list.dedup();
        self.list
    }
}
