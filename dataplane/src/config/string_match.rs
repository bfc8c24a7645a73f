//! Envoy string and header matchers → [`StringMatch`] / [`HeaderMatch`], and the one place
//! regular expressions are compiled.
//!
//! Envoy's regexes (RE2) must match the whole input, so every pattern is compiled anchored
//! as `^(?:pattern)$`, after checking the pattern alone (so a pattern such as `a)|(b` cannot
//! escape the group). Patterns Rust's `regex` cannot run (notably RE2's `\Q...\E` quoting)
//! are errors, never translated, so the config is NACKed rather than silently changed.

use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};
use regex::{Regex, RegexBuilder};

use super::convert::{FieldError, FieldResult, unsupported};
use super::{HeaderMatch, StringMatch};

/// The most memory one compiled regex may take (a bound on hostile or careless configs).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles `pattern` to match whole inputs only; the error is the problem text.
pub(super) fn whole_match_regex(pattern: &str) -> Result<Regex, String> {
    let build = |source: &str| {
        RegexBuilder::new(source)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
    };
    build(pattern)
        .and_then(|_| build(&format!("^(?:{pattern})$")))
        .map_err(|err| {
            format!(
                "regular expression {pattern:?} is not supported by weft-proxy: {}",
                regex_problem(&err)
            )
        })
}

/// The one line of a `regex` error that says what is wrong (its message is several lines:
/// the pattern, a caret line, then `error: ...`).
fn regex_problem(err: &regex::Error) -> String {
    let text = err.to_string();
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("error: "))
        .or_else(|| text.lines().next())
        .unwrap_or_default();
    line.trim().to_owned()
}

/// A RegexMatcher (field `regex` of it on error).
pub(super) fn regex_matcher(matcher: &RegexMatcher) -> FieldResult<Regex> {
    // `engine_type` only names RE2 (deprecated); there is nothing to configure.
    whole_match_regex(&matcher.regex).map_err(|problem| FieldError::new("regex", problem))
}

/// `literal` matched ignoring case, between `before` and `after` (anchors and the like), as
/// a regex: the model has no case flag, and this is rare enough that a regex costs nothing
/// that matters.
pub(super) fn caseless_literal(before: &str, literal: &str, after: &str) -> Result<Regex, String> {
    let pattern = format!("{before}(?i:{}){after}", regex::escape(literal));
    RegexBuilder::new(&pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|err| regex_problem(&err))
}

fn ignore_case(literal: &str, anchor_start: bool, anchor_end: bool) -> FieldResult<Regex> {
    let (before, after) = (
        if anchor_start { "^" } else { "" },
        if anchor_end { "$" } else { "" },
    );
    caseless_literal(before, literal, after)
        .map_err(|problem| FieldError::new("ignore_case", problem))
}

/// A StringMatcher; errors name the field inside it.
pub(super) fn string_matcher(matcher: &StringMatcher) -> FieldResult<StringMatch> {
    let case = matcher.ignore_case;
    Ok(match &matcher.match_pattern {
        None => return Err(FieldError::new("match_pattern", "missing")),
        Some(MatchPattern::Exact(v)) if case => StringMatch::Regex(ignore_case(v, true, true)?),
        Some(MatchPattern::Prefix(v)) if case => StringMatch::Regex(ignore_case(v, true, false)?),
        Some(MatchPattern::Suffix(v)) if case => StringMatch::Regex(ignore_case(v, false, true)?),
        Some(MatchPattern::Contains(v)) if case => {
            StringMatch::Regex(ignore_case(v, false, false)?)
        }
        Some(MatchPattern::Exact(v)) => StringMatch::Exact(v.clone()),
        Some(MatchPattern::Prefix(v)) => StringMatch::Prefix(v.clone()),
        Some(MatchPattern::Suffix(v)) => StringMatch::Suffix(v.clone()),
        Some(MatchPattern::Contains(v)) => StringMatch::Contains(v.clone()),
        Some(MatchPattern::SafeRegex(re)) => {
            StringMatch::Regex(regex_matcher(re).map_err(|e| e.within("safe_regex"))?)
        }
        Some(MatchPattern::Custom(_)) => return Err(unsupported("custom")),
    })
}

/// A HeaderMatcher. `present_match: false` (the header must be absent) is `Present`
/// inverted; Envoy's deprecated direct fields (`exact_match`, ...) are read too.
pub(super) fn header_matcher(matcher: &HeaderMatcher) -> FieldResult<HeaderMatch> {
    if matcher.name.is_empty() {
        return Err(FieldError::new("name", "missing"));
    }
    if matcher.treat_missing_header_as_empty {
        return Err(unsupported("treat_missing_header_as_empty"));
    }
    let mut invert = matcher.invert_match;
    #[allow(deprecated)]
    let value = match &matcher.header_match_specifier {
        // Envoy: no specifier means "present".
        None => StringMatch::Present,
        Some(HeaderMatchSpecifier::PresentMatch(present)) => {
            invert ^= !present;
            StringMatch::Present
        }
        Some(HeaderMatchSpecifier::StringMatch(m)) => {
            string_matcher(m).map_err(|e| e.within("string_match"))?
        }
        Some(HeaderMatchSpecifier::ExactMatch(v)) => StringMatch::Exact(v.clone()),
        Some(HeaderMatchSpecifier::PrefixMatch(v)) => StringMatch::Prefix(v.clone()),
        Some(HeaderMatchSpecifier::SuffixMatch(v)) => StringMatch::Suffix(v.clone()),
        Some(HeaderMatchSpecifier::ContainsMatch(v)) => StringMatch::Contains(v.clone()),
        Some(HeaderMatchSpecifier::SafeRegexMatch(re)) => {
            StringMatch::Regex(regex_matcher(re).map_err(|e| e.within("safe_regex_match"))?)
        }
        Some(HeaderMatchSpecifier::RangeMatch(_)) => return Err(unsupported("range_match")),
    };
    Ok(HeaderMatch {
        // HTTP/2 header names are lower case; Envoy compares them case-insensitively.
        name: matcher.name.to_ascii_lowercase(),
        value,
        invert,
    })
}

#[cfg(test)]
#[path = "string_match_tests.rs"]
mod tests;
