//! OpenSpec resources: `changes://active`, `change://{slug}/proposal|tasks|design|delta|delta/{cap}`,
//! `spec://{capability}`, and the seed's aliases `proposal://{slug}`, `task://{slug}`,
//! `delta://{slug}[/{cap}]`.
//!
//! Every URI segment goes through the same checks as tool paths (slug grammar, no `..`, NUL,
//! backslash or percent-encoded bytes, no symlinks), so a resource can never read outside
//! `openspec/`.

use std::sync::Arc;

use serde_json::json;

use super::options::ToolOptions;
use super::{ResourceContent, ResourceError, ResourceInfo, ResourceProvider, ResourceTemplate};
use crate::fsx;
use crate::openspec::{Error, Workspace, discover, paths, show, slug};

/// The resource provider over one workspace.
pub struct OpenSpecResources {
    ws: Arc<Workspace>,
    opts: ToolOptions,
}

impl OpenSpecResources {
    /// A provider over `ws`.
    pub fn new(ws: Arc<Workspace>, opts: ToolOptions) -> Self {
        Self { ws, opts }
    }

    fn active(&self, uri: &str, query: &str) -> Result<Vec<ResourceContent>, ResourceError> {
        let mut page = 1usize;
        let mut size = self.opts.page_size;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let n: usize = v
                .parse()
                .map_err(|_| ResourceError::Invalid(format!("{k} must be a positive integer")))?;
            match k {
                "page" => page = n.max(1),
                "pageSize" => size = n.clamp(1, self.opts.max_page_size),
                _ => return Err(ResourceError::Invalid(format!("unknown parameter {k}"))),
            }
        }
        let all = self.ws.list_changes().map_err(internal)?;
        let total = all.len();
        let items: Vec<_> = all
            .iter()
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .map(|c| {
                let dir = self.ws.changes_dir().join(&c.name);
                let title = fsx::read_opt(&dir.join("proposal.md"))
                    .ok()
                    .flatten()
                    .map_or_else(|| c.name.clone(), |p| show::change_title(&p, &c.name));
                json!({
                    "slug": c.name, "title": title, "status": c.status,
                    "completedTasks": c.completed_tasks, "totalTasks": c.total_tasks,
                    "updatedAt": c.last_modified, "uri": format!("change://{}/proposal", c.name),
                })
            })
            .collect();
        let has_more = page.saturating_mul(size) < total;
        let mut body = json!({"items": items, "page": page, "pageSize": size, "total": total, "hasMore": has_more});
        if has_more {
            body["nextPage"] = json!(format!(
                "changes://active?page={}&pageSize={size}",
                page + 1
            ));
        }
        Ok(vec![content(uri, "application/json", body.to_string())])
    }

    fn change(
        &self,
        uri: &str,
        slug_part: &str,
        rest: &[&str],
    ) -> Result<Vec<ResourceContent>, ResourceError> {
        if slug::slug_problem(slug_part).is_some() {
            return Err(ResourceError::Invalid(format!("bad slug in {uri}")));
        }
        let dir = match self.ws.active_dir(slug_part) {
            Ok(d) => d,
            Err(Error::NoChange(_)) | Err(Error::Archived(_)) => {
                return Err(ResourceError::NotFound(uri.to_string()));
            }
            Err(e) => return Err(ResourceError::Invalid(e.to_string())),
        };
        let file = match rest {
            ["proposal"] => "proposal.md",
            ["tasks"] => "tasks.md",
            ["design"] => "design.md",
            ["delta"] => {
                let specs = discover::spec_files(&dir.join("specs")).map_err(internal)?;
                let list: Vec<_> = specs
                    .iter()
                    .map(|s| json!({"capability": s.id, "path": format!("specs/{}/spec.md", s.id), "uri": format!("change://{slug_part}/delta/{}", s.id)}))
                    .collect();
                return Ok(vec![content(
                    uri,
                    "application/json",
                    json!({"slug": slug_part, "deltas": list}).to_string(),
                )]);
            }
            ["delta", cap @ ..] if !cap.is_empty() => {
                let cap: Vec<&str> = match cap {
                    [head @ .., "spec.md"] if !head.is_empty() => head.to_vec(),
                    _ => cap.to_vec(),
                };
                let mut segs = vec!["changes", slug_part, "specs"];
                for c in &cap {
                    paths::check_segment(c).map_err(|e| ResourceError::Invalid(e.to_string()))?;
                    segs.push(c);
                }
                segs.push("spec.md");
                let path = self
                    .ws
                    .contained(&segs)
                    .map_err(|e| ResourceError::Invalid(e.to_string()))?;
                return read_markdown(uri, &path);
            }
            _ => return Err(ResourceError::NotFound(uri.to_string())),
        };
        let path = self
            .ws
            .contained(&["changes", slug_part, file])
            .map_err(|e| ResourceError::Invalid(e.to_string()))?;
        read_markdown(uri, &path)
    }
}

