//! Grafana's objects and the rules that guard them; every method answers what Grafana answers.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::RecordedRequest;

/// A status and a JSON body.
pub(crate) type Reply = (u16, Value);
/// What a route answers: `Ok` for success, `Err` for Grafana's refusal.
pub(crate) type Answer = Result<Reply, Reply>;

pub(crate) fn msg(status: u16, text: &str) -> Reply {
    (status, json!({ "message": text }))
}

/// The body of Grafana's `errutil` errors.
pub(crate) fn errutil(status: u16, id: &str, text: &str) -> Reply {
    let body = json!({ "message": text, "messageId": id, "statusCode": status, "traceID": "" });
    (status, body)
}

/// A body carrying Grafana's `status` word (`version-mismatch`, `name-exists`, `not-found`, …).
fn with_status(status: u16, word: &str, text: &str) -> Reply {
    (status, json!({ "status": word, "message": text }))
}

fn bad_request_data() -> Reply {
    msg(400, "bad request data")
}

/// Typed access to a JSON body the way Go's decoder sees it: absent or `null` is the zero value,
/// a value of the wrong type is a bind error (400 `bad request data`).
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn of(body: &'a Value) -> Result<Self, Reply> {
        body.as_object().map(Fields).ok_or_else(bad_request_data)
    }
    fn get<T>(
        &self,
        key: &str,
        zero: T,
        cast: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<T, Reply> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(zero),
            Some(v) => cast(v).ok_or_else(bad_request_data),
        }
    }
    fn str(&self, key: &str) -> Result<&'a str, Reply> {
        self.get(key, "", Value::as_str)
    }
    fn bool(&self, key: &str) -> Result<bool, Reply> {
        self.get(key, false, Value::as_bool)
    }
    fn int(&self, key: &str) -> Result<i64, Reply> {
        self.get(key, 0, Value::as_i64)
    }
    fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, Reply> {
        self.get(key, None, |v| v.as_object().map(Some))
    }
}

/// Grafana's uid rule (`util.ValidateUID`): at most 40 of `a-zA-Z0-9-_`.
fn uid_problem(uid: &str) -> Option<&'static str> {
    let legal = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if uid.len() > 40 {
        Some("uid too long, max 40 characters")
    } else if !uid.bytes().all(legal) {
        Some("uid contains illegal characters")
    } else {
        None
    }
}

/// What Go's `url.Parse` refuses that a provisioning file could plausibly contain.
fn url_is_valid(url: &str) -> bool {
    let b = url.as_bytes();
    let hex = |i: usize| b.get(i).is_some_and(u8::is_ascii_hexdigit);
    !url.chars().any(|c| c.is_control() || c == ' ')
        && (0..b.len()).all(|i| b[i] != b'%' || (hex(i + 1) && hex(i + 2)))
}

