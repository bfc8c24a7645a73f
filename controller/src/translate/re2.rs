//! Regular expressions as Envoy will run them (RE2): a pattern is accepted only if it parses,
//! means the same in RE2 as in Rust's `regex` (what weft-proxy runs), and stays under
//! Envoy's RE2 program size limit (100 by default, `re2.max_program_size.error_level`);
//! Envoy rejects a whole RouteConfiguration over one bad regex, so this is checked first.

use regex_syntax::ast::{
    self, AssertionKind, Ast, ClassSet, ClassSetItem, ClassUnicodeKind, Flag, FlagsItemKind,
    GroupKind, HexLiteralKind, LiteralKind, RepetitionKind, RepetitionRange,
};
use regex_syntax::hir::{self, Class, Hir, HirKind};

/// Envoy's default `re2.max_program_size.error_level`.
pub(super) const MAX_PROGRAM_SIZE: usize = 100;

/// RE2's largest counted repetition.
const MAX_REPEAT: u32 = 1000;

/// Unicode property names RE2 knows besides one- and two-letter general categories (RE2
/// does not know long category names such as `Letter`, nor `Script=...`).
const SCRIPTS: &[&str] = &[
    "Any",
    "Arabic",
    "Armenian",
    "Bengali",
    "Common",
    "Cyrillic",
    "Devanagari",
    "Georgian",
    "Greek",
    "Gujarati",
    "Han",
    "Hangul",
    "Hebrew",
    "Hiragana",
    "Inherited",
    "Kannada",
    "Katakana",
    "Khmer",
    "Lao",
    "Latin",
    "Malayalam",
    "Myanmar",
    "Tamil",
    "Telugu",
    "Thai",
    "Tibetan",
];

/// Checks that `pattern` is a valid RE2 expression with the same meaning in Rust's `regex`.
pub(super) fn check(pattern: &str) -> Result<(), String> {
    let ast = ast::parse::Parser::new()
        .parse(pattern)
        .map_err(|e| e.kind().to_string())?;
    walk(&ast)?;
    hir::translate::Translator::new()
        .translate(pattern, &ast)
        .map_err(|e| e.kind().to_string())?;
    Ok(())
}

/// Checks `pattern` and that its estimated RE2 program size is within Envoy's limit.
pub(super) fn check_with_size(pattern: &str) -> Result<(), String> {
    check(pattern)?;
    let size = program_size(pattern);
    if size > MAX_PROGRAM_SIZE {
        return Err(format!(
            "too complex for Envoy's RE2 (estimated program size {size}, limit {MAX_PROGRAM_SIZE}); \
             simplify it"
        ));
    }
    Ok(())
}

fn unsupported(what: &str) -> Result<(), String> {
    Err(format!("{what} is not supported by RE2"))
}

fn walk(ast: &Ast) -> Result<(), String> {
    match ast {
        Ast::Empty(_) | Ast::Dot(_) | Ast::ClassPerl(_) => Ok(()),
        Ast::Flags(set) => flags(&set.flags),
        Ast::Literal(literal) => literal_ok(literal),
        Ast::Assertion(assertion) => match assertion.kind {
            AssertionKind::StartLine
            | AssertionKind::EndLine
            | AssertionKind::StartText
            | AssertionKind::EndText
            | AssertionKind::WordBoundary
            | AssertionKind::NotWordBoundary => Ok(()),
            _ => unsupported("a special word boundary (\\<, \\>, \\b{...})"),
        },
        Ast::ClassUnicode(class) => unicode_class(class),
        Ast::ClassBracketed(class) => class_set(&class.kind),
        Ast::Repetition(repetition) => {
            if let RepetitionKind::Range(range) = &repetition.op.kind {
                let (RepetitionRange::Exactly(n)
                | RepetitionRange::AtLeast(n)
                | RepetitionRange::Bounded(_, n)) = *range;
                if n > MAX_REPEAT {
                    return Err(format!(
                        "a repetition count above {MAX_REPEAT} is not supported by RE2"
                    ));
                }
            }
            if matches!(*repetition.ast, Ast::Repetition(_)) {
                return unsupported("a repetition of a repetition (such as a{2}{3})");
            }
            walk(&repetition.ast)
        }
        Ast::Group(group) => {
            if let GroupKind::NonCapturing(set) = &group.kind {
                flags(set)?;
            }
            walk(&group.ast)
        }
        Ast::Alternation(alternation) => alternation.asts.iter().try_for_each(walk),
        Ast::Concat(concat) => concat.asts.iter().try_for_each(walk),
    }
}

