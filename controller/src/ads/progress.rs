//! What each proxy stream has been sent, ACKed and NACKed, per resource type, and the
//! events a request produced. Shared by the State-of-the-World and Delta state machines;
//! read by metrics, `/debug/proxies` and the status writer.

use std::sync::Arc;

use serde::Serialize;

use super::types::ResourceType;

/// A rejected update: which version, and the client's reason (cut to
/// [`MAX_NACK_MESSAGE`] bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nack {
    pub version: String,
    pub message: String,
    /// The resources of the rejected response, by name; empty when it carried more than
    /// [`MAX_NACK_RESOURCES`] (it then concerns every resource of its type).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

/// Resource names kept per NACK, at most.
pub const MAX_NACK_RESOURCES: usize = 32;

/// The most of a NACK's reason kept (and quoted in status): a client may send any length,
/// and a status of several proxies' reasons must stay far below the apiserver's limits.
pub const MAX_NACK_MESSAGE: usize = 1024;

impl Nack {
    /// A NACK of `version`; a reason over [`MAX_NACK_MESSAGE`] bytes is cut at a character
    /// boundary and says how long it was.
    pub fn new(version: String, message: &str) -> Self {
        if message.len() <= MAX_NACK_MESSAGE {
            return Self {
                version,
                message: message.to_owned(),
                resources: Vec::new(),
            };
        }
        let note = format!(" … (cut, {} bytes in all)", message.len());
        let mut end = MAX_NACK_MESSAGE - note.len();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            version,
            message: format!("{}{note}", &message[..end]),
            resources: Vec::new(),
        }
    }

    /// This NACK as concerning `resources` (the rejected response's).
    pub fn about<'a>(mut self, resources: impl ExactSizeIterator<Item = &'a str>) -> Self {
        if resources.len() <= MAX_NACK_RESOURCES {
            self.resources = resources.map(str::to_owned).collect();
        }
        self
    }

    /// Whether it concerns resource `name` of its type.
    pub fn concerns(&self, name: &str) -> bool {
        self.resources.is_empty() || self.resources.iter().any(|r| r == name)
    }
}

/// Per type: the version last sent, the last one ACKed, and the last NACK.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeProgress {
    #[serde(serialize_with = "serialize_version")]
    pub sent_version: Option<Version>,
    #[serde(serialize_with = "serialize_version")]
    pub acked_version: Option<Version>,
    /// Boxed: most streams never see one, and a progress is kept per type per stream.
    pub last_nack: Option<Box<Nack>>,
    /// The resources the proxy holds or is being sent, by name, where it picks them (the
    /// virtual hosts and clusters of a Delta stream, which follow its RPCs); empty for the
    /// types that hold everything they are offered.
    #[serde(
        skip_serializing_if = "names_are_empty",
        serialize_with = "serialize_names"
    )]
    pub held: Names,
    /// Delta: the resources whose current version the proxy rejected, by name (a NACK
    /// stays in force for them while later responses of the type carry other resources).
    #[serde(
        skip_serializing_if = "names_are_empty",
        serialize_with = "serialize_names"
    )]
    pub rejected: Names,
}

/// Resource names, shared: a stream's progress is copied into the registry after every
/// push and ACK (its versions change), and the names rarely do, so the copy and the
/// comparison cost a reference count and a pointer comparison.
pub type Names = Arc<[Arc<str>]>;

impl TypeProgress {
    /// Whether `other` is a copy of this progress: the same shared versions and name lists
    /// and the same NACK. Cheaper than `==`, which compares the contents of two different
    /// handles; the registry calls it for every type of every stream after every push and
    /// ACK, and a copy costs only reference counts, so "not the same" may be wrong only in
    /// saying so too often.
    pub fn is_copy_of(&self, other: &TypeProgress) -> bool {
        fn same<T: ?Sized>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (a, b) => a.is_none() && b.is_none(),
            }
        }
        same(&self.sent_version, &other.sent_version)
            && same(&self.acked_version, &other.acked_version)
            && Arc::ptr_eq(&self.held, &other.held)
            && Arc::ptr_eq(&self.rejected, &other.rejected)
            && self.last_nack == other.last_nack
    }
}

