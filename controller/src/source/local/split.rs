//! Splits a multi-document YAML file into its documents, each with the line it starts on, so
//! every document is parsed on its own and its error lines are lines of the file.
//!
//! YAML forbids `---` and `...` at the start of a line inside a document's content, so a
//! line-based split is exact. A `---` line may carry content (`--- {a: 1}`): the marker is
//! replaced by spaces, which keeps columns. `%` directive lines are blanked the same way.

/// One document's text. Line `n` of `text` (1-based) is line `n + line_offset` of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DocumentText {
    pub line_offset: usize,
    pub text: String,
    /// The file line where the document's first content (not blank, not a comment) is.
    pub first_content_line: usize,
}

/// The non-empty documents of `text`, in order. A document with only blank lines and
/// comments is empty.
pub(super) fn split_documents(text: &str) -> Vec<DocumentText> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut documents = Vec::new();
    let mut current = Vec::new();
    let mut start = 0;
    for (index, line) in text.split('\n').enumerate() {
        if is_marker(line, "---") {
            finish(&mut documents, start, std::mem::take(&mut current));
            start = index;
            current.push(format!("   {}", &line[3..]));
        } else if is_marker(line, "...") {
            finish(&mut documents, start, std::mem::take(&mut current));
            start = index + 1;
        } else if line.starts_with('%') {
            current.push(String::new());
        } else {
            current.push(line.to_owned());
        }
    }
    finish(&mut documents, start, current);
    documents
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

fn finish(documents: &mut Vec<DocumentText>, start: usize, lines: Vec<String>) {
    let first_content = lines.iter().position(|line| {
        let trimmed = line.trim();
        !trimmed.is_empty() && !trimmed.starts_with('#')
    });
    if let Some(first) = first_content {
        documents.push(DocumentText {
            line_offset: start,
            text: lines.join("\n"),
            first_content_line: start + first + 1,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_markers_and_keeps_file_lines() {
        let text = "# header\n---\na: 1\n---\n\n# only a comment\n---  \nb: 2\n...\nc: 3\n";
        let docs = split_documents(text);
        let summary: Vec<(usize, usize, &str)> = docs
            .iter()
            .map(|d| (d.line_offset, d.first_content_line, d.text.trim()))
            .collect();
        assert_eq!(summary, [(1, 3, "a: 1"), (6, 8, "b: 2"), (9, 10, "c: 3")]);
    }

    #[test]
    fn content_on_the_marker_line_keeps_its_column() {
        let docs = split_documents("--- {a: 1}\n");
        assert_eq!(docs[0].text, "    {a: 1}\n");
        assert_eq!(docs[0].first_content_line, 1);
    }

    #[test]
    fn dashes_inside_content_are_not_markers() {
        let docs = split_documents("a: |\n  ---\n  x\nb: ----\n");
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn crlf_markers_split() {
        let docs = split_documents("a: 1\r\n---\r\nb: 2\r\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].first_content_line, 3);
    }
}
