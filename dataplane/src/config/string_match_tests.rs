//! Tests of regex compilation and string/header matcher conversion.

use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::v3::Int64Range;

use super::{header_matcher, string_matcher, whole_match_regex};
use crate::config::StringMatch;
use crate::config::test_protos::{regex, string_header};

#[test]
fn regexes_match_whole_inputs() {
    let re = whole_match_regex("a|ab").unwrap();
    assert!(re.is_match("ab"));
    assert!(re.is_match("a"));
    assert!(!re.is_match("abc"));
    assert!(!re.is_match("xab"));
    let re = whole_match_regex("/[^/]+/Check").unwrap();
    assert!(re.is_match("/pkg.Svc/Check"));
    assert!(!re.is_match("/pkg.Svc/CheckMore"));
    assert!(!re.is_match("/a/pkg.Svc/Check"));
}

#[test]
fn a_pattern_cannot_escape_its_group() {
    // Anchored naively this would be `^(?:a)|(b)$`, matching any input starting with `a`.
    let err = whole_match_regex("a)|(b").unwrap_err();
    assert!(err.contains("unopened group"), "{err}");
}

#[test]
fn re2_only_syntax_is_rejected_precisely() {
    assert_eq!(
        whole_match_regex(r"\Qa.b\E").unwrap_err(),
        r#"regular expression "\\Qa.b\\E" is not supported by weft-proxy: unrecognized escape sequence"#
    );
    let err = whole_match_regex("a(?=b)").unwrap_err();
    assert!(
        err.ends_with("look-around, including look-ahead and look-behind, is not supported"),
        "{err}"
    );
}

#[test]
fn huge_regexes_are_rejected() {
    let err = whole_match_regex("(?:a{1000}){1000}").unwrap_err();
    assert!(err.contains("size limit"), "{err}");
}

fn matcher(pattern: MatchPattern, ignore_case: bool) -> StringMatch {
    string_matcher(&StringMatcher {
        ignore_case,
        match_pattern: Some(pattern),
    })
    .unwrap()
}

#[test]
fn string_matchers_convert_and_match() {
    let cases: [(MatchPattern, &str, &str); 5] = [
        (MatchPattern::Exact("abc".into()), "abc", "abcd"),
        (MatchPattern::Prefix("ab".into()), "abz", "zab"),
        (MatchPattern::Suffix("yz".into()), "xyz", "yzx"),
        (MatchPattern::Contains("m".into()), "amb", "ab"),
        (MatchPattern::SafeRegex(regex("a.c")), "abc", "abcd"),
    ];
    for (pattern, yes, no) in cases {
        let m = matcher(pattern.clone(), false);
        assert!(m.matches(yes), "{pattern:?} {yes}");
        assert!(!m.matches(no), "{pattern:?} {no}");
    }
}

#[test]
fn ignore_case_literals_become_regexes() {
    let cases: [(MatchPattern, &str, &str); 4] = [
        (MatchPattern::Exact("a.C".into()), "A.c", "abc"),
        (MatchPattern::Prefix("AB".into()), "abz", "zab"),
        (MatchPattern::Suffix("Yz".into()), "xyZ", "yzx"),
        (MatchPattern::Contains("M".into()), "amb", "ab"),
    ];
    for (pattern, yes, no) in cases {
        let m = matcher(pattern.clone(), true);
        assert!(matches!(m, StringMatch::Regex(_)));
        assert!(m.matches(yes), "{pattern:?} {yes}");
        assert!(!m.matches(no), "{pattern:?} {no}");
    }
}

#[test]
fn string_matcher_errors_name_the_field() {
    let missing = StringMatcher {
        ignore_case: false,
        match_pattern: None,
    };
    assert_eq!(string_matcher(&missing).unwrap_err().field, "match_pattern");
    let bad = StringMatcher {
        ignore_case: false,
        match_pattern: Some(MatchPattern::SafeRegex(regex("("))),
    };
    assert_eq!(string_matcher(&bad).unwrap_err().field, "safe_regex.regex");
}

fn header(specifier: Option<HeaderMatchSpecifier>, invert: bool) -> HeaderMatcher {
    HeaderMatcher {
        name: "X-Canary".into(),
        invert_match: invert,
        header_match_specifier: specifier,
        ..Default::default()
    }
}

#[test]
fn header_matchers_convert() {
    let m = header_matcher(&string_header("X-Canary", MatchPattern::Exact("on".into()))).unwrap();
    assert_eq!(m.name, "x-canary");
    assert!(matches!(&m.value, StringMatch::Exact(v) if v == "on"));
    assert!(!m.invert);

    let present = header_matcher(&header(
        Some(HeaderMatchSpecifier::PresentMatch(true)),
        false,
    ));
    let present = present.unwrap();
    assert!(matches!(present.value, StringMatch::Present) && !present.invert);
    // "Must be absent" is "present", inverted; inverting that again means present.
    let absent = header_matcher(&header(
        Some(HeaderMatchSpecifier::PresentMatch(false)),
        false,
    ));
    assert!(absent.unwrap().invert);
    let both = header_matcher(&header(
        Some(HeaderMatchSpecifier::PresentMatch(false)),
        true,
    ));
    assert!(!both.unwrap().invert);
    // No specifier: present.
    let bare = header_matcher(&header(None, true)).unwrap();
    assert!(matches!(bare.value, StringMatch::Present) && bare.invert);
}

#[test]
#[allow(deprecated)]
fn deprecated_header_fields_are_read() {
    let cases = [
        (HeaderMatchSpecifier::ExactMatch("v".into()), "v", "vv"),
        (HeaderMatchSpecifier::PrefixMatch("v".into()), "vx", "xv"),
        (HeaderMatchSpecifier::SuffixMatch("v".into()), "xv", "vx"),
        (HeaderMatchSpecifier::ContainsMatch("v".into()), "xvx", "x"),
        (
            HeaderMatchSpecifier::SafeRegexMatch(regex("v+")),
            "vvv",
            "vx",
        ),
    ];
    for (specifier, yes, no) in cases {
        let m = header_matcher(&header(Some(specifier.clone()), false)).unwrap();
        assert!(m.value.matches(yes), "{specifier:?}");
        assert!(!m.value.matches(no), "{specifier:?}");
    }
    let bad = header(
        Some(HeaderMatchSpecifier::SafeRegexMatch(regex("("))),
        false,
    );
    assert_eq!(
        header_matcher(&bad).unwrap_err().field,
        "safe_regex_match.regex"
    );
}

#[test]
fn header_matcher_errors_name_the_field() {
    let range = header(
        Some(HeaderMatchSpecifier::RangeMatch(Int64Range::default())),
        false,
    );
    assert_eq!(header_matcher(&range).unwrap_err().field, "range_match");
    let mut unnamed = header(None, false);
    unnamed.name.clear();
    assert_eq!(header_matcher(&unnamed).unwrap_err().field, "name");
    let mut empty_as_missing = header(None, false);
    empty_as_missing.treat_missing_header_as_empty = true;
    assert_eq!(
        header_matcher(&empty_as_missing).unwrap_err().field,
        "treat_missing_header_as_empty"
    );
    let bad = string_header("x", MatchPattern::SafeRegex(regex(r"\Q")));
    assert_eq!(
        header_matcher(&bad).unwrap_err().field,
        "string_match.safe_regex.regex"
    );
}
