//! The few ways a registration touches NetBox, each read-first: find,
//! create (a create that loses a race reads the winner's object), update
//! (only the fields that differ), upsert, remove, and the shared objects
//! remembered per client. Every write leaves a line in the registration's
//! list of changes.

use serde_json::{json, Map, Value};

use super::RegisterError;
use crate::netbox::client::{NetBox, NetBoxError, ObjectId};

/// The id of `v`, an object NetBox (or a dry run) answered. Without one
/// NetBox answered unexpectedly: an error naming `what`.
pub(super) fn id(v: Option<&Value>, what: &str) -> Result<ObjectId, RegisterError> {
    v.and_then(ObjectId::of)
        .ok_or_else(|| RegisterError::Failed(format!("NetBox answered {what} without an id")))
}

/// An object's id for a message: the id, or "unknown".
pub(super) fn shown_id(v: &Value) -> String {
    ObjectId::of(v).map_or_else(|| "unknown".into(), |i| i.to_string())
}

/// An object's `name` for a message ("" without one).
pub(super) fn name_of(v: &Value) -> &str {
    v.get("name").and_then(Value::as_str).unwrap_or("")
}

/// The oldest of `objects` (the lowest id; those without one last): where
/// NetBox keeps no uniqueness (MAC objects), the one concurrent
/// registrations agree to keep.
pub(super) fn oldest<'v>(objects: impl IntoIterator<Item = &'v Value>) -> Option<&'v Value> {
    objects
        .into_iter()
        .min_by_key(|m| m.get("id").and_then(Value::as_u64).unwrap_or(u64::MAX))
}

/// Whether `obj` (a MAC or IP address object) is assigned to the interface
/// `iface`. Checked on what a list by `interface_id` answers too: a filter
/// NetBox did not know would be ignored and list everything.
pub(super) fn is_on_interface(obj: &Value, iface: ObjectId) -> bool {
    obj.get("assigned_object_type").and_then(Value::as_str) == Some("dcim.interface")
        && obj.get("assigned_object_id").and_then(Value::as_u64) == Some(iface.wire())
}

/// Whether a create lost a race to an identical object: NetBox's validators
/// answer 400 ("already exists"), and when two requests pass validation at
/// once the database constraint answers 500 (IntegrityError).
pub(super) fn is_duplicate(e: &NetBoxError) -> bool {
    match e {
        NetBoxError::Rejected {
            status: 400,
            message,
        } => {
            message.contains("already exists")
                || message.contains("Duplicate")
                || message.contains("must make a unique set")
                || message.contains("must be unique")
        }
        NetBoxError::Rejected {
            status: 500,
            message,
        } => message.contains("duplicate key value violates unique constraint"),
        _ => false,
    }
}

/// `?key=value&...` with the values percent-encoded.
pub(super) fn query(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

/// A lookup thread's answer; a panic there is an error of this
/// registration, not of the worker.
pub(super) fn joined<T>(
    handle: std::thread::ScopedJoinHandle<'_, Result<T, RegisterError>>,
) -> Result<T, RegisterError> {
    handle
        .join()
        .unwrap_or_else(|_| Err(RegisterError::Failed("a NetBox lookup panicked".into())))
}

/// One chain of a registration's steps: the client, and what the chain
/// changed and noted.
pub(super) struct Ctx<'a> {
    pub nb: &'a NetBox,
    /// One line per object created or changed.
    pub changes: Vec<String>,
    /// What was left out and why.
    pub notes: Vec<String>,
    /// Shared objects taken from the client's memory rather than NetBox:
    /// if the registration fails, one of them may be stale.
    pub remembered: u32,
}

impl<'a> Ctx<'a> {
    pub fn new(nb: &'a NetBox) -> Ctx<'a> {
        Ctx {
            nb,
            changes: Vec::new(),
            notes: Vec::new(),
            remembered: 0,
        }
    }

    /// A context for a chain of steps run beside this one: same NetBox,
    /// its own lists of changes and notes, merged back by `merge`.
    pub fn branch(&self) -> Ctx<'a> {
        Ctx::new(self.nb)
    }

    /// Takes in what a branch changed and noted.
    pub fn merge(&mut self, branch: Ctx) {
        self.changes.extend(branch.changes);
        self.notes.extend(branch.notes);
        self.remembered += branch.remembered;
    }