fn flags(set: &ast::Flags) -> Result<(), String> {
    for item in &set.items {
        if let FlagsItemKind::Flag(flag) = &item.kind {
            let name = match flag {
                Flag::CaseInsensitive
                | Flag::MultiLine
                | Flag::DotMatchesNewLine
                | Flag::SwapGreed => {
                    continue;
                }
                Flag::Unicode => 'u',
                Flag::CRLF => 'R',
                Flag::IgnoreWhitespace => 'x',
            };
            return Err(format!(
                "flag {name} is not supported by RE2 (only i, m, s and U)"
            ));
        }
    }
    Ok(())
}

fn literal_ok(literal: &ast::Literal) -> Result<(), String> {
    match literal.kind {
        LiteralKind::HexFixed(HexLiteralKind::X) | LiteralKind::HexBrace(HexLiteralKind::X) => {
            Ok(())
        }
        LiteralKind::HexFixed(_) | LiteralKind::HexBrace(_) => {
            unsupported("a \\u or \\U escape (use \\x{...})")
        }
        _ => Ok(()),
    }
}

fn unicode_class(class: &ast::ClassUnicode) -> Result<(), String> {
    match &class.kind {
        ClassUnicodeKind::OneLetter(_) => Ok(()),
        ClassUnicodeKind::Named(name)
            if SCRIPTS.contains(&name.as_str())
                || (name.len() == 2 && name.starts_with(|c: char| c.is_ascii_uppercase())) =>
        {
            Ok(())
        }
        ClassUnicodeKind::Named(name) => Err(format!(
            "Unicode class \\p{{{name}}} is not supported by RE2 (use a one- or two-letter \
             category such as \\p{{L}} or \\p{{Lu}}, or a script such as \\p{{Greek}})"
        )),
        ClassUnicodeKind::NamedValue { .. } => {
            unsupported("a Unicode class with a value (\\p{name=value})")
        }
    }
}

fn class_set(set: &ClassSet) -> Result<(), String> {
    match set {
        ClassSet::BinaryOp(_) => unsupported("a class operation (&&, --, ~~)"),
        ClassSet::Item(item) => class_item(item),
    }
}

fn class_item(item: &ClassSetItem) -> Result<(), String> {
    match item {
        ClassSetItem::Empty(_) | ClassSetItem::Ascii(_) | ClassSetItem::Perl(_) => Ok(()),
        ClassSetItem::Literal(literal) => literal_ok(literal),
        ClassSetItem::Range(range) => {
            literal_ok(&range.start).and_then(|()| literal_ok(&range.end))
        }
        ClassSetItem::Unicode(class) => unicode_class(class),
        ClassSetItem::Bracketed(_) => unsupported("a nested class ([a[bc]])"),
        ClassSetItem::Union(union) => union.items.iter().try_for_each(class_item),
    }
}

/// An estimate of RE2's program size for `pattern` (its instruction count), modelled on
/// RE2's compiler and calibrated against Envoy 1.40: 4 for the unanchored prefix and the
/// match, one per literal byte and per class range (case pairs count once), one per
/// `*`/`+`/`?`, two per capture group, one per alternative, counted repetitions expanded.
/// It errs on the high side.
pub(super) fn program_size(pattern: &str) -> usize {
    let Ok(ast) = ast::parse::Parser::new().parse(pattern) else {
        return usize::MAX;
    };
    // Byte-oriented (as RE2 compiles); Unicode classes need the Unicode translation.
    let mut bytes = hir::translate::TranslatorBuilder::new()
        .unicode(false)
        .utf8(false)
        .build();
    let hir = bytes
        .translate(pattern, &ast)
        .or_else(|_| hir::translate::Translator::new().translate(pattern, &ast));
    hir.map_or(usize::MAX, |hir| 4 + size(&hir))
}

fn size(hir: &Hir) -> usize {
    match hir.kind() {
        HirKind::Empty => 0,
        HirKind::Literal(literal) => literal.0.len(),
        HirKind::Class(Class::Bytes(class)) => ranges(
            class
                .ranges()
                .iter()
                .map(|r| (u32::from(r.start()), u32::from(r.end()))),
        ),
        HirKind::Class(Class::Unicode(class)) => ranges(
            class
                .ranges()
                .iter()
                .map(|r| (u32::from(r.start()), u32::from(r.end()))),
        ),
        HirKind::Look(_) => 1,
        HirKind::Repetition(repetition) => {
            let sub = size(&repetition.sub);
            let min = repetition.min as usize;
            match repetition.max {
                Some(max) => min * sub + (max as usize).saturating_sub(min) * (sub + 1),
                None => min.max(1) * sub + 1,
            }
        }
        HirKind::Capture(capture) => size(&capture.sub) + 2,
        HirKind::Concat(subs) => subs.iter().map(size).sum(),
        HirKind::Alternation(subs) => subs.iter().map(size).sum::<usize>() + subs.len() - 1,
    }
}