fn slugify(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

/// Now, as RFC 3339 UTC (civil-from-days, so no date crate is needed).
fn now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64 + 719_468, secs % 86_400);
    let (era, doe) = (days.div_euclid(146_097), days.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let (day, month) = (
        doy - (153 * mp + 2) / 5 + 1,
        if mp < 10 { mp + 3 } else { mp - 9 },
    );
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Data source fields a PUT leaves unchanged when sent empty (Grafana's SQL update skips them).
const KEPT_WHEN_EMPTY: [&str; 6] = ["name", "type", "access", "url", "basicAuthUser", "uid"];
const LOGO: &str = "public/img/icn-datasource.svg";

#[derive(Clone, Debug)]
pub(crate) struct Datasource {
    /// Every field `GET /api/datasources/uid/{uid}` shows, except `secureJsonFields`.
    fields: Map<String, Value>,
    /// `secureJsonData`: stored, never shown.
    pub secure: BTreeMap<String, String>,
}

impl Datasource {
    fn str(&self, key: &str) -> &str {
        self.fields.get(key).and_then(Value::as_str).unwrap_or("")
    }
    pub(crate) fn uid(&self) -> &str {
        self.str("uid")
    }
    fn id(&self) -> i64 {
        self.fields.get("id").and_then(Value::as_i64).unwrap_or(0)
    }

    /// `GET /api/datasources/uid/{uid}`: `secureJsonFields` names the secrets, never their values.
    pub(crate) fn dto(&self) -> Value {
        let set = self.secure.iter().filter(|(_, v)| !v.is_empty());
        let secure: Map<String, Value> = set.map(|(k, _)| (k.clone(), json!(true))).collect();
        let mut dto = self.fields.clone();
        dto.insert("secureJsonFields".into(), Value::Object(secure));
        Value::Object(dto)
    }

    /// An item of `GET /api/datasources` (Grafana's list DTO has no version or secret fields).
    fn list_item(&self) -> Value {
        let keys = [
            "id",
            "uid",
            "orgId",
            "name",
            "type",
            "typeLogoUrl",
            "access",
            "url",
            "user",
        ];
        let more = ["database", "basicAuth", "isDefault", "jsonData", "readOnly"];
        let pick = keys
            .iter()
            .chain(&more)
            .filter_map(|k| Some((k.to_string(), self.fields.get(*k)?.clone())));
        let mut item: Map<String, Value> = pick.collect();
        item.insert("typeName".into(), json!(self.str("type")));
        Value::Object(item)
    }
}

/// A `POST /api/datasources` or `PUT …/uid/{uid}` body: its fields, secrets and `version`.
type DatasourceInput = (Map<String, Value>, BTreeMap<String, String>, i64);

fn parse_datasource(body: &Value) -> Result<DatasourceInput, Reply> {
    let f = Fields::of(body)?;
    let mut fields = Map::new();
    for key in [
        "name",
        "type",
        "access",
        "url",
        "user",
        "database",
        "basicAuthUser",
        "uid",
    ] {
        fields.insert(key.into(), json!(f.str(key)?));
    }
    for key in ["basicAuth", "withCredentials", "isDefault"] {
        fields.insert(key.into(), json!(f.bool(key)?));
    }
    let json_data = f.object("jsonData")?.cloned().unwrap_or_default();
    fields.insert("jsonData".into(), Value::Object(json_data));
    let mut secure = BTreeMap::new();
    for (key, value) in f.object("secureJsonData")?.into_iter().flatten() {
        let value = value.as_str().ok_or_else(bad_request_data)?;
        secure.insert(key.clone(), value.to_owned());
    }
    let text = |key: &str| fields.get(key).and_then(Value::as_str).unwrap_or("");
    // `binding:"Required"` on type and access.
    if text("type").is_empty() || text("access").is_empty() {
        return Err(bad_request_data());
    }
    if !url_is_valid(text("url")) {
        return Err(msg(400, "Validation error, invalid URL"));
    }
    Ok((fields, secure, f.int("version")?))
}

/// The checks Grafana's data source service and store add to the handler's.
fn check_datasource(fields: &Map<String, Value>) -> Result<(), Reply> {
    let text = |key: &str| fields.get(key).and_then(Value::as_str).unwrap_or("");
    if text("name").len() > 190 {
        return Err(errutil(
            400,
            "datasource.nameInvalid",
            "Invalid datasource name.",
        ));
    }
    if text("url").len() > 255 {
        return Err(errutil(
            400,
            "datasource.urlInvalid",
            "Invalid datasource url.",
        ));
    }
    if uid_problem(text("uid")).is_some() {
        return Err(errutil(
            400,
            "datasource.uidInvalid",
            "Invalid datasource UID.",
        ));
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub(crate) struct Folder {
    id: i64,
    uid: String,
    title: String,
    parent_uid: String,
    created: String,
}

impl Folder {
    fn url(&self) -> String {
        format!("/dashboards/f/{}/{}", self.uid, slugify(&self.title))
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Dashboard {
    id: i64,
    uid: String,
    title: String,
    folder_uid: String,
    version: i64,
    model: Value,
    provisioned: bool,
    created: String,
    updated: String,
}

impl Dashboard {
    fn url(&self) -> String {
        format!("/d/{}/{}", self.uid, slugify(&self.title))
    }
}

/// Everything the double holds, behind one lock so uniqueness checks and writes are atomic.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub datasources: Vec<Datasource>,
    pub folders: Vec<Folder>,
    pub dashboards: Vec<Dashboard>,
    pub health: HashMap<String, (bool, String)>,
    pub fail_next: Option<(u32, u16)>,
    pub fail_on: Option<TargetedFault>,
    pub requests: Vec<RecordedRequest>,
    pub health_unavailable: u32,
    last_id: i64,
    uid_seq: u64,
}

/// A failure injected for requests of one method under one path prefix.
#[derive(Clone, Debug)]
pub(crate) struct TargetedFault {
    pub method: String,
    pub path_prefix: String,
    pub left: u32,
    pub status: u16,
}

impl Store {
    /// The status of an injected failure for this request, if one is pending: a targeted one
    /// that matches first, then one for any request.
    pub(crate) fn take_fault(&mut self, method: &str, path: &str) -> Option<u16> {
        if let Some(rule) = self.fail_on.as_mut()
            && rule.method == method
            && path.starts_with(&rule.path_prefix)
        {
            let status = rule.status;
            rule.left -= 1;
            if rule.left == 0 {
                self.fail_on = None;
            }
            return Some(status);
        }
        let (left, status) = self.fail_next?;
        self.fail_next = (left > 1).then_some((left - 1, status));
        Some(status)
    }

    fn next_id(&mut self) -> i64 {
        self.last_id += 1;
        self.last_id
    }

    /// A 14-character uid in Grafana's current style, unused by any object.
    fn new_uid(&mut self) -> String {
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        loop {
            self.uid_seq += 1;
            let (mut a, mut b) = (
                RandomState::new().hash_one(self.uid_seq),
                RandomState::new().hash_one(self.uid_seq),
            );
            let mut uid = String::from(char::from(ALNUM[(a % 26) as usize]));
            for i in 0..13 {
                let n = if i < 6 { &mut a } else { &mut b };
                *n /= 36;
                uid.push(char::from(ALNUM[(*n % 36) as usize]));
            }
            if !self.uid_taken(&uid) {
                return uid;
            }
        }
    }

    fn uid_taken(&self, uid: &str) -> bool {
        self.datasources.iter().any(|d| d.uid() == uid)
            || self.folders.iter().any(|f| f.uid == uid)
            || self.dashboards.iter().any(|d| d.uid == uid)
    }

    pub(crate) fn health(&mut self, version: &str, commit: &str) -> Answer {
        if self.health_unavailable > 0 {
            self.health_unavailable -= 1;
            let body = json!({ "commit": commit, "database": "failing", "version": version });
            return Err((503, body));
        }
        Ok((
            200,
            json!({ "commit": commit, "database": "ok", "version": version }),
        ))
    }

    // ---- data sources ----

    pub(crate) fn list_datasources(&self) -> Answer {
        let mut all: Vec<&Datasource> = self.datasources.iter().collect();
        all.sort_by_key(|d| d.str("name").to_lowercase());
        Ok((200, all.into_iter().map(Datasource::list_item).collect()))
    }

    fn datasource(&self, uid: &str) -> Result<usize, Reply> {
        let found = self.datasources.iter().position(|d| d.uid() == uid);
        found.ok_or_else(|| msg(404, "Data source not found"))
    }

    pub(crate) fn get_datasource(&self, uid: &str) -> Answer {
        Ok((200, self.datasources[self.datasource(uid)?].dto()))
    }

    /// Save `index` as given; if it is the default, no other data source is.
    fn set_default_flags(&mut self, index: usize) {
        if self.datasources[index].fields.get("isDefault") == Some(&json!(true)) {
            for (i, d) in self.datasources.iter_mut().enumerate() {
                d.fields.insert("isDefault".into(), json!(i == index));
            }
        }
    }

    pub(crate) fn create_datasource(&mut self, body: &Value, read_only: bool) -> Answer {
        let (mut fields, secure, _) = parse_datasource(body)?;
        let text =
            |fields: &Map<String, Value>, key: &str| fields[key].as_str().unwrap_or("").to_owned();
        let (kind, mut name) = (text(&fields, "type"), text(&fields, "name"));
        if name.is_empty() {
            // Grafana names an unnamed data source after its type: `loki`, `loki-1`, …
            let (mut n, taken) = (0, |name: &str| {
                self.datasources
                    .iter()
                    .any(|d| d.str("name").eq_ignore_ascii_case(name))
            });
            name.clone_from(&kind);
            while taken(&name) {
                n += 1;
                name = format!("{kind}-{n}");
            }
        }
        fields.insert("name".into(), json!(name));
        check_datasource(&fields)?;
        if self.datasources.iter().any(|d| d.str("name") == name) {
            return Err(msg(409, "data source with the same name already exists"));
        }
        let uid = match text(&fields, "uid") {
            uid if uid.is_empty() => self.new_uid(),
            uid if self.datasources.iter().any(|d| d.uid() == uid) => {
                return Err(msg(409, "data source with the same uid already exists"));
            }
            uid => uid,
        };
        let id = self.next_id();
        let first = self.datasources.is_empty();
        fields.insert("uid".into(), json!(uid));
        for (key, value) in [
            ("id", json!(id)),
            ("orgId", json!(1)),
            ("typeLogoUrl", json!(LOGO)),
        ] {
            fields.insert(key.into(), value);
        }
        for (key, value) in [("version", json!(1)), ("readOnly", json!(read_only))] {
            fields.insert(key.into(), value);
        }
        if first {
            fields.insert("isDefault".into(), json!(true)); // the first data source is the default
        }
        self.datasources.push(Datasource { fields, secure });
        self.set_default_flags(self.datasources.len() - 1);
        let dto = self.datasources[self.datasources.len() - 1].dto();
        Ok((
            200,
            json!({ "datasource": dto, "id": id, "message": "Datasource added", "name": name }),
        ))
    }

    pub(crate) fn update_datasource(&mut self, uid: &str, body: &Value) -> Answer {
        let (input, secure, version) = parse_datasource(body)?;
        let name = input["name"].as_str().unwrap_or("");
        if name.is_empty() {
            return Err(bad_request_data()); // `binding:"Required"` on update's name
        }
        let i = self.datasource(uid)?;
        let current = &self.datasources[i];
        if current.fields.get("readOnly") == Some(&json!(true)) {
            return Err(msg(403, "Cannot update read-only data source"));
        }
        check_datasource(&input)?;
        if name != current.str("name") && self.datasources.iter().any(|d| d.str("name") == name) {
            let text = "Failed to update datasource: data source with the same name already exists";
            return Err(msg(409, text));
        }
        // Grafana stores `version = sent + 1` only over a lower stored version; 0 (absent) skips.
        if version != 0 && current.fields["version"].as_i64().unwrap_or(0) > version {
            let text =
                "Datasource has already been updated by someone else. Please reload and try again";
            return Err(msg(409, text));
        }
        let new_uid = input["uid"].as_str().unwrap_or("");
        if !new_uid.is_empty()
            && new_uid != uid
            && self.datasources.iter().any(|d| d.uid() == new_uid)
        {
            return Err(msg(500, "Failed to update datasource")); // the unique index refuses it
        }
        let name = name.to_owned();
        let ds = &mut self.datasources[i];
        for (key, value) in input {
            if !(KEPT_WHEN_EMPTY.contains(&key.as_str()) && value == json!("")) {
                ds.fields.insert(key, value);
            }
        }
        ds.fields.insert("version".into(), json!(version + 1));
        ds.secure.extend(secure); // secrets not sent are kept
        self.set_default_flags(i);
        let (id, dto) = (self.datasources[i].id(), self.datasources[i].dto());
        Ok((
            200,
            json!({ "datasource": dto, "id": id, "message": "Datasource updated", "name": name }),
        ))
    }

    pub(crate) fn delete_datasource(&mut self, uid: &str) -> Answer {
        let i = self.datasource(uid)?;
        if self.datasources[i].fields.get("readOnly") == Some(&json!(true)) {
            return Err(msg(403, "Cannot delete read-only data source"));
        }
        let id = self.datasources.remove(i).id();
        Ok((200, json!({ "message": "Data source deleted", "id": id })))
    }

    pub(crate) fn check_datasource_health(&self, uid: &str) -> Answer {
        if uid_problem(uid).is_some() {
            return Err(msg(400, "UID is invalid"));
        }
        if self.datasource(uid).is_err() {
            return Err(msg(500, "Unable to load datasource metadata"));
        }
        match self.health.get(uid) {
            Some((false, text)) => Err((400, json!({ "status": "ERROR", "message": text }))),
            Some((true, text)) => Ok((200, json!({ "status": "OK", "message": text }))),
            None => Ok((
                200,
                json!({ "status": "OK", "message": "Data source is working" }),
            )),
        }
    }

    // ---- folders ----

    fn folder(&self, uid: &str) -> Option<&Folder> {
        self.folders.iter().find(|f| f.uid == uid)
    }

    pub(crate) fn folder_dto(&self, f: &Folder) -> Value {
        let mut dto = json!({
            "id": f.id, "uid": f.uid, "orgId": 1, "title": f.title, "url": f.url(),
            "hasAcl": false, "canSave": true, "canEdit": true, "canAdmin": true, "canDelete": true,
            "createdBy": "admin", "created": f.created, "updatedBy": "admin", "updated": f.created,
            "version": 1,
        });
        if let Some(parent) = self.folder(&f.parent_uid) {
            dto["parentUid"] = json!(parent.uid);
            let brief = json!({ "id": parent.id, "uid": parent.uid, "title": parent.title, "url": parent.url() });
            dto["parents"] = json!([brief]); // the immediate parent only
        }
        dto
    }

    pub(crate) fn get_folder(&self, uid: &str) -> Answer {
        let folder = self
            .folder(uid)
            .ok_or_else(|| with_status(404, "not-found", "folder not found"))?;
        Ok((200, self.folder_dto(folder)))
    }

    pub(crate) fn list_folders(&self, parent_uid: &str, limit: usize, page: usize) -> Answer {
        let children = self.folders.iter().filter(|f| f.parent_uid == parent_uid);
        let page = children
            .skip(limit.saturating_mul(page.saturating_sub(1)))
            .take(limit);
        let hits = page.map(|f| match f.parent_uid.as_str() {
            "" => json!({ "id": f.id, "uid": f.uid, "title": f.title }),
            parent => json!({ "id": f.id, "uid": f.uid, "title": f.title, "parentUid": parent }),
        });
        Ok((200, hits.collect()))
    }

    pub(crate) fn create_folder(&mut self, body: &Value, unified_storage: bool) -> Answer {
        let f = Fields::of(body)?;
        let (uid, title, parent_uid) = (f.str("uid")?, f.str("title")?.trim(), f.str("parentUid")?);
        if let Some(problem) = uid_problem(uid) {
            return Err(msg(400, problem));
        }
        if title.is_empty() {
            return Err(msg(400, "folder title cannot be empty"));
        }
        if !parent_uid.is_empty() && self.folder(parent_uid).is_none() {
            return Err(with_status(404, "not-found", "folder not found"));
        }
        if !uid.is_empty()
            && (self.folder(uid).is_some() || self.dashboards.iter().any(|d| d.uid == uid))
        {
            return Err(if unified_storage {
                with_status(
                    412,
                    "version-mismatch",
                    "the folder has been changed by someone else",
                )
            } else {
                msg(409, "a folder/dashboard with the same uid already exists")
            });
        }
        let uid = if uid.is_empty() {
            self.new_uid()
        } else {
            uid.to_owned()
        };
        let (title, parent_uid, created) = (title.to_owned(), parent_uid.to_owned(), now());
        let folder = Folder {
            id: self.next_id(),
            uid,
            title,
            parent_uid,
            created,
        };
        let dto = self.folder_dto(&folder);
        self.folders.push(folder);
        Ok((200, dto))
    }

    // ---- dashboards ----

    pub(crate) fn dashboard_with_meta(&self, d: &Dashboard) -> Value {
        let folder = self.folder(&d.folder_uid);
        let external_id = if d.provisioned {
            format!("{}.json", d.uid)
        } else {
            String::new()
        };
        json!({
            "dashboard": d.model,
            "meta": {
                "type": "db", "canSave": true, "canEdit": true, "canAdmin": true, "canStar": true,
                "canDelete": true, "slug": slugify(&d.title), "url": d.url(),
                "expires": "0001-01-01T00:00:00Z", "created": d.created, "updated": d.updated,
                "updatedBy": "admin", "createdBy": "admin", "version": d.version, "hasAcl": false,
                "isFolder": false, "folderId": folder.map_or(0, |f| f.id), "folderUid": d.folder_uid,
                "folderTitle": folder.map_or("Dashboards", |f| f.title.as_str()),
                "folderUrl": folder.map(Folder::url).unwrap_or_default(),
                "provisioned": d.provisioned, "provisionedExternalId": external_id,
            },
        })
    }

    fn dashboard(&self, uid: &str) -> Result<usize, Reply> {
        let found = self.dashboards.iter().position(|d| d.uid == uid);
        found.ok_or_else(|| msg(404, "Dashboard not found"))
    }

    pub(crate) fn get_dashboard(&self, uid: &str) -> Answer {
        Ok((
            200,
            self.dashboard_with_meta(&self.dashboards[self.dashboard(uid)?]),
        ))
    }

    pub(crate) fn delete_dashboard(&mut self, uid: &str) -> Answer {
        let i = self.dashboard(uid)?;
        if self.dashboards[i].provisioned {
            return Err(msg(400, "provisioned dashboard cannot be deleted"));
        }
        let d = self.dashboards.remove(i);
        let text = format!("Dashboard {} deleted", d.title);
        Ok((
            200,
            json!({ "title": d.title, "message": text, "id": d.id, "uid": d.uid }),
        ))
    }

    pub(crate) fn save_dashboard(&mut self, body: &Value, provisioned: bool) -> Answer {
        let f = Fields::of(body)?;
        let model = f.object("dashboard")?.ok_or_else(bad_request_data)?;
        let (overwrite, folder_id, _) =
            (f.bool("overwrite")?, f.int("folderId")?, f.str("message")?);
        let mut folder_uid = f.str("folderUid")?.to_owned();
        if folder_uid.is_empty() && folder_id != 0 {
            let by_id = self.folders.iter().find(|x| x.id == folder_id);
            folder_uid = by_id
                .map(|x| x.uid.clone())
                .ok_or_else(|| msg(400, "folder not found"))?;
        }
        let d = Fields(model);
        let (title, uid) = (d.str("title")?.trim(), d.str("uid")?);
        let (id, mut version) = (d.int("id")?, d.int("version")?);
        if title.is_empty() {
            return Err(with_status(
                400,
                "empty-name",
                "Dashboard title cannot be empty",
            ));
        }
        if let Some(problem) = uid_problem(uid) {
            return Err(msg(400, problem));
        }
        if !folder_uid.is_empty() && self.folder(&folder_uid).is_none() {
            return Err(msg(400, "folder not found"));
        }
        if !uid.is_empty() && self.folder(uid).is_some() {
            return Err(msg(400, "Dashboard cannot be changed to a folder"));
        }
        let not_found = || with_status(404, "not-found", "Dashboard not found");
        let by_id = match id {
            0 => None,
            id => Some(
                self.dashboards
                    .iter()
                    .position(|x| x.id == id)
                    .ok_or_else(not_found)?,
            ),
        };
        let by_uid = self
            .dashboards
            .iter()
            .position(|x| !uid.is_empty() && x.uid == uid);
        if by_id.is_some() && by_uid.is_some() && by_id != by_uid {
            return Err(msg(400, "A dashboard with the same uid already exists"));
        }
        let mut target = by_uid.or(by_id);
        if let Some(existing) = target.map(|i| &self.dashboards[i]) {
            if existing.provisioned && !provisioned {
                return Err(msg(400, "Cannot save provisioned dashboard"));
            }
            if version != existing.version && !overwrite {
                let text = "The dashboard has been changed by someone else";
                return Err(with_status(412, "version-mismatch", text));
            }
            version = existing.version;
        }
        let same_title = |x: &Dashboard| x.title == title && x.folder_uid == folder_uid;
        if let Some(j) = self
            .dashboards
            .iter()
            .position(same_title)
            .filter(|j| Some(*j) != target)
        {
            if !overwrite {
                let text = "A dashboard with the same name in the folder already exists";
                return Err(with_status(412, "name-exists", text));
            }
            // Grafana takes the same-titled dashboard over: its id, uid and version win.
            (target, version) = (Some(j), self.dashboards[j].version);
        }
        let (mut model, stamp) = (model.clone(), now());
        let i = match target {
            Some(i) => i,
            None => {
                let uid = if uid.is_empty() {
                    self.new_uid()
                } else {
                    uid.to_owned()
                };
                let (id, created, updated) = (self.next_id(), stamp.clone(), stamp.clone());
                let (title, folder_uid, model) = (String::new(), String::new(), Value::Null);
                version = 0;
                self.dashboards.push(Dashboard {
                    id,
                    uid,
                    title,
                    folder_uid,
                    version,
                    model,
                    provisioned,
                    created,
                    updated,
                });
                self.dashboards.len() - 1
            }
        };
        let dash = &mut self.dashboards[i];
        (dash.version, dash.title, dash.updated) = (version + 1, title.to_owned(), stamp);
        dash.folder_uid = folder_uid; // no folderUid: the root, even for a dashboard that had one
        for (key, value) in [
            ("id", json!(dash.id)),
            ("uid", json!(dash.uid)),
            ("version", json!(dash.version)),
        ] {
            model.insert(key.into(), value);
        }
        dash.model = Value::Object(model);
        Ok((
            200,
            json!({
                "id": dash.id, "uid": dash.uid, "url": dash.url(), "status": "success",
                "version": dash.version, "slug": slugify(&dash.title), "folderUid": dash.folder_uid,
            }),
        ))
    }

    /// `GET /api/search` by `query`, `tag` (all must match), `type`, `folderUIDs`, `dashboardUIDs`
    /// and `limit`; folders first, then dashboards, each by title.
    pub(crate) fn search(&self, params: &[(String, String)]) -> Answer {
        let (mut query, mut kind, mut limit) = (String::new(), String::new(), 1000);
        let (mut tags, mut folders, mut uids) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in params {
            let list = value
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            match key.as_str() {
                "query" => query = value.to_lowercase(),
                "type" => kind.clone_from(value),
                "tag" => tags.push(json!(value)),
                "folderUIDs" => {
                    folders.extend(list.map(|u| if u == "general" { String::new() } else { u }))
                }
                "dashboardUIDs" | "dashboardUID" => uids.extend(list),
                "limit" => limit = value.parse().unwrap_or(1000),
                _ => {}
            }
        }
        let matches = |title: &str, parent: &str| {
            title.to_lowercase().contains(&query)
                && (folders.is_empty() || folders.iter().any(|f| f == parent))
        };
        let hit = |kind: &str,
                   id: i64,
                   uid: &str,
                   title: &str,
                   url: String,
                   tags: Value,
                   parent: &str| {
            let mut hit = json!({
                "id": id, "uid": uid, "orgId": 1, "title": title, "uri": format!("db/{}", slugify(title)),
                "url": url, "slug": "", "type": kind, "tags": tags, "isStarred": false, "sortMeta": 0,
            });
            if let Some(p) = self.folder(parent) {
                (hit["folderId"], hit["folderUid"]) = (json!(p.id), json!(p.uid));
                (hit["folderTitle"], hit["folderUrl"]) = (json!(p.title), json!(p.url()));
            }
            hit
        };
        let mut found_folders: Vec<&Folder> = self
            .folders
            .iter()
            .filter(|f| matches(&f.title, &f.parent_uid))
            .collect();
        if !(kind.is_empty() || kind == "dash-folder") || !tags.is_empty() || !uids.is_empty() {
            found_folders.clear();
        }
        found_folders.sort_by_key(|f| f.title.to_lowercase());
        let mut found: Vec<&Dashboard> = self
            .dashboards
            .iter()
            .filter(|d| matches(&d.title, &d.folder_uid))
            .collect();
        found.retain(|d| uids.is_empty() || uids.contains(&d.uid));
        found.retain(|d| {
            let have = d.model.get("tags").and_then(Value::as_array);
            tags.iter().all(|t| have.is_some_and(|h| h.contains(t)))
        });
        if !(kind.is_empty() || kind == "dash-db") {
            found.clear();
        }
        found.sort_by_key(|d| d.title.to_lowercase());
        let folder_hits = found_folders.into_iter().map(|f| {
            hit(
                "dash-folder",
                f.id,
                &f.uid,
                &f.title,
                f.url(),
                json!([]),
                &f.parent_uid,
            )
        });
        let dashboard_hits = found.into_iter().map(|d| {
            let tags = d.model.get("tags").cloned().unwrap_or(json!([]));
            hit(
                "dash-db",
                d.id,
                &d.uid,
                &d.title,
                d.url(),
                tags,
                &d.folder_uid,
            )
        });
        Ok((200, folder_hits.chain(dashboard_hits).take(limit).collect()))
    }
}