/// A version of a type's set, shared with the snapshot it came from: a stream's progress
/// is compared with the registry's copy after every push and ACK, and two handles to one
/// version compare by pointer instead of byte by byte.
pub type Version = Arc<str>;

fn serialize_version<S: serde::Serializer>(
    version: &Option<Version>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    version.as_deref().serialize(serializer)
}

fn names_are_empty(names: &Names) -> bool {
    names.is_empty()
}

/// A list of strings. (Written by hand: serde's `rc` feature would do it, but a feature
/// changes every dependent crate's symbol hashes, and weft-proxy's link order lists them.)
fn serialize_names<S: serde::Serializer>(names: &Names, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(names.iter().map(|name| &**name))
}

/// What one client request meant, beyond any responses it caused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    Ack {
        ty: ResourceType,
        version: Version,
    },
    Nack {
        ty: ResourceType,
        nack: Nack,
    },
    /// A response nonce that is not the latest (SotW) or not outstanding (Delta): the
    /// request's ACK/NACK is ignored, as the xDS protocol requires.
    StaleNonce {
        ty: ResourceType,
        nonce: String,
    },
    /// A type weft does not serve; the request is ignored and the stream stays open.
    UnknownType {
        type_url: String,
    },
}

/// Numbers nonces per stream; they only need to be unique on the stream.
#[derive(Debug, Default)]
pub(crate) struct NonceSource(u64);

impl NonceSource {
    pub(crate) fn next(&mut self) -> (u64, String) {
        self.0 += 1;
        (self.0, self.0.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_shares_every_handle_and_equal_contents_in_other_handles_are_not_a_copy() {
        let names: Names = vec![Arc::from("a")].into();
        let progress = TypeProgress {
            sent_version: Some("v2".into()),
            acked_version: Some("v1".into()),
            last_nack: None,
            held: names.clone(),
            rejected: Names::default(),
        };
        assert!(progress.clone().is_copy_of(&progress));
        assert!(TypeProgress::default().is_copy_of(&TypeProgress::default()));

        let acked = TypeProgress {
            acked_version: progress.sent_version.clone(),
            ..progress.clone()
        };
        assert!(!acked.is_copy_of(&progress), "another version");
        let rebuilt = TypeProgress {
            held: vec![Arc::from("a")].into(),
            ..progress.clone()
        };
        assert_eq!(rebuilt, progress);
        assert!(
            !rebuilt.is_copy_of(&progress),
            "equal names in another list: copied again"
        );
        let nacked = TypeProgress {
            last_nack: Some(Box::new(Nack::new("v2".into(), "bad"))),
            ..progress.clone()
        };
        assert!(!nacked.is_copy_of(&progress));
    }

    #[test]
    fn held_and_rejected_names_serialize_as_lists_and_are_left_out_when_empty() {
        let progress = TypeProgress {
            held: vec![Arc::from("outbound/default/a:80")].into(),
            ..Default::default()
        };
        let json = serde_json::to_value(&progress).unwrap();
        assert_eq!(json["held"], serde_json::json!(["outbound/default/a:80"]));
        assert!(json.get("rejected").is_none(), "{json}");
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary_and_say_so() {
        let short = Nack::new("v1".into(), "bad regex");
        assert_eq!(short.message, "bad regex");
        let long = "é".repeat(50_000); // 100 000 bytes, two per character
        let cut = Nack::new("v2".into(), &long);
        assert!(
            cut.message.len() <= MAX_NACK_MESSAGE,
            "{}",
            cut.message.len()
        );
        assert!(
            cut.message.ends_with(" … (cut, 100000 bytes in all)"),
            "{}",
            &cut.message[cut.message.len() - 40..]
        );
        assert!(cut.message.starts_with("éé"));
    }
}