/// ASCII ranges count one each (an upper-case range whose lower-case twin is present counts
/// as part of it); anything beyond ASCII adds 4.
fn ranges(ranges: impl Iterator<Item = (u32, u32)>) -> usize {
    let ranges: Vec<(u32, u32)> = ranges.collect();
    let ascii = ranges.iter().filter(|(start, _)| *start < 0x80);
    let is_twin = |(start, end): &&(u32, u32)| {
        (0x41..=0x5a).contains(start)
            && *end <= 0x5a
            && ranges.contains(&(start + 0x20, end + 0x20))
    };
    let count = ascii.filter(|r| !is_twin(r)).count();
    let wide = ranges.iter().any(|(_, end)| *end >= 0x80);
    count + if wide { 4 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_and_re2_syntax_in_common_is_accepted() {
        for ok in [
            "/[^/]+/SayHello",
            "helloworld\\..*",
            "(?i)say(hello|hi)",
            "[[:alpha:]]+",
            "\\pL\\p{Lu}\\p{Greek}",
            "\\P{Greek}",
            "(?P<name>a)",
            "(?s-m:a)",
            "a{2,5}?",
            "\\x{41}\\x41",
            "^\\bfoo\\B$",
            "[]a-]",
            "\\#\\&\\~",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn what_re2_lacks_or_reads_differently_is_rejected() {
        for (bad, why) in [
            ("(?=x)", "look-around"),
            ("(a)\\1", "backreference"),
            ("(?x)a b", "flag x"),
            ("(?u)a", "flag u"),
            ("[a&&b]", "class operation"),
            ("[a--b]", "class operation"),
            ("[[a-z]]", "nested class"),
            ("\\<a", "special word boundary"),
            ("\\b{start}a", "special word boundary"),
            ("\\u0041", "\\u or \\U"),
            ("\\p{Letter}", "\\p{Letter}"),
            ("\\p{Script=Greek}", "with a value"),
            ("a{1001}", "above 1000"),
            ("a{2}{3}", "repetition of a repetition"),
            ("(", "unclosed group"),
            ("a**", ""),
        ] {
            let err = check(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    /// Program sizes Envoy 1.40 reported (`re2.max_program_size.warn_level: 0`).
    const MEASURED: &[(&str, usize)] = &[
        ("a", 5),
        ("abc", 7),
        ("/helloworld\\.Greeter/SayHello", 32),
        ("/[^/]+/SayHello", 17),
        ("[^/]", 6),
        (".", 6),
        (".*", 6),
        ("[a-z]+", 6),
        ("[a-zA-Z0-9_]+", 8),
        ("foo|bar|baz", 11),
        ("(a)", 7),
        ("[a-z]{10}", 14),
        ("[a-z]{2,5}", 12),
        ("\\d+", 6),
        ("\\w+", 8),
        ("(?i)sayhello", 12),
        ("/(?:helloworld\\..*)/(?:Say.*)", 24),
        ("\\bfoo\\b", 9),
        ("x?", 6),
        ("(?:ab)+", 7),
        ("[0-9]{1,3}(\\.[0-9]{1,3}){3}", 33),
        ("/[^/]+/[^/]+", 12),
        ("[a-z]{1000}x(?:foo|bar|baz){100}", 1705),
    ];

    #[test]
    fn program_size_errs_high_but_not_by_much() {
        for (pattern, actual) in MEASURED {
            let estimate = program_size(pattern);
            assert!(
                estimate >= *actual,
                "{pattern}: estimated {estimate} < Envoy's {actual}"
            );
            assert!(
                estimate <= actual * 3 / 2 + 4,
                "{pattern}: estimated {estimate}, Envoy's {actual}"
            );
        }
    }

    #[test]
    fn too_large_programs_are_rejected() {
        assert_eq!(check_with_size("[a-z]{50}x"), Ok(()));
        let err = check_with_size("[a-z]{50}x(?:foo|bar|baz){10}").unwrap_err();
        assert!(err.contains("too complex for Envoy's RE2"), "{err}");
    }
}
