//! The cleaned objects of one LIST page on their way to the archive writer.
//!
//! A page travels as one message: one channel send for its objects, one
//! buffer for all their JSON and one for all their names, and one timestamp
//! for their log lines. Sent object by object, the sends, the allocations
//! (an item path, its resource key, its JSON, its log entry) and the clock
//! reads cost about a tenth of a backup's CPU.

use std::ops::Range;

use crate::archive::ResourceKey;

/// Objects of one resource type, cleaned, in the order they were listed.
#[derive(Debug)]
pub struct Batch {
    key: ResourceKey,
    /// Namespaces and names, back to back.
    names: String,
    /// The objects' JSON, back to back.
    json: Vec<u8>,
    items: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    namespace: Option<Range<usize>>,
    name: Range<usize>,
    json: Range<usize>,
}

/// One object of a [`Batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchItem<'a> {
    /// Its namespace; `None` for cluster-scoped objects.
    pub namespace: Option<&'a str>,
    /// Its name.
    pub name: &'a str,
    /// Its cleaned JSON.
    pub json: &'a [u8],
}

impl Batch {
    /// An empty batch of `key` objects.
    pub fn new(key: ResourceKey) -> Self {
        Batch::with_capacity(key, 0, 0)
    }

    /// An empty batch with room for `items` objects of `json_bytes` in all,
    /// so that filling it copies nothing twice and holds no spare half.
    pub fn with_capacity(key: ResourceKey, items: usize, json_bytes: usize) -> Self {
        Batch {
            key,
            names: String::with_capacity(items * 32),
            json: Vec::with_capacity(json_bytes),
            items: Vec::with_capacity(items),
        }
    }

    /// The resource type of every object in the batch.
    pub fn key(&self) -> &ResourceKey {
        &self.key
    }

    /// Objects in the batch.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch holds no object.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Add an object; `write_json` appends its JSON to the buffer it is given.
    pub fn push(
        &mut self,
        namespace: Option<&str>,
        name: &str,
        write_json: impl FnOnce(&mut Vec<u8>),
    ) {
        let mut text = |s: &str| {
            let start = self.names.len();
            self.names.push_str(s);
            start..self.names.len()
        };
        let namespace = namespace.map(&mut text);
        let name = text(name);
        let start = self.json.len();
        write_json(&mut self.json);
        self.items.push(Entry {
            namespace,
            name,
            json: start..self.json.len(),
        });
    }

    /// The objects, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = BatchItem<'_>> {
        self.items.iter().map(|e| BatchItem {
            namespace: e.namespace.clone().map(|r| &self.names[r]),
            name: &self.names[e.name.clone()],
            json: &self.json[e.json.clone()],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_each_object_as_added() {
        let mut batch = Batch::new(ResourceKey::new("roles", "rbac.authorization.k8s.io"));
        assert!(batch.is_empty());
        batch.push(Some("shop"), "reader", |out| {
            out.extend_from_slice(b"{\"a\":1}")
        });
        batch.push(None, "system:controller:é", |out| {
            out.extend_from_slice(b"{}")
        });
        batch.push(Some(""), "empty-json", |_| {});
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.key().to_string(), "roles.rbac.authorization.k8s.io");
        let items: Vec<BatchItem<'_>> = batch.iter().collect();
        assert_eq!(
            items,
            [
                BatchItem {
                    namespace: Some("shop"),
                    name: "reader",
                    json: b"{\"a\":1}",
                },
                BatchItem {
                    namespace: None,
                    name: "system:controller:é",
                    json: b"{}",
                },
                BatchItem {
                    namespace: Some(""),
                    name: "empty-json",
                    json: b"",
                },
            ]
        );
    }
}
