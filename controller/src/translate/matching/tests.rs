use super::*;

fn method(match_type: MatchType, service: Option<&str>, name: Option<&str>) -> MethodMatch {
    MethodMatch {
        match_type,
        service: service.map(str::to_owned),
        method: name.map(str::to_owned),
    }
}

fn exact(service: Option<&str>, name: Option<&str>) -> PathMatch {
    path_match(Some(&method(MatchType::Exact, service, name)))
}

fn regex_of(path_match: PathMatch) -> regex::Regex {
    match path_match {
        PathMatch::Regex(pattern) => regex::Regex::new(&format!("^(?:{pattern})$")).unwrap(),
        other => panic!("not a regex: {other:?}"),
    }
}

#[test]
fn exact_method_matches() {
    assert_eq!(path_match(None), PathMatch::Any);
    assert_eq!(
        exact(Some("helloworld.Greeter"), Some("SayHello")),
        PathMatch::Exact("/helloworld.Greeter/SayHello".into())
    );
    assert_eq!(
        exact(Some("helloworld.Greeter"), None),
        PathMatch::Prefix("/helloworld.Greeter/".into())
    );
    let by_method = exact(None, Some("SayHello"));
    assert_eq!(by_method, PathMatch::Regex("/[^/]+/SayHello".into()));
    let re = regex_of(by_method);
    assert!(re.is_match("/helloworld.Greeter/SayHello"));
    assert!(!re.is_match("/helloworld.Greeter/SayHelloAgain"));
    assert!(!re.is_match("/SayHello"));
}

#[test]
fn regular_expression_method_matches() {
    let both = path_match(Some(&method(
        MatchType::RegularExpression,
        Some("helloworld\\..*|grpc\\.health\\.v1\\.Health"),
        Some("Say.*"),
    )));
    assert_eq!(
        both,
        PathMatch::Regex("/(?:helloworld\\..*|grpc\\.health\\.v1\\.Health)/(?:Say.*)".into())
    );
    let re = regex_of(both);
    assert!(re.is_match("/helloworld.Greeter/SayHi"));
    assert!(re.is_match("/grpc.health.v1.Health/SayHi"));
    assert!(!re.is_match("/grpc.health.v1.Health/Check"));
    let service_only = path_match(Some(&method(
        MatchType::RegularExpression,
        Some("a|b"),
        None,
    )));
    assert_eq!(service_only, PathMatch::Regex("/(?:a|b)/[^/]+".into()));
    let method_only = path_match(Some(&method(
        MatchType::RegularExpression,
        None,
        Some("Get.*"),
    )));
    let re = regex_of(method_only);
    assert!(re.is_match("/x.Y/GetThing"));
    assert!(!re.is_match("/x.Y/PutThing"));
}

#[test]
fn route_match_uses_the_path_and_headers() {
    let rpc = RouteMatch {
        method: Some(method(MatchType::Exact, Some("a.B"), Some("C"))),
        headers: vec![
            HeaderMatch {
                match_type: MatchType::Exact,
                name: "X-Canary".into(),
                value: "true".into(),
            },
            HeaderMatch {
                match_type: MatchType::RegularExpression,
                name: "x-user".into(),
                value: "(alice|bob)".into(),
            },
        ],
    };
    let m = route_match(Some(&rpc));
    assert_eq!(m.path_specifier, Some(PathSpecifier::Path("/a.B/C".into())));
    assert_eq!(m.headers.len(), 2);
    assert_eq!(m.headers[0].name, "x-canary");
    assert_eq!(
        m.headers[0].header_match_specifier,
        Some(HeaderMatchSpecifier::StringMatch(string_matcher(
            MatchPattern::Exact("true".into())
        )))
    );
    assert_eq!(
        m.headers[1].header_match_specifier,
        Some(HeaderMatchSpecifier::StringMatch(string_matcher(
            MatchPattern::SafeRegex(regex("(alice|bob)"))
        )))
    );
    let all = route_match(None);
    assert_eq!(all.path_specifier, Some(PathSpecifier::Prefix("/".into())));
    assert!(all.headers.is_empty());
}

#[test]
fn narrowing_puts_the_method_on_path() {
    let by = |m: MethodMatch| {
        narrowing_matchers(&RouteMatch {
            method: Some(m),
            headers: vec![],
        })
        .into_iter()
        .map(|h| (h.name, h.header_match_specifier))
        .collect::<Vec<_>>()
    };
    let path = |p| {
        vec![(
            ":path".to_string(),
            Some(HeaderMatchSpecifier::StringMatch(string_matcher(p))),
        )]
    };
    assert_eq!(
        by(method(MatchType::Exact, Some("a.B"), Some("C"))),
        path(MatchPattern::Exact("/a.B/C".into()))
    );
    assert_eq!(
        by(method(MatchType::Exact, Some("a.B"), None)),
        path(MatchPattern::Prefix("/a.B/".into()))
    );
    assert_eq!(
        by(method(MatchType::Exact, None, Some("C"))),
        path(MatchPattern::SafeRegex(regex("/[^/]+/C")))
    );
    let headers_only = RouteMatch {
        method: None,
        headers: vec![HeaderMatch {
            match_type: MatchType::Exact,
            name: "a".into(),
            value: "b".into(),
        }],
    };
    let matchers = narrowing_matchers(&headers_only);
    assert_eq!(matchers.len(), 1);
    assert_eq!(matchers[0].name, "a");
}

fn rpc(method: Option<MethodMatch>, headers: &[(&str, MatchType, &str)]) -> RouteMatch {
    RouteMatch {
        method,
        headers: headers
            .iter()
            .map(|(name, match_type, value)| HeaderMatch {
                match_type: *match_type,
                name: (*name).to_owned(),
                value: (*value).to_owned(),
            })
            .collect(),
    }
}

#[test]
fn matches_overlap_unless_an_exact_name_or_header_value_differs() {
    let say = rpc(
        Some(method(MatchType::Exact, Some("g.Greeter"), Some("Say"))),
        &[],
    );
    let wave = rpc(
        Some(method(MatchType::Exact, Some("g.Greeter"), Some("Wave"))),
        &[],
    );
    let other = rpc(Some(method(MatchType::Exact, Some("g.Other"), None)), &[]);
    let greeter = rpc(Some(method(MatchType::Exact, Some("g.Greeter"), None)), &[]);
    let any_say = rpc(
        Some(method(MatchType::RegularExpression, None, Some("S.*"))),
        &[],
    );
    assert!(!can_overlap(Some(&say), Some(&wave)));
    assert!(!can_overlap(Some(&say), Some(&other)));
    assert!(
        can_overlap(Some(&say), Some(&greeter)),
        "a method of the service"
    );
    assert!(
        can_overlap(Some(&wave), Some(&any_say)),
        "regexes are assumed to overlap"
    );
    assert!(can_overlap(None, Some(&say)) && can_overlap(Some(&say), None));

    let canary = rpc(None, &[("X-Canary", MatchType::Exact, "1")]);
    let stable = rpc(None, &[("x-canary", MatchType::Exact, "0")]);
    let canary_re = rpc(None, &[("x-canary", MatchType::RegularExpression, "0|1")]);
    let user = rpc(None, &[("x-user", MatchType::Exact, "0")]);
    assert!(
        !can_overlap(Some(&canary), Some(&stable)),
        "header names ignore case"
    );
    assert!(can_overlap(Some(&canary), Some(&canary_re)));
    assert!(can_overlap(Some(&canary), Some(&user)));
}