    /// A shared object (tag, site, rack, manufacturer, device type, role,
    /// custom field): remembered, else found, else created from `create`
    /// (None: not created, and None is the answer). With
    /// `remember_absent`, "not there" is remembered too.
    pub fn shared(
        &mut self,
        endpoint: &str,
        filter: &[(&str, &str)],
        create: Option<Value>,
        remember_absent: bool,
        what: &str,
    ) -> Result<Option<Value>, RegisterError> {
        let key = format!("{endpoint}{}", query(filter));
        // Concurrent registrations wait for the one looking it up now.
        let _turn = self.nb.shared.turn(&key);
        match self.nb.shared.get(&key) {
            // "Not there" does not stop a create.
            Some(Value::Null) if create.is_some() => {}
            Some(v) => {
                self.remembered += 1;
                return Ok((!v.is_null()).then_some(v));
            }
            None => {}
        }
        let found = match create {
            Some(body) => Some(self.ensure(endpoint, filter, body, what, true)?),
            None => self.find(endpoint, filter)?,
        };
        match &found {
            // Planned objects of a dry run are not remembered: they are not
            // there.
            Some(v) if ObjectId::of(v) != Some(ObjectId::Planned) => {
                self.nb.shared.put(key, v.clone())
            }
            None if remember_absent => self.nb.shared.put(key, Value::Null),
            _ => {}
        }
        Ok(found)
    }

    /// The first object the filter finds.
    pub fn find(
        &self,
        endpoint: &str,
        filter: &[(&str, &str)],
    ) -> Result<Option<Value>, RegisterError> {
        let page = self.nb.get(&format!("/api/{endpoint}/{}", query(filter)))?;
        Ok(page
            .get("results")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .cloned())
    }

    /// Every object at `endpoint` assigned to the interface `iface`.
    pub fn on_interface(
        &self,
        endpoint: &str,
        iface: ObjectId,
    ) -> Result<Vec<Value>, RegisterError> {
        let all = self.nb.list(&format!(
            "/api/{endpoint}/{}",
            query(&[("interface_id", &iface.wire().to_string())])
        ))?;
        Ok(all
            .into_iter()
            .filter(|o| is_on_interface(o, iface))
            .collect())
    }