impl ResourceProvider for OpenSpecResources {
    fn list(
        &self,
        cursor: Option<&str>,
    ) -> Result<(Vec<ResourceInfo>, Option<String>), ResourceError> {
        let offset: usize = match cursor {
            None => 0,
            Some(c) => c
                .strip_prefix("o:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| ResourceError::Invalid("unknown cursor".into()))?,
        };
        let mut all = vec![ResourceInfo {
            uri: "changes://active".into(),
            name: "active-changes".into(),
            title: Some("Active changes".into()),
            description: Some(
                "Active OpenSpec changes with task progress (paged: ?page=&pageSize=).".into(),
            ),
            mime_type: Some("application/json".into()),
        }];
        for c in self.ws.list_changes().map_err(internal)? {
            for (part, mime) in [
                ("proposal", "text/markdown"),
                ("tasks", "text/markdown"),
                ("delta", "application/json"),
            ] {
                all.push(ResourceInfo {
                    uri: format!("change://{}/{part}", c.name),
                    name: format!("{}-{part}", c.name),
                    title: None,
                    description: None,
                    mime_type: Some(mime.into()),
                });
            }
        }
        for s in self.ws.list_specs().map_err(internal)? {
            all.push(ResourceInfo {
                uri: format!("spec://{}", s.id),
                name: format!("spec-{}", s.id.replace('/', "-")),
                title: None,
                description: None,
                mime_type: Some("text/markdown".into()),
            });
        }
        let page: Vec<ResourceInfo> = all
            .iter()
            .skip(offset)
            .take(self.opts.page_size)
            .cloned()
            .collect();
        let next = (offset + page.len() < all.len()).then(|| format!("o:{}", offset + page.len()));
        Ok((page, next))
    }

    fn templates(&self) -> Vec<ResourceTemplate> {
        [
            (
                "change://{slug}/proposal",
                "proposal",
                "The change's proposal.md",
                "text/markdown",
            ),
            (
                "change://{slug}/tasks",
                "tasks",
                "The change's tasks.md",
                "text/markdown",
            ),
            (
                "change://{slug}/design",
                "design",
                "The change's design.md",
                "text/markdown",
            ),
            (
                "change://{slug}/delta",
                "deltas",
                "The change's spec deltas",
                "application/json",
            ),
            (
                "change://{slug}/delta/{capability}",
                "delta",
                "One spec delta",
                "text/markdown",
            ),
            (
                "spec://{capability}",
                "spec",
                "A main spec",
                "text/markdown",
            ),
        ]
        .into_iter()
        .map(|(t, n, d, m)| ResourceTemplate {
            uri_template: t.into(),
            name: n.into(),
            description: d.into(),
            mime_type: m.into(),
        })
        .collect()
    }

    fn complete(&self, variable: &str, context: &[(String, String)]) -> Vec<String> {
        let slug = context.iter().find(|(k, _)| k == "slug").map(|(_, v)| v);
        match (variable, slug) {
            ("slug", _) => self
                .ws
                .list_changes()
                .map(|cs| cs.into_iter().map(|c| c.name).collect())
                .unwrap_or_default(),
            // Within a change: the capabilities it has deltas for.
            ("capability", Some(slug)) => self
                .ws
                .active_dir(slug)
                .ok()
                .and_then(|dir| discover::spec_files(&dir.join("specs")).ok())
                .map(|fs| fs.into_iter().map(|f| f.id).collect())
                .unwrap_or_default(),
            ("capability", None) => self
                .ws
                .list_specs()
                .map(|ss| ss.into_iter().map(|s| s.id).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    fn read(&self, uri: &str) -> Result<Option<Vec<ResourceContent>>, ResourceError> {
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Ok(None);
        };
        if !matches!(
            scheme,
            "changes" | "change" | "spec" | "proposal" | "task" | "delta"
        ) {
            return Ok(None);
        }
        if rest.contains(['\\', '\0', '%']) || rest.split('/').any(|s| s == ".." || s == ".") {
            return Err(ResourceError::Invalid(format!("unsafe URI {uri}")));
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let segs: Vec<&str> = path.split('/').collect();
        let out = match (scheme, segs.as_slice()) {
            ("changes", ["active"]) => self.active(uri, query)?,
            ("change", [slug, tail @ ..]) => self.change(uri, slug, tail)?,
            ("proposal", [slug]) => self.change(uri, slug, &["proposal"])?,
            ("task", [slug]) => self.change(uri, slug, &["tasks"])?,
            ("delta", [slug]) => self.change(uri, slug, &["delta"])?,
            ("delta", [slug, cap @ ..]) => {
                let mut tail = vec!["delta"];
                tail.extend_from_slice(cap);
                self.change(uri, slug, &tail)?
            }
            ("spec", _) if !path.is_empty() => {
                let mut all = vec!["specs"];
                for s in &segs {
                    paths::check_segment(s).map_err(|e| ResourceError::Invalid(e.to_string()))?;
                    all.push(s);
                }
                all.push("spec.md");
                let file = self
                    .ws
                    .contained(&all)
                    .map_err(|e| ResourceError::Invalid(e.to_string()))?;
                read_markdown(uri, &file)?
            }
            _ => return Err(ResourceError::NotFound(uri.into())),
        };
        Ok(Some(out))
    }
}

fn read_markdown(uri: &str, path: &std::path::Path) -> Result<Vec<ResourceContent>, ResourceError> {
    match fsx::read_opt(path).map_err(internal)? {
        Some(text) => Ok(vec![content(uri, "text/markdown", text)]),
        None => Err(ResourceError::NotFound(uri.to_string())),
    }
}

fn content(uri: &str, mime: &str, text: String) -> ResourceContent {
    ResourceContent::text(uri, mime, text)
}

fn internal(e: impl std::fmt::Display) -> ResourceError {
    ResourceError::Internal(e.to_string())
}