    /// The object `filter` finds (when it `may_exist`), else `body`
    /// created; a create that loses a race to an identical object
    /// (uniqueness error) reads the winner's.
    pub fn ensure(
        &mut self,
        endpoint: &str,
        filter: &[(&str, &str)],
        body: Value,
        what: &str,
        may_exist: bool,
    ) -> Result<Value, RegisterError> {
        if may_exist {
            if let Some(v) = self.find(endpoint, filter)? {
                return Ok(v);
            }
        }
        match self.nb.post(&format!("/api/{endpoint}/"), &body) {
            Ok(v) => {
                self.changes.push(format!("created {what}"));
                Ok(v)
            }
            Err(e) if is_duplicate(&e) => self.find(endpoint, filter)?.ok_or_else(|| e.into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes `obj`; one already gone (a concurrent registration removed
    /// it) is fine.
    pub fn remove(&mut self, endpoint: &str, obj: &Value) -> Result<(), RegisterError> {
        let path = format!("/api/{endpoint}/{}/", id(Some(obj), endpoint)?.wire());
        match self.nb.delete(&path) {
            Ok(()) | Err(NetBoxError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `have` brought to `want`; without one, `want` created (status
    /// active). A create that loses a race updates the winner, found by
    /// `filter`. The flag: whether this call created the object.
    pub fn upsert(
        &mut self,
        endpoint: &str,
        have: Option<Value>,
        filter: &[(&str, &str)],
        want: &Map<String, Value>,
        what: &str,
    ) -> Result<(Value, bool), RegisterError> {
        if let Some(have) = have {
            return Ok((self.update(endpoint, &have, want, what)?, false));
        }
        let mut body = want.clone();
        body.insert("status".into(), json!("active"));
        match self
            .nb
            .post(&format!("/api/{endpoint}/"), &Value::Object(body))
        {
            Ok(v) => {
                self.changes.push(format!("created {what}"));
                Ok((v, true))
            }
            Err(e) if is_duplicate(&e) => {
                let winner = self
                    .find(endpoint, filter)?
                    .ok_or_else(|| RegisterError::from(e))?;
                Ok((self.update(endpoint, &winner, want, what)?, false))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// PATCHes the fields of `want` that differ from `have`.
    pub fn update(
        &mut self,
        endpoint: &str,
        have: &Value,
        want: &Map<String, Value>,
        what: &str,
    ) -> Result<Value, RegisterError> {
        let id = id(Some(have), what)?;
        let diff = differences(have, want);
        if diff.is_empty() {
            return Ok(have.clone());
        }
        let fields: Vec<String> = diff
            .iter()
            .flat_map(|(k, v)| match (k.as_str(), v) {
                ("custom_fields", Value::Object(f)) => f.keys().cloned().collect(),
                _ => vec![k.clone()],
            })
            .collect();
        self.changes
            .push(format!("updated {what}: {}", fields.join(", ")));
        let patched = self.nb.patch(
            &format!("/api/{endpoint}/{}/", id.wire()),
            &Value::Object(diff.clone()),
        )?;
        if !self.nb.dry_run() {
            return Ok(patched);
        }
        // A dry run answers only what was sent: the object as it would be
        // is the one read, with the changes on top.
        let mut merged = have.clone();
        if let Value::Object(m) = &mut merged {
            for (k, v) in diff {
                m.insert(k, v);
            }
        }
        Ok(merged)
    }
}

/// The fields of `want` that `have` (an object as NetBox answers it)
/// does not hold yet, as a PATCH body.
fn differences(have: &Value, want: &Map<String, Value>) -> Map<String, Value> {
    let mut diff = Map::new();
    for (k, v) in want {
        // Custom fields: only those that differ are sent (NetBox merges
        // them into the object's others).
        if let (Value::Object(fields), "custom_fields") = (v, k.as_str()) {
            let changed: Map<String, Value> = fields
                .iter()
                .filter(|(f, val)| have.pointer(&format!("/custom_fields/{f}")) != Some(*val))
                .map(|(f, val)| (f.clone(), val.clone()))
                .collect();
            if !changed.is_empty() {
                diff.insert(k.clone(), Value::Object(changed));
            }
            continue;
        }
        let current = match v {
            // A number, or a nested object ({"id": 3, ...}) for a
            // foreign key.
            Value::Number(_) => match have.get(k) {
                Some(Value::Number(n)) => Value::Number(n.clone()),
                Some(h) => h.get("id").cloned().unwrap_or(Value::Null),
                None => Value::Null,
            },
            Value::Array(_) if k == "tags" => Value::from(
                have.get("tags")
                    .and_then(Value::as_array)
                    .map(|t| {
                        t.iter()
                            .filter_map(|t| t.get("id").cloned())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
            ),
            Value::String(_) if k == "face" || k == "status" => have
                .get(k)
                .and_then(|f| f.get("value").cloned().or_else(|| Some(f.clone())))
                .unwrap_or(Value::Null),
            _ => have.get(k).cloned().unwrap_or(Value::Null),
        };
        let same = match (v, &current) {
            (Value::Array(a), Value::Array(b)) if k == "tags" => a.iter().all(|t| b.contains(t)),
            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
            _ => *v == current,
        };
        if !same {
            // Tags are added to, never replaced: operators' tags stay.
            let v = if k == "tags" {
                let mut all = current.as_array().cloned().unwrap_or_default();
                for t in v.as_array().into_iter().flatten() {
                    if !all.contains(t) {
                        all.push(t.clone());
                    }
                }
                Value::from(all)
            } else {
                v.clone()
            };
            diff.insert(k.clone(), v);
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            super::query(&[("name", "us3 cab/10"), ("mac_address", "aa:bb")]),
            "?name=us3%20cab%2F10&mac_address=aa%3Abb"
        );
    }

    #[test]
    fn only_what_differs_is_sent_and_tags_are_added_to() {
        let have = json!({"id": 3, "name": "a", "rack": {"id": 5, "name": "r"},
                          "face": {"value": "front", "label": "Front"},
                          "tags": [{"id": 1, "name": "theirs"}],
                          "custom_fields": {"bmc_firmware": "1.0", "other": "x"}});
        let want = json!({"name": "a", "rack": 5, "face": "front", "tags": [2],
                          "custom_fields": {"bmc_firmware": "1.0"}});
        let diff = super::differences(&have, want.as_object().unwrap());
        assert_eq!(serde_json::Value::Object(diff), json!({"tags": [1, 2]}));
        let want = json!({"name": "b", "rack": 6, "tags": [1],
                          "custom_fields": {"bmc_firmware": "2.0"}});
        let diff = super::differences(&have, want.as_object().unwrap());
        assert_eq!(
            serde_json::Value::Object(diff),
            json!({"name": "b", "rack": 6, "custom_fields": {"bmc_firmware": "2.0"}})
        );
    }

    #[test]
    fn the_oldest_object_has_the_lowest_id() {
        let objects = [json!({"id": 9}), json!({"name": "no id"}), json!({"id": 4})];
        assert_eq!(super::oldest(&objects), Some(&json!({"id": 4})));
        assert_eq!(super::oldest(&Vec::new()), None);
    }
}
